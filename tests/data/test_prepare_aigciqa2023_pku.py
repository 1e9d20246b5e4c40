"""AIGCIQA2023 and PKU-I2IQA converters: official-format fixtures (xlsx via openpyxl, .mat via
scipy.io.savemat) in tmp_path, every defect, split properties, and agreement with the
reference metadata in ../shared (those tests skip when it is absent)."""
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import scipy.io
import torch

from pyiqa_agiqa.data.tables import MetadataError, read_meta_info, write_meta_info
from pyiqa_agiqa.data.prepare import aigciqa2023 as aig
from pyiqa_agiqa.data.prepare.aigciqa2023 import MODELS, build_aigciqa2023_meta_info, image_index
from pyiqa_agiqa.data.prepare.pku_i2iqa import build_pku_i2iqa_meta_info
from pyiqa_agiqa.data.splits import check_split_disjoint

from conftest import rounding

SHARED = Path(__file__).resolve().parents[3] / 'shared' / 'datasets'
AIG_DIR = SHARED / 'AIGCIQA2023'
AIG_PR4 = AIG_DIR / 'AIGCIQA2023_from_unmerged_PR4.csv'
AIG_IPCE = AIG_DIR / 'AIGCIQA2023_all_set__IPCE_mosz_div20.csv'
AIG_SPLITS = AIG_DIR / 'splits_AIGCIQA2023_IPCE_CIANet.csv'
AIG_XLSX = (AIG_DIR / 'AIGCIQA2023_Prompts.xlsx', AIG_DIR / 'pic-index.xlsx')
PKU_DIR = SHARED / 'PKU-I2IQA'
PKU_CSV = PKU_DIR / 'PKU-I2IQA_metadata_reconstructed_from_CIANet_splits.csv'
PKU_SPLITS = PKU_DIR / 'splits_PKU-I2IQA_CIANet.csv'
DIMS = ('quality', 'authenticity', 'correspondence')
PKU_HEADER = ['Image_prompt', 'Text_prompt', 'Generated_image', 'MOS_q', 'MOS_a', 'MOS_c']


def write_xlsx(path, rows, header=None):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in ([header] if header else []) + [list(r) for r in rows]:
        sheet.append(row)
    book.save(path)
    return path


def split_columns(df, scheme):
    return [c for c in df.columns if c.startswith(f'{scheme}_split_')]


def groups_by_part(df, column):
    return {p: set(df['group'][df[column] == p]) for p in ('train', 'val', 'test')}


def published_splits(cells, rng, n_ipce_test=None):
    """{column: parts}: cianet = one test row per cell; ipce = n_ipce_test random test rows."""
    cells = np.asarray(cells)
    out = {}
    if n_ipce_test is not None:
        for i in range(1, 11):
            parts = np.full(len(cells), 'train', dtype='<U5')
            parts[rng.choice(len(cells), n_ipce_test, replace=False)] = 'test'
            out[f'ipce_split_{i:02d}'] = parts
    for i in range(1, 11):
        parts = np.full(len(cells), 'train', dtype='<U5')
        for cell in np.unique(cells):
            parts[rng.choice(np.flatnonzero(cells == cell))] = 'test'
        out[f'cianet_split_{i:02d}'] = parts
    return out


# ================================================================ AIGCIQA2023

@pytest.fixture(scope='module')
def aig_source():
    """Prompt rows (category, class, prompt) and the six label vectors: from the community
    merge in ../shared when present, else synthetic with the same layout."""
    if AIG_PR4.exists():
        pr4 = pd.read_csv(AIG_PR4, index_col=0, keep_default_na=False)
        prompts = [tuple(r) for r in pr4[['style', 'class', 'prompt']].iloc[0:400:4].to_numpy()]
        labels = {f'{k}_{d}': pr4[f'{d}_{k}'].to_numpy(dtype=float)
                  for k in ('mos', 'std') for d in DIMS}
        return prompts, labels
    rng = np.random.default_rng(0)
    prompts = [(f'category {p // 10}', f'class {p % 10}', f'a photo of thing {p}') for p in range(100)]
    prompts[22] = prompts[22][:2] + (prompts[22][2] + ' ',)
    labels = {f'mos_{d}': rng.uniform(26, 74, 2400) for d in DIMS}
    labels.update({f'std_{d}': rng.uniform(0.4, 1.7, 2400) for d in DIMS})
    return prompts, labels


PIC_ROWS = [(MODELS[i // 400], f'{(i % 400) // 4:03d}-{i % 4 + 1}.png') for i in range(2400)]


def save_mat(path, key, values, shape=(2400, 1)):
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {key: np.asarray(values, dtype=float).reshape(shape)})
    return path


@pytest.fixture(scope='module')
def aig_release(aig_source, tmp_path_factory):
    """An unpacked release in the official layout (no images)."""
    prompts, labels = aig_source
    root = tmp_path_factory.mktemp('aigciqa2023') / 'release'
    root.mkdir()
    write_xlsx(root / 'AIGCIQA2023_Prompts.xlsx', prompts)
    write_xlsx(root / 'pic-index.xlsx', PIC_ROWS)
    for k, d in enumerate(DIMS, 1):
        save_mat(root / f'DATA/MOS/mosz{k}.mat', 'MOSz', labels[f'mos_{d}'])
        save_mat(root / f'DATA/STD/SD{k}.mat', 'SD', labels[f'std_{d}'])
    return root


@pytest.fixture(scope='module')
def aig_splits_csv(aig_release):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({'name': [f'{i}.png' for i in range(2400)],
                          'model': [m for m, _ in PIC_ROWS], 'model_file': [f for _, f in PIC_ROWS]})
    table = table.assign(**published_splits(np.arange(2400) // 4, rng, n_ipce_test=480))
    path = aig_release.parent / 'splits.csv'
    table.iloc[::-1].to_csv(path, index=False)  # row order must not matter
    return path


@pytest.fixture(scope='module')
def aig_built(aig_release, aig_splits_csv):
    return build_aigciqa2023_meta_info(aig_release, aig_splits_csv)


def copy_release(release, tmp_path):
    target = tmp_path / 'release'
    shutil.copytree(release, target)
    return target


def test_aig_index_rule():
    assert image_index('Controlnet', 0, 1) == 0
    assert image_index('DALLE', 3, 2) == 400 + 12 + 1
    assert image_index('Unidiffuser', 99, 4) == 2399
    every = [image_index(m, p, k) for m in MODELS for p in range(100) for k in range(1, 5)]
    assert every == list(range(2400))


def test_aig_build(aig_built, aig_source):
    df, warnings = aig_built
    prompts, labels = aig_source
    assert list(df.columns[:13]) == ['name', 'mos_quality', 'prompt', 'mos_authenticity',
                                     'mos_correspondence', 'std_quality', 'std_authenticity',
                                     'std_correspondence', 'generator', 'group', 'category',
                                     'class', 'pic_index_file']
    schemes = ('default', 'ipce', 'cianet', 'cianetv')
    assert list(df.columns[13:]) == [f'{s}_split_{i:02d}' for s in schemes for i in range(1, 11)]
    assert df['name'].tolist() == [f'Image/allimg/{i}.png' for i in range(2400)]
    for column, values in labels.items():
        np.testing.assert_array_equal(df[column].to_numpy(), values)
    assert df['group'].tolist() == [(i % 400) // 4 for i in range(2400)]
    assert df['generator'].tolist() == [m for m, _ in PIC_ROWS]
    assert df['pic_index_file'].iloc[413] == '003-2.png'
    assert df['prompt'].tolist() == [prompts[(i % 400) // 4][2] for i in range(2400)]
    assert df['category'].iloc[2399] == prompts[99][0] and df['class'].iloc[5] == prompts[1][1]
    assert any('sheet row 23' in w and 'kept verbatim' in w for w in warnings)
    assert any('Image/allimg not found' in w for w in warnings)


def test_aig_meta_info_round_trip(aig_built, tmp_path):
    df = aig_built[0]
    out = tmp_path / 'aigciqa2023.csv'
    write_meta_info(df, out)
    pd.testing.assert_frame_equal(read_meta_info(out), df, check_dtype=False)
    assert read_meta_info(out)['prompt'].iloc[22 * 4].endswith(' ')


def test_aig_splits(aig_built, aig_splits_csv):
    df = aig_built[0]
    published = pd.read_csv(aig_splits_csv).set_index('name').loc[[f'{i}.png' for i in range(2400)]]
    for column in split_columns(df, 'default'):
        check_split_disjoint(df, 'group', column)
        assert df[column].value_counts().to_dict() == {'train': 1680, 'val': 240, 'test': 480}
    assert len({tuple(df[c]) for c in split_columns(df, 'default')}) == 10
    for column in split_columns(df, 'ipce') + split_columns(df, 'cianet'):
        assert (df[column].to_numpy() == published[column].to_numpy()).all()
    for column in split_columns(df, 'cianetv'):
        cianet = df[column.replace('cianetv', 'cianet')]
        assert ((df[column] == 'test') == (cianet == 'test')).all()
        assert df[column].value_counts().to_dict() == {'train': 1584, 'val': 216, 'test': 600}
        by_part = groups_by_part(df, column)
        assert len(by_part['val']) == 12 and not by_part['val'] & by_part['train']
        assert by_part['test'] == set(range(100))  # published design: all prompts in test
    again, _ = build_aigciqa2023_meta_info(aig_splits_csv.parent / 'release', aig_splits_csv)
    pd.testing.assert_frame_equal(again, df)


def test_aig_explicit_paths_and_without_std(aig_release, aig_built, tmp_path):
    elsewhere = copy_release(aig_release, tmp_path)
    df, warnings = build_aigciqa2023_meta_info(
        prompts_xlsx=elsewhere / 'AIGCIQA2023_Prompts.xlsx', pic_index_xlsx=elsewhere / 'pic-index.xlsx',
        mos_mats=[elsewhere / f'DATA/MOS/mosz{k}.mat' for k in (1, 2, 3)],
        std_mats=[elsewhere / f'DATA/STD/SD{k}.mat' for k in (1, 2, 3)])
    expected = aig_built[0]
    pd.testing.assert_frame_equal(df, expected[df.columns])
    assert not any('Image/allimg' in w for w in warnings)  # no release_root: no image check
    shutil.rmtree(elsewhere / 'DATA' / 'STD')
    df, _ = build_aigciqa2023_meta_info(elsewhere, with_std=False)
    assert not [c for c in df.columns if c.startswith('std_')]
    with pytest.raises(ValueError, match='release_root'):
        build_aigciqa2023_meta_info()
    with pytest.raises(ValueError, match='three paths'):
        build_aigciqa2023_meta_info(elsewhere, mos_mats=elsewhere / 'DATA/MOS/mosz1.mat')


def test_aig_missing_files_named(aig_release, tmp_path):
    release = copy_release(aig_release, tmp_path)
    (release / 'DATA/MOS/mosz2.mat').unlink()
    (release / 'pic-index.xlsx').unlink()
    with pytest.raises(FileNotFoundError, match=r'(?s)pic-index.xlsx \(official place.*'
                                                r'DATA/MOS/mosz2.mat \(official place'):
        build_aigciqa2023_meta_info(release)
    with pytest.raises(FileNotFoundError, match=r'nowhere.mat \(given as mos_authenticity\)'):
        build_aigciqa2023_meta_info(aig_release, mos_mats=[aig_release / 'DATA/MOS/mosz1.mat',
                                                           tmp_path / 'nowhere.mat',
                                                           aig_release / 'DATA/MOS/mosz3.mat'])


@pytest.mark.parametrize('key, values, shape, expected', [
    ('MOS', np.ones(2400), (2400, 1), r"mosz2.mat: no variable 'MOSz'; variables found: \['MOS'\]"),
    ('MOSz', np.ones(2399), (2399, 1), r"mosz2.mat: 'MOSz' has shape \(2399, 1\), expected \(2400, 1\)"),
    ('MOSz', np.ones(4800), (2400, 2), r"mosz2.mat: 'MOSz' has shape \(2400, 2\)"),
    ('MOSz', np.r_[np.ones(5), np.nan, np.ones(2394)], (2400, 1),
     r"mosz2.mat: 'MOSz' is NaN or infinite in 1 entr.*entry 6 \(Image/allimg/5.png\)"),
])
def test_aig_bad_mat(aig_release, tmp_path, key, values, shape, expected):
    release = copy_release(aig_release, tmp_path)
    save_mat(release / 'DATA/MOS/mosz2.mat', key, values, shape)
    with pytest.raises(MetadataError, match=expected):
        build_aigciqa2023_meta_info(release)


def test_aig_row_vector_accepted_and_non_mat_rejected(aig_release, aig_source, tmp_path):
    release = copy_release(aig_release, tmp_path)
    save_mat(release / 'DATA/STD/SD3.mat', 'SD', aig_source[1]['std_correspondence'], (1, 2400))
    df, _ = build_aigciqa2023_meta_info(release)
    np.testing.assert_array_equal(df['std_correspondence'], aig_source[1]['std_correspondence'])
    (release / 'DATA/STD/SD1.mat').write_text('not a mat file')
    with pytest.raises(MetadataError, match=r'SD1.mat: cannot be read as a MATLAB'):
        build_aigciqa2023_meta_info(release)


def test_aig_bad_prompts(aig_release, aig_source, tmp_path):
    release = copy_release(aig_release, tmp_path)
    prompts = list(aig_source[0])
    prompts[7] = prompts[7][:2] + ('   ',)
    write_xlsx(release / 'AIGCIQA2023_Prompts.xlsx', prompts)
    with pytest.raises(MetadataError, match=r'AIGCIQA2023_Prompts.xlsx: empty prompt in 1 row\(s\): '
                                            r'sheet row\(s\) 8 \(prompt index 7\)'):
        build_aigciqa2023_meta_info(release)
    write_xlsx(release / 'AIGCIQA2023_Prompts.xlsx', aig_source[0],
               header=['category', 'class', 'prompt'])
    with pytest.raises(MetadataError, match=r'Prompts.xlsx: expected 100 rows x 3 columns .* found 101 x 3'):
        build_aigciqa2023_meta_info(release)
    (release / 'AIGCIQA2023_Prompts.xlsx').write_text('plain text')
    with pytest.raises(MetadataError, match=r'Prompts.xlsx: cannot be read as an .xlsx'):
        build_aigciqa2023_meta_info(release)


@pytest.mark.parametrize('change, expected', [
    ({5: PIC_ROWS[6], 6: PIC_ROWS[5]},
     (r'pic-index.xlsx: 2 row\(s\) disagree with the index rule.*sheet row 6 \(Controlnet, '
      r'001-3.png\) -> rule gives 6.png, row is 5.png')),
    ({10: ('Midjourney', '002-3.png')}, r"pic-index.xlsx: unknown model in 1 row.*sheet row 11 \('Midjourney'\)"),
    ({10: ('Controlnet', '2-3.png')}, r"pic-index.xlsx: file name not of the form .*sheet row 11 \('2-3.png'\)"),
])
def test_aig_bad_pic_index(aig_release, tmp_path, change, expected):
    release = copy_release(aig_release, tmp_path)
    write_xlsx(release / 'pic-index.xlsx', [change.get(i, row) for i, row in enumerate(PIC_ROWS)])
    with pytest.raises(MetadataError, match=expected):
        build_aigciqa2023_meta_info(release)


def test_aig_bad_published_splits(aig_release, aig_splits_csv, tmp_path):
    table = pd.read_csv(aig_splits_csv)
    quad_of_0 = table['name'].isin(['0.png', '1.png', '2.png', '3.png'])
    broken = table.copy()
    broken.loc[quad_of_0, 'cianet_split_04'] = 'test'
    broken.to_csv(tmp_path / 'two_tests.csv', index=False)
    with pytest.raises(MetadataError, match=r'two_tests.csv: cianet_split_04 is not the CIANet '
                                            r'protocol .*: 1 group\(s\).*0 \(4 test\)'):
        build_aigciqa2023_meta_info(aig_release, tmp_path / 'two_tests.csv')
    broken = table.copy()
    broken.loc[broken['name'] == '7.png', 'model'] = 'DALLE'
    broken.to_csv(tmp_path / 'model.csv', index=False)
    with pytest.raises(MetadataError, match=r"model.csv: column 'model' disagrees .*7.png \('DALLE' "
                                            r"vs 'Controlnet'\)"):
        build_aigciqa2023_meta_info(aig_release, tmp_path / 'model.csv')
    table[table['name'] != '9.png'].to_csv(tmp_path / 'short.csv', index=False)  # 9.png not listed: excluded
    df, warnings = build_aigciqa2023_meta_info(aig_release, tmp_path / 'short.csv', check_images=False)
    row = df.loc[df['name'] == 'Image/allimg/9.png', split_columns(df, 'ipce') + split_columns(df, 'cianet')
                 + split_columns(df, 'cianetv')]
    assert (row == 'excluded').all(axis=None)
    assert any("short.csv: 1 image(s) of the release (images 0..2399.png) not in the split file, set to 'excluded'"
               in w and "'9.png'" in w for w in warnings)
    quad = table['name'].isin(['8.png', '9.png', '10.png', '11.png'])
    test_of_quad = table.loc[quad & (table['cianet_split_01'] == 'test'), 'name'].iat[0]
    table[table['name'] != test_of_quad].to_csv(tmp_path / 'no_test.csv', index=False)  # 0 test in a partial cell
    build_aigciqa2023_meta_info(aig_release, tmp_path / 'no_test.csv', check_images=False)
    table.assign(name='x' + table['name']).to_csv(tmp_path / 'renamed.csv', index=False)
    with pytest.raises(MetadataError, match=r"renamed.csv: none of its 2400 names is an image of the release"):
        build_aigciqa2023_meta_info(aig_release, tmp_path / 'renamed.csv')
    table.assign(ipce_split_02='val').to_csv(tmp_path / 'val.csv', index=False)
    with pytest.raises(MetadataError, match=r"val.csv: ipce_split_02 has values other than train/test"):
        build_aigciqa2023_meta_info(aig_release, tmp_path / 'val.csv')


def test_aig_image_check(aig_release, tmp_path):
    release = copy_release(aig_release, tmp_path)
    folder = release / 'Image' / 'allimg'
    folder.mkdir(parents=True)
    for i in range(2400):
        if i not in (17, 2399):
            (folder / f'{i}.png').touch()
    _, warnings = build_aigciqa2023_meta_info(release)
    assert any(w.startswith('2 image(s) missing') and 'Image/allimg/17.png, Image/allimg/2399.png' in w
               for w in warnings)


# ---------------------------------------------------------------- the real AIGCIQA2023 files

@pytest.fixture(scope='module')
def aig_real(aig_source, tmp_path_factory):
    needed = [AIG_PR4, AIG_IPCE, AIG_SPLITS, *AIG_XLSX]
    if not all(p.exists() for p in needed):
        pytest.skip(f'AIGCIQA2023 reference metadata not found in {AIG_DIR}')
    _, labels = aig_source  # built from the community merge (AIG_PR4)
    root = tmp_path_factory.mktemp('aigciqa2023_real')
    for k, d in enumerate(DIMS, 1):
        save_mat(root / f'DATA/MOS/mosz{k}.mat', 'MOSz', labels[f'mos_{d}'])
        save_mat(root / f'DATA/STD/SD{k}.mat', 'SD', labels[f'std_{d}'])
    for path in AIG_XLSX:  # the official xlsx files as published
        shutil.copy(path, root)
    return build_aigciqa2023_meta_info(root, AIG_SPLITS, check_images=False)


def test_aig_real_pic_index_follows_index_rule():
    if not AIG_XLSX[1].exists():
        pytest.skip('pic-index.xlsx not found')
    models, prompt_index, k, _ = aig._read_pic_index(AIG_XLSX[1])  # raises on any disagreement
    assert [image_index(m, p, j) for m, p, j in zip(models, prompt_index, k)] == list(range(2400))


def test_aig_real_matches_references(aig_real):
    df, warnings = aig_real
    pr4 = pd.read_csv(AIG_PR4, index_col=0, keep_default_na=False)
    assert (df['name'].str.replace('Image/allimg/', '') == pr4['name']).all()
    assert (df['prompt'] == pr4['prompt']).all()  # official prompts xlsx vs the merge
    assert (df['category'] == pr4['style']).all() and (df['class'] == pr4['class']).all()
    ipce = pd.read_csv(AIG_IPCE)
    assert (df['generator'] == ipce['model']).all() and (df['pic_index_file'] == ipce['image_name']).all()
    # the merge prints 10 significant digits (8 decimals for MOS 26..74): half a unit of the 8th, then
    # the rounding of the division by 20 (IPCE's file), its undoing and the parsing
    printed = 5e-9 + rounding(torch.float64, scale=80, ops=4)
    for k, d in enumerate(DIMS, 1):
        np.testing.assert_allclose(df[f'mos_{d}'], ipce[f'mosz{k}'] * 20, rtol=0, atol=printed)
    assert df['generator'].value_counts().to_dict() == dict.fromkeys(MODELS, 400)
    assert df['group'].nunique() == 100 and df['prompt'].nunique() == 100
    assert 26 < df['mos_quality'].min() < 27 and 72 < df['mos_quality'].max() < 73
    assert 28 < df['mos_authenticity'].min() and df['mos_authenticity'].max() < 74
    assert (df[[c for c in df.columns if c.startswith('std_')]].to_numpy() > 0.39).all()
    assert len(warnings) == 1 and 'sheet row 23' in warnings[0] and 'sheet row 55' in warnings[0]
    assert (df['class'] == 'Arts').sum() == 24  # row 58: the one class outside the cycle


def test_aig_real_splits(aig_real):
    df = aig_real[0]
    published = pd.read_csv(AIG_SPLITS)
    for column in split_columns(df, 'ipce') + split_columns(df, 'cianet'):
        assert (df[column].to_numpy() == published[column].to_numpy()).all()
        expected = {'train': 1920, 'test': 480} if column.startswith('ipce') else {'train': 1800, 'test': 600}
        assert df[column].value_counts().to_dict() == expected
    for column in split_columns(df, 'cianetv'):
        by_part = groups_by_part(df, column)
        assert len(by_part['val']) == 12 and not by_part['val'] & by_part['train']
        assert ((df[column] == 'test') == (df[column.replace('cianetv', 'cianet')] == 'test')).all()
    for column in split_columns(df, 'default'):
        check_split_disjoint(df, 'group', column)
        assert df.groupby(column)['group'].nunique().to_dict() == {'train': 70, 'val': 10, 'test': 20}


# ================================================================ PKU-I2IQA

@pytest.fixture(scope='module')
def pku_source():
    """Annotation rows in the official column order: from the reconstruction in ../shared when
    present, else synthetic with the same layout (one text prompt shared by two sources)."""
    if PKU_CSV.exists():
        m = pd.read_csv(PKU_CSV, keep_default_na=False, dtype={'image_prompt_id': str})
        return [(f'{int(i)}.jpg', t, n, q, a, c) for i, t, n, q, a, c in zip(
            m['image_prompt_id'], m['text_prompt'], m['name'], m['mos_quality'],
            m['mos_authenticity'], m['mos_correspondence'])]
    rng = np.random.default_rng(2)
    rows = []
    for generator in ('MJ', 'SD'):
        for s in range(200):
            text = f'text prompt {99 if s == 196 else s}'
            for ij in ('00', '01', '10', '11'):
                q, a, c = np.round(rng.uniform(0.4, 5, 3), 4)
                rows.append((f'{s}.jpg', text, f'{generator}_{s:03d}_{ij}.jpg', q, a, c))
    return rows


@pytest.fixture(scope='module')
def pku_release(pku_source, tmp_path_factory):
    root = tmp_path_factory.mktemp('pku') / 'release'
    root.mkdir()
    write_xlsx(root / 'I2IQA_annotation.xlsx', pku_source, header=PKU_HEADER)
    return root


@pytest.fixture(scope='module')
def pku_splits_csv(pku_source, pku_release):
    names = [r[2] for r in pku_source]
    cells = [n[:6] for n in names]  # generator + source image
    table = pd.DataFrame({'name': names}).assign(**published_splits(cells, np.random.default_rng(3)))
    path = pku_release.parent / 'splits.csv'
    table.sample(frac=1, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope='module')
def pku_built(pku_release, pku_splits_csv):
    return build_pku_i2iqa_meta_info(pku_release, pku_splits_csv)


SMALL = [('0.jpg', 'a dog', 'MJ_000_00.jpg', 3.5, 2.5, 4.0),
         ('0.jpg', 'a dog', 'SD_000_01.jpg', 2.25, 1.5, 3.0),
         ('1.jpg', 'a cat, sitting', 'MJ_001_10.jpg', 0.6988, 4.81, 4.9844),
         ('1.jpg', 'a cat, sitting', 'SD_001_11.jpg', 4.618, 0.4411, 0.676)]


def build_small(tmp_path, rows=SMALL, header=PKU_HEADER, **kwargs):
    path = write_xlsx(tmp_path / 'I2IQA_annotation.xlsx', rows, header=header)
    return build_pku_i2iqa_meta_info(annotation_xlsx=path, **kwargs)


def test_pku_build(pku_built, pku_source):
    df, warnings = pku_built
    assert list(df.columns[:8]) == ['name', 'mos_quality', 'prompt', 'mos_authenticity',
                                    'mos_correspondence', 'generator', 'group', 'ref_name']
    assert list(df.columns[8:]) == [f'{s}_split_{i:02d}' for s in ('default', 'cianet', 'cianetv')
                                    for i in range(1, 11)]
    assert df['name'].tolist() == [f'Generated_image/All/{r[2]}' for r in pku_source]
    assert df['ref_name'].tolist() == [f'Image_prompt/{r[0]}' for r in pku_source]
    assert df['group'].tolist() == [int(r[0][:-4]) for r in pku_source]
    assert df['prompt'].tolist() == [r[1] for r in pku_source]
    for j, column in enumerate(('mos_quality', 'mos_authenticity', 'mos_correspondence'), 3):
        np.testing.assert_array_equal(df[column], [float(r[j]) for r in pku_source])
    assert df['generator'].value_counts().to_dict() == {'MJ': 800, 'SD': 800}
    assert df['group'].nunique() == 200 and df.groupby('group').size().eq(8).all()
    assert df['name'].iloc[0] == 'Generated_image/All/MJ_000_00.jpg' and df['ref_name'].iloc[0] == 'Image_prompt/0.jpg'
    shared = [w for w in warnings if 'belongs to several source images' in w]
    assert len(shared) == 1 and '(99, 196)' in shared[0]
    assert sum('not found: the meta-info was built from the metadata only' in w for w in warnings) == 2
    assert len(warnings) == 3


def test_pku_round_trip(pku_built, tmp_path):
    out = tmp_path / 'pku.csv'
    write_meta_info(pku_built[0], out)
    pd.testing.assert_frame_equal(read_meta_info(out), pku_built[0], check_dtype=False)


def test_pku_splits(pku_built, pku_splits_csv):
    df = pku_built[0]
    published = pd.read_csv(pku_splits_csv).set_index('name').loc[df['name'].str[20:]]
    for column in split_columns(df, 'default'):
        check_split_disjoint(df, 'group', column)
        assert df.groupby(column)['group'].nunique().to_dict() == {'train': 140, 'val': 20, 'test': 40}
        assert df[column].value_counts().to_dict() == {'train': 1120, 'val': 160, 'test': 320}
    for column in split_columns(df, 'cianet'):
        assert (df[column].to_numpy() == published[column].to_numpy()).all()
    for column in split_columns(df, 'cianetv'):
        assert ((df[column] == 'test') == (df[column.replace('cianetv', 'cianet')] == 'test')).all()
        assert df[column].value_counts().to_dict() == {'train': 1050, 'val': 150, 'test': 400}
        by_part = groups_by_part(df, column)
        assert len(by_part['val']) == 25 and not by_part['val'] & by_part['train']
    assert len({tuple(df[c]) for c in split_columns(df, 'cianetv')}) == 10


def test_pku_header_detection_and_variants(tmp_path):
    with_header, _ = build_small(tmp_path)
    without, _ = build_small(tmp_path, header=None)
    pd.testing.assert_frame_equal(with_header, without)
    assert with_header['name'].tolist()[2] == 'Generated_image/All/MJ_001_10.jpg'
    assert with_header['ref_name'].tolist() == ['Image_prompt/0.jpg'] * 2 + ['Image_prompt/1.jpg'] * 2
    assert with_header['group'].tolist() == [0, 0, 1, 1]
    assert with_header['mos_correspondence'].tolist() == [4.0, 3.0, 4.9844, 0.676]
    swapped, warnings = build_small(tmp_path, header=['a', 'b', 'c', 'MOS_c', 'MOS_a', 'MOS_q'])
    pd.testing.assert_frame_equal(swapped, with_header)  # position wins ...
    assert any("header cell 'MOS_c' of column 4 looks like mos_correspondence" in w for w in warnings)
    bare = [(int(r[0][:-4]),) + r[1:] + ('extra',) for r in SMALL]  # numbers + a 7th column
    df, warnings = build_small(tmp_path, rows=bare, header=None)
    pd.testing.assert_frame_equal(df, with_header)
    assert any('bare number in 4 row(s)' in w for w in warnings)
    assert any('1 column(s) after the sixth ignored' in w for w in warnings)
    odd = [('Image_prompt/0.jpg', 'a dog', 'Generated_image/All/MJ_000_00.jpg', 3, 2, 4),
           ('0.jpg', 'a dog', 'XL_000_00.jpg', 3, 2, 4), ('1.jpg', 'a cat', 'MJ_007_00.jpg', 3, 2, 4)]
    df, warnings = build_small(tmp_path, rows=odd)
    assert df['name'].tolist() == ['Generated_image/All/MJ_000_00.jpg', 'Generated_image/All/XL_000_00.jpg',
                                   'Generated_image/All/MJ_007_00.jpg']
    assert df['ref_name'].iloc[0] == 'Image_prompt/0.jpg' and df['generator'].tolist() == ['MJ', 'XL', 'MJ']
    for expected in ('carry a folder', "not of the documented form", "generators other than ['MJ', 'SD']: ['XL']",
                     'Generated_image/All/MJ_007_00.jpg vs Image_prompt/1.jpg', 'the paper describes 1600'):
        assert any(expected in w for w in warnings), expected


@pytest.mark.parametrize('row, column, value, expected', [
    (1, 3, None, (r"(?s)\(data rows from sheet row 2\): .*mos_quality is NaN or non-numeric in 1 "
                  r"row\(s\): row 2 \('Generated_image/All/SD_000_01.jpg'")),
    (2, 5, 'n/a', r"mos_correspondence .* row 3 \('Generated_image/All/MJ_001_10.jpg': 'n/a'\)"),
    (3, 1, '  ', r"empty prompt in 1 row\(s\): row 4 \('Generated_image/All/SD_001_11.jpg'\)"),
    (3, 2, 'MJ_000_00.jpg', r"duplicated name\(s\): 'Generated_image/All/MJ_000_00.jpg' \(rows 1, 4\)"),
    (0, 2, None, r"empty generated image name in row 1"),
    (2, 0, '', r"empty image prompt in row 3"),
])
def test_pku_bad_rows(tmp_path, row, column, value, expected):
    rows = [list(r) for r in SMALL]
    rows[row][column] = value
    with pytest.raises(MetadataError, match=expected) as info:
        build_small(tmp_path, rows=rows)
    assert 'I2IQA_annotation.xlsx' in str(info.value)


def test_pku_bad_files(tmp_path, pku_release, pku_splits_csv):
    with pytest.raises(FileNotFoundError, match=r'missing.*I2IQA_annotation.xlsx \(official place'):
        build_pku_i2iqa_meta_info(tmp_path / 'missing')
    with pytest.raises(FileNotFoundError, match=r'other.xlsx \(given as annotation_xlsx\)'):
        build_pku_i2iqa_meta_info(annotation_xlsx=tmp_path / 'other.xlsx')
    with pytest.raises(ValueError, match='release_root'):
        build_pku_i2iqa_meta_info()
    with pytest.raises(MetadataError, match=r'I2IQA_annotation.xlsx: expected 6 columns .* found 5'):
        build_small(tmp_path, rows=[r[:5] for r in SMALL], header=None)
    table = pd.read_csv(pku_splits_csv)
    first = table['name'].isin(['MJ_000_00.jpg', 'MJ_000_01.jpg', 'MJ_000_10.jpg', 'MJ_000_11.jpg'])
    table.loc[first, 'cianet_split_07'] = 'train'
    table.to_csv(tmp_path / 'no_test.csv', index=False)
    message = (r"no_test.csv: cianet_split_07 is not the CIANet protocol "
               r"\(one test image per \(generator, source image\) group\).*MJ:0 \(0 test\)")
    with pytest.raises(MetadataError, match=message):
        build_pku_i2iqa_meta_info(pku_release, tmp_path / 'no_test.csv')


def test_pku_image_check(tmp_path):
    release = tmp_path / 'release'
    for folder in ('Generated_image/All', 'Image_prompt'):
        (release / folder).mkdir(parents=True)
    for row in SMALL[:3]:
        (release / 'Generated_image/All' / row[2]).touch()
    (release / 'Image_prompt/0.jpg').touch()
    write_xlsx(release / 'I2IQA_annotation.xlsx', SMALL, header=PKU_HEADER)
    _, warnings = build_pku_i2iqa_meta_info(release)
    assert any(w.startswith('1 image(s) missing') and 'Generated_image/All/SD_001_11.jpg' in w for w in warnings)
    assert any(w.startswith('1 image(s) missing') and 'Image_prompt/1.jpg' in w for w in warnings)


# ---------------------------------------------------------------- the real PKU-I2IQA files

@pytest.fixture(scope='module')
def pku_real(pku_release):
    if not (PKU_CSV.exists() and PKU_SPLITS.exists()):
        pytest.skip(f'PKU-I2IQA reference metadata not found in {PKU_DIR}')
    return build_pku_i2iqa_meta_info(pku_release, PKU_SPLITS)  # fixture xlsx = the reconstruction


def test_pku_real_matches_reference(pku_real):
    df, _ = pku_real
    ref = pd.read_csv(PKU_CSV, keep_default_na=False)
    assert (df['name'] == 'Generated_image/All/' + ref['name']).all()
    assert (df['group'] == ref['image_prompt_id']).all() and (df['generator'] == ref['generator']).all()
    assert (df['prompt'] == ref['text_prompt']).all()
    for column in ('mos_quality', 'mos_authenticity', 'mos_correspondence'):
        np.testing.assert_array_equal(df[column], ref[column])
    ranges = {c: (df[c].min(), df[c].max()) for c in ('mos_quality', 'mos_authenticity', 'mos_correspondence')}
    assert ranges == {'mos_quality': (0.6988, 4.618), 'mos_authenticity': (0.4411, 4.81),
                      'mos_correspondence': (0.676, 4.9844)}
    assert df['prompt'].nunique() == 199


def test_pku_real_splits(pku_real):
    df = pku_real[0]
    published = pd.read_csv(PKU_SPLITS).set_index('name').loc[df['name'].str[20:]]
    for column in split_columns(df, 'cianet'):
        assert (df[column].to_numpy() == published[column].to_numpy()).all()
        assert df[column].value_counts().to_dict() == {'train': 1200, 'test': 400}
    for column in split_columns(df, 'cianetv'):
        assert df[column].value_counts().to_dict() == {'train': 1050, 'val': 150, 'test': 400}
        by_part = groups_by_part(df, column)
        assert not by_part['val'] & by_part['train'] and len(by_part['test']) == 200


def _loader_batch(table, root, tmp_path, **extra):
    """Write ``table`` as meta-info, images for its default_split_01 test part, one batch."""
    from torch.utils.data import DataLoader

    from pyiqa.data import build_dataset

    from conftest import write_synthetic_images

    meta = tmp_path / 'meta_info.csv'
    write_meta_info(table, meta)
    test_rows = table[table['default_split_01'] == 'test']
    write_synthetic_images(root, test_rows['name'].tolist() + test_rows.get('ref_name', pd.Series([])).tolist())
    dataset = build_dataset(dict(name='t', type='AGIQADataset', meta_info_file=str(meta), dataroot_target=str(root),
                                 split_scheme='default', split_index=1, phase='test',
                                 augment={'resize': 16, 'center_crop': 16}, **extra))
    assert len(dataset) == len(test_rows)
    return next(iter(DataLoader(dataset, batch_size=4))), test_rows


def test_aigciqa2023_loader_yields_batches(aig_built, tmp_path):
    batch, rows = _loader_batch(aig_built[0], tmp_path / 'release', tmp_path)
    assert batch['img'].shape == (4, 3, 16, 16) and batch['mos_label'].shape == (4, 3)
    assert set(batch['labels']) == {'mos_quality', 'mos_authenticity', 'mos_correspondence'}
    assert set(batch['std']) == {'std_quality', 'std_authenticity', 'std_correspondence'}
    first = rows.iloc[0]
    assert batch['img_path'][0].endswith(first['name']) and batch['prompt'][0] == first['prompt']
    label = batch['labels']['mos_quality'][0].item()
    assert label == pytest.approx(first['mos_quality'], rel=rounding(torch.float32, ops=1))  # one float32 rounding
    assert batch['generator'][0] == first['generator']


def test_pku_loader_yields_batches_with_source_images(pku_built, tmp_path):
    batch, rows = _loader_batch(pku_built[0], tmp_path / 'release', tmp_path, load_reference=True)
    assert batch['img'].shape == batch['ref_img'].shape == (4, 3, 16, 16)
    assert batch['ref_path'][0].endswith(rows.iloc[0]['ref_name'])
    assert set(batch['labels']) == {'mos_quality', 'mos_authenticity', 'mos_correspondence'}
