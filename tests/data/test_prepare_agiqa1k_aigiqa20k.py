"""AGIQA-1K and AIGIQA-20K converters: official-format fixtures and the real metadata files."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pyiqa_agiqa.data.tables import MetadataError, read_meta_info, write_meta_info
from pyiqa_agiqa.data.prepare import agiqa1k, aigiqa20k
from pyiqa_agiqa.data.prepare.agiqa1k import build_agiqa1k_meta_info
from pyiqa_agiqa.data.prepare.aigiqa20k import build_aigiqa20k_meta_info
from pyiqa_agiqa.data.splits import carve_validation, check_split_disjoint

from conftest import rounding

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[3] / 'shared' / 'datasets'
AGIQA1K_DIR = SHARED / 'AGIQA-1K'
AIGIQA20K_DIR = SHARED / 'AIGIQA-20K'
BUNDLED_1K = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info' / 'agiqa1k.csv'
DUP = 'dreamStudio_8_9_1_1.jpg'
MISSING = 'dreamStudio_8_5_0_0.jpg'
IPCE_1K = [f'ipce_split_{i:02d}' for i in range(11)]
IPCE_20K = [f'ipce_split_{i:02d}' for i in range(1, 11)]
DEFAULT = [f'default_split_{i:02d}' for i in range(1, 11)]


def assert_group_disjoint(df, column, group='group'):
    """Fast check that no group of ``df`` has rows in two parts of ``df[column]``."""
    sides = df.groupby(group)[column].nunique()
    assert (sides == 1).all(), f'{column}: groups on several sides: {list(sides.index[sides > 1][:5])}'


def test_carve_validation_by_image_keeps_excluded_rows():
    """Image-level published splits: every image is its own group; EXCLUDED rows stay."""
    rng = np.random.default_rng(3)
    names = np.array([f'img_{i:03d}.jpg' for i in rng.permutation(300)])
    parts = np.where(rng.random(300) < 0.2, 'test', 'train')
    with_excluded = parts.astype(object)
    with_excluded[5] = 'excluded'
    keep = with_excluded != 'excluded'
    carved = carve_validation(with_excluded, names, 0.125, 7)
    assert carved[5] == 'excluded'
    np.testing.assert_array_equal(carved[keep], carve_validation(parts[keep], names[keep], 0.125, 7))
    assert (carved == 'val').sum() == round(0.125 * (parts[keep] == 'train').sum())
    with pytest.raises(ValueError, match='CONFLICT'):
        carve_validation(['train', 'CONFLICT'], ['a', 'b'])


# ============================================================ AGIQA-1K, fixture

SUBJECTS = {'deepai': ['bird', 'cat'], 'dreamStudio': ['cat', 'alien']}
SCENES, STYLES = ('city', 'wild'), ('anime style', 'realistic style')


def fixture_1k_rows():
    """(Image, Prompt, MOS) rows like the official sheet: grids, the missing 8_5_0_0, the duplicate."""
    rows = []
    blocks = [('deepai', 0, 0, 'bird', 'having pizza'), ('deepai', 0, 1, 'bird', 'using CD'),
              ('deepai', 1, 0, 'cat', 'having pizza'), ('dreamStudio', 0, 0, 'cat', 'having pizza'),
              ('dreamStudio', 8, 5, 'alien', 'using laptop'), ('dreamStudio', 8, 9, 'alien', 'wearing shirt')]
    value = 0.5
    for generator, i, j, subject, action in blocks:
        for s in range(2):
            for t in range(2):
                name = f'{generator}_{i}_{j}_{s}_{t}.jpg'
                if name == MISSING:
                    continue
                value = round((value * 7.31) % 5, 6)
                rows.append([name, f'{subject}, {action}, {SCENES[s]}, {STYLES[t]}', value])
    rows.append([DUP, rows[-1][1], 2.084116])  # the official duplicate: last row, same prompt
    rows[-2][2] = 0.441416
    return rows


def write_xlsx(path, rows=None, columns=('Image', 'Prompt', 'MOS'), sheet='Sheet1'):
    rows = fixture_1k_rows() if rows is None else rows
    table = pd.DataFrame(rows, columns=['Image', 'Prompt', 'MOS'])[list(columns)]
    with pd.ExcelWriter(path, engine='openpyxl') as writer:
        table.to_excel(writer, sheet_name=sheet, index=False)
    return path


def write_splits_1k(path, names, conflict_columns=('ipce_split_02',), dup_side='train'):
    """One row per distinct name; CONFLICT for the duplicate where asked."""
    distinct = list(dict.fromkeys(names))
    table = pd.DataFrame({'name': distinct})
    for k, column in enumerate(IPCE_1K):
        values = ['test' if (i + k) % 5 == 0 else 'train' for i in range(len(distinct))]
        table[column] = values
        table.loc[table['name'] == DUP, column] = 'CONFLICT' if column in conflict_columns else dup_side
    table.to_csv(path, index=False)
    return table


def write_scores(path, rows, dup_score=2.04545454545):
    """AIGC_all.csv-like: another scale, shuffled rows, the typo name for the duplicate."""
    scores = [(name, round((mos + 0.15) / 0.876 + 0.05 * np.sin(k), 9))
              for k, (name, _, mos) in enumerate(rows) if name != DUP]
    scores += [(MISSING, 2.227272727), ('dreamStudio_8_9_1_.jpg', dup_score)]
    table = pd.DataFrame(scores, columns=['Image', 'Score']).sample(frac=1, random_state=0)
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def files_1k(tmp_path):
    rows = fixture_1k_rows()
    xlsx = write_xlsx(tmp_path / 'AIGC_MOS_Zscore.xlsx', rows)
    splits = tmp_path / 'splits_IPCE_AGIQA-1K.csv'
    table = write_splits_1k(splits, [r[0] for r in rows])
    return rows, xlsx, splits, table


def test_agiqa1k_fixture_default_drops_duplicate(files_1k):
    rows, xlsx, splits, table = files_1k
    df, warnings = build_agiqa1k_meta_info(xlsx, splits)
    assert len(rows) == 24 and len(df) == 22
    assert DUP not in set(df['name']) and MISSING not in set(df['name'])
    assert list(df.columns[:5]) == ['name', 'mos_quality', 'prompt', 'generator', 'group']
    assert list(df.columns[5:]) == DEFAULT + IPCE_1K + [c.replace('ipce', 'ipcev') for c in IPCE_1K]
    assert df['name'].tolist() == [r[0] for r in rows if r[0] != DUP]
    assert df['mos_quality'].tolist() == [r[2] for r in rows if r[0] != DUP]
    assert df['generator'].value_counts().to_dict() == {'deepai': 12, 'dreamStudio': 10}
    assert df['group'].nunique() == df['prompt'].nunique() == 18  # cat, having pizza: both generators
    text = '\n'.join(warnings)
    assert f"'{DUP}' appears 2 times: row 23 (MOS 0.441416), row 24 (MOS 2.084116)" in text
    assert 'duplicate_policy=drop' in text and f"no row (no MOS), so are not in the meta-info: '{MISSING}'" in text
    assert 'ignored (dropped duplicate)' in text
    for column in DEFAULT:
        check_split_disjoint(df, 'group', column)
    expected = table.set_index('name').loc[df['name'], IPCE_1K].reset_index(drop=True)
    pd.testing.assert_frame_equal(df[IPCE_1K], expected)
    for column in IPCE_1K:
        carved = df[column.replace('ipce', 'ipcev')]
        assert ((carved == 'test') == (df[column] == 'test')).all()
        assert (carved == 'val').sum() == round(0.125 * (df[column] == 'train').sum())
    again, _ = build_agiqa1k_meta_info(xlsx, splits)
    pd.testing.assert_frame_equal(df, again)


@pytest.mark.parametrize('policy, kept', [('first', 0.441416), ('last', 2.084116), ('corroborated', 2.084116)])
def test_agiqa1k_fixture_duplicate_policies(files_1k, tmp_path, policy, kept):
    rows, xlsx, splits, _ = files_1k
    scores = write_scores(tmp_path / 'AIGC_all.csv', rows)
    df, warnings = build_agiqa1k_meta_info(xlsx, splits, duplicate_policy=policy, aigc_all_csv=scores)
    assert len(df) == 23 and df['name'].is_unique
    row = df.set_index('name').loc[DUP]
    assert row['mos_quality'] == kept
    assert row['ipce_split_02'] == row['ipcev_split_02'] == 'excluded'
    assert row['ipce_split_03'] == 'train'
    text = '\n'.join(warnings)
    assert f'duplicate_policy={policy}' in text and "set to 'excluded'" in text
    assert f"'{MISSING}'" in text
    if policy == 'corroborated':
        assert "'dreamStudio_8_9_1_.jpg' read as" in text and 'kept row 24' in text


def test_agiqa1k_corroborated_picks_the_row_nearest_the_score(files_1k, tmp_path):
    rows, xlsx, _, _ = files_1k
    scores = write_scores(tmp_path / 'AIGC_all.csv', rows, dup_score=0.67)
    df, warnings = build_agiqa1k_meta_info(xlsx, duplicate_policy='corroborated', aigc_all_csv=scores)
    assert df.set_index('name').loc[DUP, 'mos_quality'] == 0.441416 and 'kept row 23' in '\n'.join(warnings)
    with pytest.raises(ValueError, match='needs aigc_all_csv'):
        build_agiqa1k_meta_info(xlsx, duplicate_policy='corroborated')
    with pytest.raises(ValueError, match='duplicate_policy must be one of'):
        build_agiqa1k_meta_info(xlsx, duplicate_policy='keep_both')
    no_dup = tmp_path / 'no_dup.csv'
    pd.read_csv(scores).query('Image != "dreamStudio_8_9_1_.jpg"').to_csv(no_dup, index=False)
    with pytest.raises(MetadataError, match=r"no_dup.csv: no score for the duplicated name"):
        build_agiqa1k_meta_info(xlsx, duplicate_policy='corroborated', aigc_all_csv=no_dup)


def test_agiqa1k_meta_info_round_trip(files_1k, tmp_path):
    _, xlsx, splits, _ = files_1k
    df, _ = build_agiqa1k_meta_info(xlsx, splits, duplicate_policy='last')
    out = tmp_path / 'agiqa1k.csv'
    write_meta_info(df, out)
    pd.testing.assert_frame_equal(read_meta_info(out), df, check_dtype=False)


def test_agiqa1k_dataset_skips_excluded_rows(files_1k, tmp_path):
    dataset_module = pytest.importorskip('pyiqa_agiqa.data.agiqa_dataset')
    _, xlsx, splits, _ = files_1k
    df, _ = build_agiqa1k_meta_info(xlsx, splits, duplicate_policy='last')
    out = tmp_path / 'agiqa1k.csv'
    write_meta_info(df, out)
    seen = set()
    for phase in ('train', 'test'):
        opt = dict(name=f'agiqa1k_{phase}', type='AGIQADataset', meta_info_file=str(out),
                   dataroot_target=str(tmp_path), split_index='ipce_split_02', phase=phase, check_images=False)
        dataset = dataset_module.AGIQADataset(opt)
        names = {Path(item['img_path']).name for item in dataset.paths_mos}
        assert names == set(df.loc[df['ipce_split_02'] == phase, 'name'])
        seen |= names
    assert seen == set(df['name']) - {DUP}


def test_agiqa1k_rejects_bad_inputs(tmp_path):
    rows = fixture_1k_rows()
    no_prompt = write_xlsx(tmp_path / 'no_prompt.xlsx', rows, columns=('Image', 'MOS'))
    with pytest.raises(MetadataError, match=r"no_prompt.xlsx: .*missing columns \['Prompt'\]"):
        build_agiqa1k_meta_info(no_prompt)
    other_sheet = write_xlsx(tmp_path / 'other_sheet.xlsx', rows, sheet='Data')
    with pytest.raises(MetadataError, match=r"other_sheet.xlsx: no sheet 'Sheet1' \(sheets found: \['Data'\]\)"):
        build_agiqa1k_meta_info(other_sheet)
    nan_mos = [r[:2] + [None] if i == 2 else r for i, r in enumerate(rows)]
    with pytest.raises(MetadataError,
                       match=r"(?s)nan_mos.xlsx: .*mos_quality is NaN .*row 3 \('deepai_0_0_1_0.jpg'"):
        build_agiqa1k_meta_info(write_xlsx(tmp_path / 'nan_mos.xlsx', nan_mos))
    text_mos = [r[:2] + ['n/a'] if i == 4 else r for i, r in enumerate(rows)]
    with pytest.raises(MetadataError, match=r"(?s)text_mos.xlsx: .*row 5 \('deepai_0_1_0_0.jpg': 'n/a'\)"):
        build_agiqa1k_meta_info(write_xlsx(tmp_path / 'text_mos.xlsx', text_mos))
    empty_prompt = [[r[0], '  ' if i == 6 else r[1], r[2]] for i, r in enumerate(rows)]
    with pytest.raises(MetadataError,
                       match=r"(?s)empty_prompt.xlsx: .*empty prompt in 1 row\(s\): row 7 \('deepai_0_1_1_0.jpg'\)"):
        build_agiqa1k_meta_info(write_xlsx(tmp_path / 'empty_prompt.xlsx', empty_prompt))
    other_dup = rows + [list(rows[0])]
    with pytest.raises(MetadataError,
                       match=r"(?s)other_dup.xlsx: .*duplicated name\(s\): 'deepai_0_0_0_0.jpg' \(rows 1, 25\)"):
        build_agiqa1k_meta_info(write_xlsx(tmp_path / 'other_dup.xlsx', other_dup))
    empty_name = [[''] + r[1:] if i == 1 else r for i, r in enumerate(rows)]
    with pytest.raises(MetadataError, match=r"empty_name.xlsx: empty Image name in 1 row\(s\): row 2"):
        build_agiqa1k_meta_info(write_xlsx(tmp_path / 'empty_name.xlsx', empty_name))


def test_agiqa1k_rejects_bad_split_files(tmp_path):
    rows = fixture_1k_rows()
    xlsx = write_xlsx(tmp_path / 'AIGC_MOS_Zscore.xlsx', rows)
    names = [r[0] for r in rows]
    table = write_splits_1k(tmp_path / 'ok.csv', names)
    bad = table.copy()
    bad.loc[0, 'ipce_split_04'] = 'CONFLICT'
    bad.to_csv(tmp_path / 'conflict.csv', index=False)
    with pytest.raises(MetadataError,
                       match=r"conflict.csv: CONFLICT for names that are not duplicated: 'deepai_0_0_0_0.jpg'"):
        build_agiqa1k_meta_info(xlsx, tmp_path / 'conflict.csv')
    table.iloc[1:].to_csv(tmp_path / 'short.csv', index=False)  # an image the manifest does not list
    df, warnings = build_agiqa1k_meta_info(xlsx, tmp_path / 'short.csv')
    assert (df.loc[df['name'] == 'deepai_0_0_0_0.jpg', IPCE_1K + [c.replace('ipce', 'ipcev') for c in IPCE_1K]]
            == 'excluded').all(axis=None)
    assert any(w.startswith(f"{tmp_path / 'short.csv'}: 1 image(s) of the xlsx not in the split file, set to "
                            f"'excluded' (in no part) in ipce_split_00..10: 'deepai_0_0_0_0.jpg'") for w in warnings)
    table.assign(name=[f'other_{i}.jpg' for i in range(len(table))]).to_csv(tmp_path / 'other.csv', index=False)
    with pytest.raises(MetadataError, match=r"other.csv: none of its 23 names is an image of the xlsx"):
        build_agiqa1k_meta_info(xlsx, tmp_path / 'other.csv')
    table.drop(columns='ipce_split_00').to_csv(tmp_path / 'no00.csv', index=False)
    with pytest.raises(MetadataError, match=r"no00.csv: missing split column\(s\) \['ipce_split_00'\]"):
        build_agiqa1k_meta_info(xlsx, tmp_path / 'no00.csv')


# ============================================================ AGIQA-1K, the real files

@pytest.fixture(scope='module')
def real_1k():
    xlsx, splits = AGIQA1K_DIR / 'AIGC_MOS_Zscore.xlsx', AGIQA1K_DIR / 'splits_IPCE_AGIQA-1K.csv'
    if not (xlsx.exists() and splits.exists()):
        pytest.skip(f'AGIQA-1K metadata not found in {AGIQA1K_DIR}')
    return xlsx, splits, build_agiqa1k_meta_info(xlsx, splits)


def test_real_agiqa1k(real_1k):
    xlsx, splits, (df, warnings) = real_1k
    assert len(pd.read_excel(xlsx)) == 1080 and len(df) == 1078
    assert DUP not in set(df['name']) and MISSING not in set(df['name'])
    assert df['generator'].value_counts().to_dict() == {'deepai': 720, 'dreamStudio': 358}
    assert df['group'].nunique() == 720
    assert df['mos_quality'].min() == 0 and df['mos_quality'].max() == 5
    text = '\n'.join(warnings)
    assert 'row 1079 (MOS 0.441416), row 1080 (MOS 2.084116)' in text and f"'{MISSING}'" in text
    for column in DEFAULT:
        check_split_disjoint(df, 'group', column)
        assert df.groupby(column)['group'].nunique().to_dict() == {'train': 504, 'val': 72, 'test': 144}
    published = pd.read_csv(splits, dtype=str, keep_default_na=False).set_index('name')
    assert len(published) == 1079
    expected = published.loc[df['name'], IPCE_1K].reset_index(drop=True)
    pd.testing.assert_frame_equal(df[IPCE_1K], expected)
    assert (published.loc[DUP] == 'CONFLICT').sum() == 4
    for column in IPCE_1K:
        carved = df[column.replace('ipce', 'ipcev')]
        assert ((carved == 'test') == (df[column] == 'test')).all()
        assert (carved == 'val').sum() == round(0.125 * (df[column] == 'train').sum())


def test_real_agiqa1k_kept_duplicate_and_corroboration(real_1k):
    xlsx, splits, _ = real_1k
    scores = AGIQA1K_DIR / 'AIGC_all.csv'
    if not scores.exists():
        pytest.skip('AIGC_all.csv not found')
    df, warnings = build_agiqa1k_meta_info(xlsx, splits, duplicate_policy='corroborated', aigc_all_csv=scores)
    assert len(df) == 1079
    row = df.set_index('name').loc[DUP]
    printed = 5e-7 + rounding(torch.float64, scale=2, ops=2)  # 2.084116 is the MOS to 6 decimals: half a unit off
    assert row['mos_quality'] == pytest.approx(2.084116, abs=printed)
    excluded = ['ipce_split_02', 'ipce_split_03', 'ipce_split_05', 'ipce_split_10']
    assert [c for c in IPCE_1K if row[c] == 'excluded'] == excluded
    assert 'residual SD 0.380' in '\n'.join(warnings)


def test_bundled_agiqa1k_equals_fresh_build(real_1k, tmp_path):
    _, _, (df, _) = real_1k
    fresh = tmp_path / 'agiqa1k.csv'
    write_meta_info(df, fresh)
    assert BUNDLED_1K.read_bytes() == fresh.read_bytes(), \
        'bundled agiqa1k.csv drifted: rebuild it with build_agiqa1k_meta_info + write_meta_info'
    pd.testing.assert_frame_equal(read_meta_info(BUNDLED_1K), df, check_dtype=False)


def test_dataset_info_1k_and_20k():
    for module, key in ((agiqa1k, 'agiqa1k'), (aigiqa20k, 'aigiqa20k')):
        info = module.DATASET_INFO
        assert info['key'] == key and set(info) >= {'title', 'citation', 'licence', 'images', 'labels', 'dataroot'}
        assert list(info['labels']) == ['mos_quality']


# ============================================================ AIGIQA-20K, fixture

GENERATORS_20K = ['DALLE2', 'LCM_SD1.5', 'SDXL_Turbo', 'MJ']


def fixture_20k_rows(n=40):
    rows = []
    for k in range(n):
        generator = GENERATORS_20K[k % 4]
        prompt = f'prompt number {k // 2 if k < 12 else k}, "quoted", with commas'  # first 6 prompts twice
        rows.append([f'{generator}_{k:04d}.png', prompt, f'{0.12229 + 4.8 * ((k * 37) % n) / n:.10f}'])
    return rows


def write_headerless(path, rows, trailing_newline=False):
    text = pd.DataFrame(rows).to_csv(index=False, header=False, lineterminator='\n')
    path.write_text(text if trailing_newline else text.rstrip('\n'), encoding='utf-8')
    return path


def write_splits_20k(path, names):
    table = pd.DataFrame({'name': names})
    for k, column in enumerate(IPCE_20K):
        table[column] = ['test' if (i + k) % 10 == 0 else 'train' for i in range(len(names))]
    table.iloc[::-1].to_csv(path, index=False)
    return table


def test_aigiqa20k_fixture(tmp_path):
    rows = fixture_20k_rows()
    train = write_headerless(tmp_path / 'info_train.csv', rows)  # no final newline, as the official file
    val = write_headerless(tmp_path / 'info_val.csv', [[f'IF_{k:04d}.png', f'val prompt {k}'] for k in range(5)])
    splits = tmp_path / 'splits.csv'
    table = write_splits_20k(splits, [r[0] for r in rows])
    df, warnings = build_aigiqa20k_meta_info(train, splits, info_val_csv=val)
    assert len(df) == 40 and df['name'].tolist() == [r[0] for r in rows]
    assert list(df.columns[:5]) == ['name', 'mos_quality', 'prompt', 'generator', 'group']
    assert list(df.columns[5:]) == DEFAULT + IPCE_20K + [c.replace('ipce', 'ipcev') for c in IPCE_20K]
    assert df['mos_quality'].tolist() == [float(r[2]) for r in rows]
    assert df['prompt'].iloc[0] == 'prompt number 0, "quoted", with commas'
    assert df['generator'].iloc[:4].tolist() == GENERATORS_20K
    assert df['group'].nunique() == 34 and df['group'].iloc[0] == df['group'].iloc[1]
    text = '\n'.join(warnings)
    assert 'no public MOS' in text and '5 official val images' in text
    for column in DEFAULT:
        check_split_disjoint(df, 'group', column)
    expected = table.set_index('name').loc[df['name'], IPCE_20K].reset_index(drop=True)
    pd.testing.assert_frame_equal(df[IPCE_20K], expected)
    for column in IPCE_20K:
        carved = df[column.replace('ipce', 'ipcev')]
        assert ((carved == 'test') == (df[column] == 'test')).all()
        np.testing.assert_array_equal(carved, carve_validation(df[column], df['name'], 0.125,
                                                               123 + int(column[-2:])))
    with_newline = write_headerless(tmp_path / 'nl.csv', rows, trailing_newline=True)
    pd.testing.assert_frame_equal(build_aigiqa20k_meta_info(with_newline)[0], df[df.columns[:15]])


def test_aigiqa20k_rejects_bad_inputs(tmp_path):
    rows = fixture_20k_rows()
    two = write_headerless(tmp_path / 'two_columns.csv', [r[:2] for r in rows])
    with pytest.raises(MetadataError, match=r"two_columns.csv: expected 3 columns .*found 2; missing column\(s\) "
                                            r"\['mos'\]"):
        build_aigiqa20k_meta_info(two)
    nan = write_headerless(tmp_path / 'nan.csv', [r[:2] + [''] if i == 4 else r for i, r in enumerate(rows)])
    with pytest.raises(MetadataError, match=r"(?s)nan.csv: .*row N = line N.*mos_quality is NaN .*row 5 "
                                            r"\('DALLE2_0004.png'"):
        build_aigiqa20k_meta_info(nan)
    empty = write_headerless(tmp_path / 'empty.csv', [[r[0], ' ', r[2]] if i == 7 else r for i, r in enumerate(rows)])
    with pytest.raises(MetadataError, match=r"(?s)empty.csv: .*empty prompt in 1 row\(s\): row 8 \('MJ_0007.png'\)"):
        build_aigiqa20k_meta_info(empty)
    dup = write_headerless(tmp_path / 'dup.csv', rows + [rows[3]])
    with pytest.raises(MetadataError, match=r"(?s)dup.csv: .*'MJ_0003.png' \(rows 4, 41\)"):
        build_aigiqa20k_meta_info(dup)
    header = write_headerless(tmp_path / 'header.csv', [['name', 'prompt', 'mos']] + rows)
    with pytest.raises(MetadataError, match='header.csv: line 1 looks like a header'):
        build_aigiqa20k_meta_info(header)
    train = write_headerless(tmp_path / 'info_train.csv', rows)
    val = write_headerless(tmp_path / 'val.csv', [[rows[0][0], 'x']])
    with pytest.raises(MetadataError, match=r"val.csv: 1 name\(s\) also in the training file"):
        build_aigiqa20k_meta_info(train, info_val_csv=val)
    table = write_splits_20k(tmp_path / 'splits.csv', [r[0] for r in rows])
    table.loc[3, 'ipce_split_05'] = 'val'
    table.to_csv(tmp_path / 'bad_values.csv', index=False)
    with pytest.raises(MetadataError, match=r"bad_values.csv: ipce_split_05 .* row 4 \('MJ_0003.png': 'val'\)"):
        build_aigiqa20k_meta_info(train, tmp_path / 'bad_values.csv')


# ============================================================ AIGIQA-20K, the real files

@pytest.fixture(scope='module')
def real_20k():
    files = [AIGIQA20K_DIR / f for f in ('info_train.csv', 'splits_AIGIQA-20K_train14k_IPCE.csv', 'info_val.csv')]
    if not all(f.exists() for f in files):
        pytest.skip(f'AIGIQA-20K metadata not found in {AIGIQA20K_DIR}')
    return files, build_aigiqa20k_meta_info(*files[:2], info_val_csv=files[2])


def test_real_aigiqa20k(real_20k):
    (train, splits, val), (df, warnings) = real_20k
    assert train.read_bytes().count(b'\n') == 13999 and not train.read_bytes().endswith(b'\n')
    assert val.read_bytes().count(b'\n') == 1999 and not val.read_bytes().endswith(b'\n')
    assert len(df) == 14000 and df['name'].is_unique
    assert '2000 official val images' in '\n'.join(warnings)
    counts = df['generator'].value_counts()
    assert len(counts) == 15 and counts.sum() == 14000
    assert counts[['DALLE2', 'DALLE3', 'IF', 'MJ']].tolist() == [350] * 4
    assert counts[['LCM_Pixart', 'LCM_SD1.5', 'LCM_SDXL', 'SDXL_Turbo']].tolist() == [700] * 4
    assert 0.12 < df['mos_quality'].min() < 0.13 and 4.98 < df['mos_quality'].max() <= 5
    assert df['mos_quality'].iloc[0] == 3.6638868235
    assert df['group'].nunique() == 13624 and (df.groupby('group').size() > 1).sum() == 335
    for column in DEFAULT:
        assert_group_disjoint(df, column)
        assert df.groupby(column)['group'].nunique().to_dict() == {'train': 9537, 'val': 1362, 'test': 2725}
    published = pd.read_csv(splits, dtype=str).set_index('name').loc[df['name'], IPCE_20K].reset_index(drop=True)
    pd.testing.assert_frame_equal(df[IPCE_20K], published)
    assert (df['ipce_split_01'] == 'test').sum() == 1400 and (df['ipce_split_02'] == 'test').sum() == 1401
    for column in IPCE_20K:
        carved = df[column.replace('ipce', 'ipcev')]
        assert ((carved == 'test') == (df[column] == 'test')).all() and (carved == 'val').sum() == 1575


def test_real_aigiqa20k_mos_match_assembled_file(real_20k):
    _, (df, _) = real_20k
    assembled = AIGIQA20K_DIR / 'AIGIQA-20K_all20000_name_split_mos_prompt__assembled.csv'
    if not assembled.exists():
        pytest.skip('assembled AIGIQA-20K file not found')
    other = pd.read_csv(assembled).query('official_split == "train"').set_index('name').loc[df['name']]
    # the assembled file prints 9 decimals, info_train.csv 10: half a unit of the 9th, and the parsing
    printed = 5e-10 + rounding(torch.float64, scale=5, ops=4)
    np.testing.assert_allclose(other['mos'].to_numpy(), df['mos_quality'].to_numpy(), rtol=0, atol=printed)
    assert (other['prompt'].to_numpy() == df['prompt'].to_numpy()).all()
    assert (other['generator'].to_numpy() == df['generator'].to_numpy()).all()


@pytest.mark.parametrize('key', ['agiqa1k', 'agiqa3k'])
def test_bundled_loaders_yield_batches(key, tmp_path):
    from torch.utils.data import DataLoader

    from pyiqa.data import build_dataset

    from conftest import write_synthetic_images
    from pyiqa_agiqa.data import bundled_meta_info

    table = pd.read_csv(bundled_meta_info()[key])
    test_rows = table[table['default_split_01'] == 'test']
    write_synthetic_images(tmp_path, test_rows['name'])
    dataset = build_dataset(dict(name=key, type='AGIQADataset', meta_info_file=key, dataroot_target=str(tmp_path),
                                 split_index=1, phase='test', augment={'resize': 16, 'center_crop': 16}))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert len(dataset) == len(test_rows) and batch['img'].shape == (4, 3, 16, 16)
    assert batch['prompt'][0] == test_rows.iloc[0]['prompt']
    label = batch['labels']['mos_quality'][0].item()
    assert label == pytest.approx(test_rows.iloc[0]['mos_quality'], rel=rounding(torch.float32, ops=1))  # as float32
    assert ('std' in batch) == (key == 'agiqa3k')


def test_aigiqa20k_loader_yields_batches(tmp_path):
    from torch.utils.data import DataLoader

    from pyiqa.data import build_dataset

    from conftest import write_synthetic_images

    rows = [(f'SDXL_{i:04d}.png', f'prompt {i // 2}', 1 + i % 4) for i in range(40)]
    info = tmp_path / 'info_train.csv'
    pd.DataFrame(rows).to_csv(info, header=False, index=False)
    table, _ = build_aigiqa20k_meta_info(info)
    meta = tmp_path / 'meta.csv'
    write_meta_info(table, meta)
    write_synthetic_images(tmp_path / 'train', table['name'])
    dataset = build_dataset(dict(name='20k', type='AGIQADataset', meta_info_file=str(meta),
                                 dataroot_target=str(tmp_path / 'train'), split_index=1, phase='train',
                                 augment={'resize': 16, 'center_crop': 16, 'hflip': True}))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch['img'].shape == (4, 3, 16, 16) and batch['generator'][0] == 'SDXL'
