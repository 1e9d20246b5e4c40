"""Shipped split manifests: a fresh build equals the shipped files, they hold names and split values
only, and a meta-info that ``prepare`` builds from a user's release files alone has every split
scheme the shipped option files use (with the bundled values, where a meta-info is bundled).

Releases come from the official files in ../shared when present; otherwise from the bundled
meta-info (AGIQA-1K/3K, MIT) or the synthetic fixtures of the converter tests, which use the
official image names."""
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pyiqa_agiqa.data.tables import MetadataError, read_meta_info
from pyiqa_agiqa.data.prepare import DATASETS, prepare_meta_info, split_manifests_for
from pyiqa_agiqa.data.prepare.agiqa3k import OFFICIAL_COLUMNS
from pyiqa_agiqa.data.split_manifests import MANIFEST_DIR, MANIFESTS, manifest_path, shipped_manifest
from pyiqa_agiqa.data.splits import check_split_disjoint

from test_prepare_aigciqa2023_pku import (  # noqa: F401  (fixtures used below)
    AIG_XLSX, DIMS, PIC_ROWS, PKU_HEADER, aig_source, pku_source, save_mat, write_xlsx)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / 'shared' / 'datasets'
BUNDLED = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info'
OPTIONS = sorted((REPO_ROOT / 'options').glob('*.yml'))
SCRIPT = REPO_ROOT / 'scripts' / 'build_split_manifests.py'
ROWS = {'agiqa1k': 1079, 'agiqa3k': 2982, 'aigciqa2023': 2400, 'pku_i2iqa': 1600, 'aigiqa20k': 14000}
PREFIX = {'aigciqa2023': 'Image/allimg/', 'pku_i2iqa': 'Generated_image/All/'}  # meta-info name = prefix + name
PARTS = {'train', 'val', 'test', 'excluded'}


def load_script():
    spec = importlib.util.spec_from_file_location('build_split_manifests', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def manifest_warnings(warnings):
    return [w for w in warnings if 'split file' in w or 'split manifest' in w or 'split column' in w]


def read_manifest(key):
    return pd.read_csv(manifest_path(key), dtype=str, keep_default_na=False)


# ---------------------------------------------------------------- the shipped files

def test_shipped_manifests_equal_a_fresh_build(tmp_path):
    script = load_script()
    missing = [MANIFESTS[k].collected for k in MANIFESTS if not (SHARED / MANIFESTS[k].collected).is_file()]
    if missing:
        pytest.skip(f'collected split files not found in {SHARED}: {missing}')
    assert script.main(['--out-dir', str(tmp_path)]) == 0
    for key in MANIFESTS:
        assert (tmp_path / f'{key}.csv').read_bytes() == manifest_path(key).read_bytes(), \
            f'{key}: shipped manifest drifted: run scripts/build_split_manifests.py --overwrite'
    with pytest.raises(SystemExit):  # never replaces a file silently
        script.main(['--out-dir', str(tmp_path), '--dataset', 'agiqa3k'])


def test_shipped_manifests_hold_names_and_split_values_only():
    assert set(MANIFESTS) == set(DATASETS)
    assert sorted(p.name for p in MANIFEST_DIR.glob('*.csv')) == sorted(f'{k}.csv' for k in DATASETS)
    for key, info in MANIFESTS.items():
        table = read_manifest(key)
        assert list(table.columns) == ['name', *info.columns], key
        assert len(table) == ROWS[key] and table['name'].is_unique, key
        values = set(table[list(info.columns)].to_numpy().ravel())
        assert values <= set(info.values) and {'train', 'test'} <= values, key
        assert manifest_path(key).read_bytes().count(b'\r') == 0
        assert set(info.schemes) == set(info.origin) == set(info.rules), key
        assert all(source in info.schemes for source, _ in info.carved.values()), key
    assert shipped_manifest('agiqa3k') == MANIFEST_DIR / 'agiqa3k.csv' and shipped_manifest('nope') is None
    assert split_manifests_for('agiqa3k', None, shipped_splits=False) == []


# ---------------------------------------------------------------- what the option files use

def option_columns():
    """{dataset key: split columns the option files use or tell users to select}."""
    found = {}
    for path in OPTIONS:
        opt = yaml.safe_load(path.read_text())
        n_splits = int(opt.get('split_num') or 1)
        keys = {Path(str(b.get('meta_info_file', ''))).stem for b in opt['datasets'].values()} & set(DATASETS)
        assert len(keys) == 1, f'{path.name}: datasets {keys}'
        key = keys.pop()
        columns = found.setdefault(key, set())
        for block in opt['datasets'].values():
            index = block.get('split_index')
            if isinstance(index, str):
                columns.add(index)
            elif index is not None:
                columns |= {f"{block.get('split_scheme', 'default')}_split_{i:02d}" for i in range(1, n_splits + 1)}
        comments = '\n'.join(line for line in path.read_text().splitlines() if line.lstrip().startswith('#'))
        schemes = set(re.findall(r'split_scheme:?\s+`?([a-z][a-z0-9]*)`', comments))
        schemes |= set(re.findall(r'\b([a-z][a-z0-9]*)_split_(?:NN|\d\d)\b', comments))
        columns |= {f'{s}_split_{i:02d}' for s in schemes for i in range(1, n_splits + 1)}
    return found


def assert_has_option_schemes(key, table):
    wanted = option_columns()[key] | {f'default_split_{i:02d}' for i in range(1, 11)}
    wanted |= set(MANIFESTS[key].written_columns())
    missing = sorted(wanted - set(table.columns))
    assert not missing, f'{key}: columns the option files need are missing: {missing}'
    for column in wanted:
        assert set(table[column]) <= PARTS and (table[column] == 'test').any(), column
    return wanted


def test_every_dataset_has_option_files_and_their_schemes_are_published():
    columns = option_columns()
    assert set(columns) == set(DATASETS)
    assert 'ipcev_split_10' in columns['agiqa3k'] and 'cianet_split_01' in columns['agiqa3k']
    for key, wanted in columns.items():
        known = {f'default_split_{i:02d}' for i in range(1, 11)} | set(MANIFESTS[key].written_columns())
        assert wanted <= known, (key, sorted(wanted - known))


def assert_published_as_shipped(key, table):
    """Published columns equal the shipped manifest; carved ones keep its test set."""
    info = MANIFESTS[key]
    manifest = read_manifest(key).set_index('name')
    names = table['name'].str.slice(len(PREFIX.get(key, '')))
    expected = manifest.loc[names, list(info.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(table[list(info.columns)].reset_index(drop=True), expected)
    for scheme, (source, _) in info.carved.items():
        for column in [c for c in info.columns if c.startswith(f'{source}_split_')]:
            carved = table[column.replace(f'{source}_split_', f'{scheme}_split_')]
            assert ((carved == 'test') == (table[column] == 'test')).all() and (carved == 'val').any()


# ---------------------------------------------------------------- AGIQA-3K / AGIQA-1K (bundled)

@pytest.fixture(scope='module')
def data_3k(tmp_path_factory):
    """The official data.csv, or one rebuilt from the bundled meta-info (same content)."""
    official = SHARED / 'AGIQA-3K' / 'data.csv'
    if official.is_file():
        return official
    bundled = pd.read_csv(BUNDLED / 'agiqa3k.csv', dtype=str, keep_default_na=False)
    bundled = bundled.rename(columns={'mos_correspondence': 'mos_align', 'std_correspondence': 'std_align'})
    path = tmp_path_factory.mktemp('agiqa3k') / 'data.csv'
    bundled[list(OFFICIAL_COLUMNS)].to_csv(path, index=False)
    return path


def test_user_built_agiqa3k_equals_bundled(data_3k, tmp_path):
    out = tmp_path / 'agiqa3k.csv'
    assert prepare_meta_info('agiqa3k', out, data=data_3k) == []  # no --splits-csv: the shipped manifest
    assert out.read_bytes() == (BUNDLED / 'agiqa3k.csv').read_bytes()
    table, bundled = read_meta_info(out), read_meta_info(BUNDLED / 'agiqa3k.csv')
    columns = sorted(assert_has_option_schemes('agiqa3k', table))
    pd.testing.assert_frame_equal(table[columns], bundled[columns])
    assert [c for c in table.columns if '_split_' in c] == [c for c in bundled.columns if '_split_' in c]
    assert_published_as_shipped('agiqa3k', table)


def test_user_manifest_replaces_shipped_columns(data_3k, tmp_path):
    shipped = read_manifest('agiqa3k')
    mine = shipped[['name', 'cianet_split_01']].rename(columns={'cianet_split_01': 'ipce_split_01'})
    mine['qalign_split_1'] = 'train'
    mine.to_csv(tmp_path / 'mine.csv', index=False)
    out = tmp_path / 'meta.csv'
    warnings = prepare_meta_info('agiqa3k', out, data=data_3k, splits=tmp_path / 'mine.csv')
    table, bundled = read_meta_info(out), read_meta_info(BUNDLED / 'agiqa3k.csv')
    assert (table['ipce_split_01'] == bundled['cianet_split_01']).all()  # the user's values win ...
    assert ((table['ipcev_split_01'] == 'test') == (table['ipce_split_01'] == 'test')).all()  # ... and are carved
    check_split_disjoint(table, 'group', 'ipcev_split_01')
    same = [c for c in table.columns if '_split_' in c and c not in ('ipce_split_01', 'ipcev_split_01')]
    pd.testing.assert_frame_equal(table[same], bundled[same])  # columns the file lacks: shipped values
    changed = int((bundled['ipce_split_01'] != bundled['cianet_split_01']).sum())
    assert [w.split(': ', 1)[1] for w in warnings] == [
        'split column(s) not read: qalign_split_1 (published splits of this dataset: ipce_split_01..10, '
        'cianet_split_01..10; default and val-carved columns are computed)',
        f'replaces values of an earlier split manifest; row(s) changed per column: ipce_split_01 ({changed})']
    bare = tmp_path / 'bare.csv'
    prepare_meta_info('agiqa3k', bare, data=data_3k, shipped_splits=False)
    assert [c for c in pd.read_csv(bare, nrows=0).columns if '_split_' in c] == \
        [f'default_split_{i:02d}' for i in range(1, 11)]
    with pytest.raises(MetadataError, match=r"mine.csv: missing split column\(s\) \['ipce_split_02'"):
        prepare_meta_info('agiqa3k', tmp_path / 'x.csv', data=data_3k, splits=tmp_path / 'mine.csv',
                          shipped_splits=False)


def test_shipped_manifest_skipped_for_another_dataset(tmp_path):
    data = tmp_path / 'data.csv'
    pd.DataFrame([['a_normal_000.jpg', 'a cat', '', '', '', 1.5, 0.2, 2.0, 0.3],
                  ['b_normal_001.jpg', 'a dog', '', '', '', 2.5, 0.2, 2.5, 0.3]],
                 columns=list(OFFICIAL_COLUMNS)).to_csv(data, index=False)
    warnings = prepare_meta_info('agiqa3k', tmp_path / 'meta.csv', data=data)
    assert len(warnings) == 1 and 'the shipped split manifest names none of the 2 images of data.csv' in warnings[0]
    assert 'ipce_split_01' not in pd.read_csv(tmp_path / 'meta.csv', nrows=0).columns


@pytest.fixture(scope='module')
def xlsx_1k(tmp_path_factory):
    """The official AIGC_MOS_Zscore.xlsx, or one rebuilt from the bundled meta-info (no duplicate)."""
    official = SHARED / 'AGIQA-1K' / 'AIGC_MOS_Zscore.xlsx'
    if official.is_file():
        return official
    bundled = read_meta_info(BUNDLED / 'agiqa1k.csv')
    path = tmp_path_factory.mktemp('agiqa1k') / 'AIGC_MOS_Zscore.xlsx'
    table = pd.DataFrame({'Image': bundled['name'], 'Prompt': bundled['prompt'], 'MOS': bundled['mos_quality']})
    with pd.ExcelWriter(path, engine='openpyxl') as writer:
        table.to_excel(writer, sheet_name='Sheet1', index=False)
    return path


def test_user_built_agiqa1k_equals_bundled(xlsx_1k, tmp_path):
    out = tmp_path / 'agiqa1k.csv'
    warnings = prepare_meta_info('agiqa1k', out, data=xlsx_1k)
    if xlsx_1k.parent == SHARED / 'AGIQA-1K':  # (a rebuilt xlsx stores MOS with 16 digits only)
        assert out.read_bytes() == (BUNDLED / 'agiqa1k.csv').read_bytes()
    assert any("'dreamStudio_8_9_1_1.jpg'" in w for w in warnings)  # reported: dropped, or not in the xlsx
    table, bundled = read_meta_info(out), read_meta_info(BUNDLED / 'agiqa1k.csv')
    columns = ['name', 'prompt', 'group', *sorted(assert_has_option_schemes('agiqa1k', table))]
    pd.testing.assert_frame_equal(table[columns], bundled[columns])
    assert [c for c in table.columns if '_split_' in c] == [c for c in bundled.columns if '_split_' in c]
    assert_published_as_shipped('agiqa1k', table)


# ---------------------------------------------------------------- AIGCIQA2023, PKU-I2IQA, AIGIQA-20K

def test_user_built_aigciqa2023_has_every_published_scheme(aig_source, tmp_path):  # noqa: F811
    prompts, labels = aig_source
    release = tmp_path / 'AIGCIQA2023'
    release.mkdir()
    if all(p.is_file() for p in AIG_XLSX):  # the official xlsx files as published
        for path in AIG_XLSX:
            shutil.copy(path, release)
    else:
        write_xlsx(release / 'AIGCIQA2023_Prompts.xlsx', prompts)
        write_xlsx(release / 'pic-index.xlsx', PIC_ROWS)
    for k, d in enumerate(DIMS, 1):
        save_mat(release / f'DATA/MOS/mosz{k}.mat', 'MOSz', labels[f'mos_{d}'])
    out = tmp_path / 'aigciqa2023.csv'
    warnings = prepare_meta_info('aigciqa2023', out, release=release, with_std=False)
    assert not manifest_warnings(warnings)
    table = read_meta_info(out)
    assert_has_option_schemes('aigciqa2023', table)
    assert_published_as_shipped('aigciqa2023', table)
    assert table['cianetv_split_01'].value_counts().to_dict() == {'train': 1584, 'val': 216, 'test': 600}
    collected = SHARED / MANIFESTS['aigciqa2023'].collected
    if collected.is_file():  # the reference file itself (model / model_file checked) gives the same splits
        again = tmp_path / 'again.csv'
        prepare_meta_info('aigciqa2023', again, release=release, with_std=False, splits=collected,
                          shipped_splits=False)
        pd.testing.assert_frame_equal(read_meta_info(again), table)


def test_user_built_pku_i2iqa_has_every_published_scheme(pku_source, tmp_path):  # noqa: F811
    release = tmp_path / 'PKU-I2IQA'
    release.mkdir()
    write_xlsx(release / 'I2IQA_annotation.xlsx', pku_source, header=PKU_HEADER)
    out = tmp_path / 'pku_i2iqa.csv'
    warnings = prepare_meta_info('pku_i2iqa', out, release=release)
    assert not manifest_warnings(warnings)
    table = read_meta_info(out)
    assert_has_option_schemes('pku_i2iqa', table)
    assert_published_as_shipped('pku_i2iqa', table)
    assert table['cianetv_split_10'].value_counts().to_dict() == {'train': 1050, 'val': 150, 'test': 400}


def test_user_built_aigiqa20k_has_every_published_scheme(tmp_path):
    info_train = SHARED / 'AIGIQA-20K' / 'info_train.csv'
    if not info_train.is_file():  # the official names (from the manifest), made-up prompts and MOS
        names = read_manifest('aigiqa20k')['name']
        rng = np.random.default_rng(0)
        info_train = tmp_path / 'info_train.csv'
        pd.DataFrame({'name': names, 'prompt': [f'prompt {i // 2}' for i in range(len(names))],
                      'mos': rng.uniform(0.2, 4.9, len(names)).round(6)}).to_csv(info_train, header=False, index=False)
    out = tmp_path / 'aigiqa20k.csv'
    warnings = prepare_meta_info('aigiqa20k', out, data=info_train)
    assert not manifest_warnings(warnings)
    table = pd.read_csv(out, dtype=str, keep_default_na=False, usecols=lambda c: c == 'name' or '_split_' in c)
    assert_has_option_schemes('aigiqa20k', table)
    assert_published_as_shipped('aigiqa20k', table)
    assert (table['ipcev_split_01'] == 'val').sum() == 1575
