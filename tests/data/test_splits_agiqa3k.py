"""Splits, meta-info validation and the AGIQA-3K converter (fixture data + the real files)."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyiqa_agiqa.data.tables import MetadataError, read_meta_info, validate_meta_info
from pyiqa_agiqa.data.tables import write_meta_info
from pyiqa_agiqa.data.prepare.agiqa3k import OFFICIAL_COLUMNS, build_agiqa3k_meta_info
from pyiqa_agiqa.data.splits import add_split_columns, carve_validation, check_split_disjoint, grouped_split

REPO_ROOT = Path(__file__).resolve().parents[2]
AGIQA3K_DIR = Path(__file__).resolve().parents[3] / 'shared' / 'datasets' / 'AGIQA-3K'
REAL_DATA_CSV = AGIQA3K_DIR / 'data.csv'
REAL_SPLITS_CSV = AGIQA3K_DIR / 'splits_AGIQA-3K_IPCE_CIANet_QAlign_MAAGIQA.csv'
BUNDLED_CSV = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info' / 'agiqa3k.csv'
SCRIPT = REPO_ROOT / 'scripts' / 'build_bundled_meta_info.py'
PUBLISHED = [f'{s}_split_{i:02d}' for s in ('ipce', 'cianet') for i in range(1, 11)]


def groups_by_part(parts, groups):
    return {p: set(np.asarray(groups)[np.asarray(parts) == p]) for p in ('train', 'val', 'test')}


# ---------------------------------------------------------------- splits

GROUPS = np.repeat(np.arange(200), 5)[np.random.default_rng(7).permutation(1000)]


def test_grouped_split_sizes_and_disjoint():
    by_part = groups_by_part(grouped_split(GROUPS, (0.7, 0.1, 0.2), seed=3), GROUPS)
    assert [len(by_part[p]) for p in ('train', 'val', 'test')] == [140, 20, 40]
    assert not (by_part['train'] & by_part['val'] or by_part['train'] & by_part['test']
                or by_part['val'] & by_part['test'])


def test_grouped_split_seeded_and_order_independent():
    a = grouped_split(GROUPS, seed=1)
    assert a.dtype.kind == 'U' and a.shape == GROUPS.shape
    np.testing.assert_array_equal(a, grouped_split(GROUPS, seed=1))
    assert (a != grouped_split(GROUPS, seed=2)).any()
    order = np.random.default_rng(0).permutation(len(GROUPS))
    np.testing.assert_array_equal(grouped_split(GROUPS[order], seed=1), a[order])


def test_grouped_split_zero_ratio_and_string_groups():
    groups = np.array(list('abcdefg') * 3)
    parts = grouped_split(groups, (0.5, 0.5, 0.0), seed=0)
    assert 'test' not in parts and {'train', 'val'} == set(parts)
    assert set(grouped_split(groups, (1, 0, 0))) == {'train'}


@pytest.mark.parametrize('ratios', [(0.7, 0.1, 0.1), (0.8, 0.2), (1.2, -0.1, -0.1)])
def test_grouped_split_bad_ratios(ratios):
    with pytest.raises(ValueError, match='ratios'):
        grouped_split(GROUPS, ratios)


def test_carve_validation_keeps_test_and_moves_whole_groups():
    published = np.where(np.isin(GROUPS, np.arange(40)), 'test', 'train')
    carved = carve_validation(published, GROUPS, val_fraction=0.125, seed=5)
    np.testing.assert_array_equal(carved == 'test', published == 'test')
    by_part = groups_by_part(carved, GROUPS)
    assert len(by_part['val']) == 20 and len(by_part['train']) == 140
    assert not by_part['train'] & by_part['val']
    np.testing.assert_array_equal(carved, carve_validation(published, GROUPS, 0.125, seed=5))
    assert (carved != carve_validation(published, GROUPS, 0.125, seed=6)).any()


def test_carve_validation_errors():
    groups = np.array([1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"\b1\b.*test/train"):
        carve_validation(['train', 'test', 'test', 'test'], groups)
    with pytest.raises(ValueError, match='only train/test'):
        carve_validation(['train', 'train', 'val', 'val'], groups)
    with pytest.raises(ValueError, match='val_fraction'):
        carve_validation(['train', 'train', 'test', 'test'], groups, val_fraction=1.5)


def test_add_split_columns_and_check_disjoint():
    df = add_split_columns(pd.DataFrame({'g': GROUPS}), 'g', 'demo', n_splits=3, base_seed=123)
    assert [c for c in df.columns if 'split' in c] == ['demo_split_01', 'demo_split_02', 'demo_split_03']
    np.testing.assert_array_equal(df['demo_split_02'], grouped_split(GROUPS, seed=125))
    for column in ('demo_split_01', 'demo_split_02', 'demo_split_03'):
        check_split_disjoint(df, 'g', column)
    df.loc[df.index[df['g'] == 7][0], 'demo_split_01'] = 'other'
    with pytest.raises(ValueError, match=r'demo_split_01.*\b7\b'):
        check_split_disjoint(df, 'g', 'demo_split_01')
    with pytest.raises(ValueError, match='already exists'):
        add_split_columns(df, 'g', 'demo', n_splits=1)


# ---------------------------------------------------------------- metadata validation

def good_table():
    return pd.DataFrame({'name': ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'],
                         'mos_quality': [1.0, 2.0, 3.0, 4.0],
                         'prompt': ['p', 'q', 'r', 's'],
                         'mos_correspondence': ['1', '2', '3', '4']})


def test_validate_accepts_good_table_and_leaves_it_as_it_is(tmp_path):
    table = good_table()
    assert validate_meta_info(table, 'meta.csv') is None
    pd.testing.assert_frame_equal(table, good_table())  # text labels are checked as numbers, not converted
    write_meta_info(table, tmp_path / 'meta.csv')
    labels = read_meta_info(tmp_path / 'meta.csv')['mos_correspondence']  # converted where the table is read
    assert labels.dtype == np.float64 and labels.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize('column, value, expected', [
    ('mos_quality', np.nan, r"mos_quality is NaN or non-numeric in 1 row\(s\): row 2 \('b.jpg'"),
    ('mos_correspondence', 'abc', r"mos_correspondence .* row 2 \('b.jpg': 'abc'\)"),
    ('prompt', '   ', r"empty prompt in 1 row\(s\): row 2 \('b.jpg'\)"),
    ('name', 'a.jpg', r"duplicated name\(s\): 'a.jpg' \(rows 1, 2\)"),
])
def test_validate_reports_file_and_rows(column, value, expected):
    df = good_table().astype({column: object})
    df.loc[1, column] = value
    with pytest.raises(MetadataError, match=expected) as info:
        validate_meta_info(df, 'some/meta.csv')
    assert str(info.value).startswith('some/meta.csv: ')


def test_validate_missing_column_and_all_rows_listed():
    with pytest.raises(MetadataError, match=r"meta.csv: missing .*\['prompt'\].*found"):
        validate_meta_info(good_table().drop(columns='prompt'), 'meta.csv')
    df = pd.DataFrame({'name': [f'{i}.jpg' for i in range(30)], 'mos_quality': np.nan,
                       'prompt': 'p'})
    with pytest.raises(MetadataError, match=r'in 30 row\(s\).*row 20 .*and 10 more'):
        validate_meta_info(df, 'meta.csv')


# ---------------------------------------------------------------- converter, fixture

FIXTURE_ROWS = [
    ('AttnGAN_normal_000.jpg', 'statue of a man', '', '', '', '0.965602553', '0.2', '0.4', '0.6'),
    ('sd1.5_lowstep_000.jpg', 'statue of a man', '', '', '', '1.5', '0.3', '1.1', '0.5'),
    ('DALLE2_normal_001.jpg', 'artwork with only triangles, anime style', '', '', 'anime style',
     '0', '0.4', '0.02146', '0.7'),
    ('xl2.2_normal_001.jpg', 'artwork with only triangles, anime style', '', '', 'anime style',
     '4.488740784', '0.5', '4.286204297', '0.8'),
    ('midjourney_normal_002.jpg', 'a cold color dog, top view', 'cold color', 'top view', '',
     '2.25', '0.6', '2.5', '0.9'),
    ('glide_normal_002.jpg', 'a cold color dog, top view', 'cold color', 'top view', '',
     '3', '0.7', '3.5', '1.0'),
]


def write_data_csv(path, rows=FIXTURE_ROWS, columns=OFFICIAL_COLUMNS):
    pd.DataFrame(rows, columns=list(OFFICIAL_COLUMNS))[list(columns)].to_csv(path, index=False)
    return path


def write_splits_csv(path, names, test_rows=(4, 5)):
    table = pd.DataFrame({'name': names})
    for column in PUBLISHED + ['qalign_split_1']:
        table[column] = ['test' if i in test_rows else 'train' for i in range(len(names))]
    table.iloc[::-1].to_csv(path, index=False)  # row order must not matter
    return path


def test_converter_on_fixture(tmp_path):
    data_csv = write_data_csv(tmp_path / 'data.csv')
    names = [row[0] for row in FIXTURE_ROWS]
    df = build_agiqa3k_meta_info(data_csv, write_splits_csv(tmp_path / 'splits.csv', names))
    assert list(df.columns[:11]) == ['name', 'mos_quality', 'prompt', 'mos_correspondence',
                                     'std_quality', 'std_correspondence', 'generator', 'group',
                                     'adj1', 'adj2', 'style']
    splits = [f'{s}_split_{i:02d}' for s in ('default', 'ipce', 'cianet', 'ipcev')
              for i in range(1, 11)]
    assert list(df.columns[11:]) == splits
    assert df['name'].tolist() == names
    assert df['generator'].tolist() == ['AttnGAN', 'sd1.5', 'DALLE2', 'xl2.2', 'midjourney',
                                        'glide']
    assert df['group'].tolist() == [0, 0, 1, 1, 2, 2]
    assert df['mos_quality'].tolist() == [0.965602553, 1.5, 0.0, 4.488740784, 2.25, 3.0]
    assert df['mos_correspondence'].iloc[3] == 4.286204297
    assert df['adj1'].tolist()[:2] == ['', ''] and df['style'].iloc[2] == 'anime style'
    assert (df['ipce_split_03'] == np.array(['train'] * 4 + ['test'] * 2)).all()
    for column in splits:
        check_split_disjoint(df, 'group', column)
        if column.startswith('ipcev'):
            ipce = df[column.replace('ipcev', 'ipce')]
            assert ((df[column] == 'test') == (ipce == 'test')).all()

    out = tmp_path / 'meta' / 'agiqa3k.csv'
    write_meta_info(df, out)
    back = read_meta_info(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back['mos_quality'].dtype == float and back['adj1'].iloc[0] == ''
    with pytest.raises(FileExistsError, match='overwrite=True'):
        write_meta_info(df, out)
    write_meta_info(df, out, overwrite=True)


def test_converter_rejects_bad_inputs(tmp_path):
    names = [row[0] for row in FIXTURE_ROWS]
    no_style = write_data_csv(tmp_path / 'no_style.csv',
                              columns=OFFICIAL_COLUMNS[:4] + OFFICIAL_COLUMNS[5:])
    with pytest.raises(MetadataError, match=r"no_style.csv: .*missing columns \['style'\]"):
        build_agiqa3k_meta_info(no_style)
    bad_rows = [row[:5] + ('n/a',) + row[6:] if i == 2 else row
                for i, row in enumerate(FIXTURE_ROWS)]
    with pytest.raises(MetadataError,
                       match=r"(?s)bad.csv: .*row 3 \('DALLE2_normal_001.jpg': 'n/a'\)"):
        build_agiqa3k_meta_info(write_data_csv(tmp_path / 'bad.csv', rows=bad_rows))
    data_csv = write_data_csv(tmp_path / 'data.csv')
    other = write_splits_csv(tmp_path / 'other.csv', names[:-1] + ['extra.jpg'])
    df, warnings = build_agiqa3k_meta_info(data_csv, other, return_warnings=True)  # coverage: warnings
    assert (df.loc[5, PUBLISHED + [f'ipcev_split_{i:02d}' for i in range(1, 11)]] == 'excluded').all()
    assert (df.loc[4, PUBLISHED] == 'test').all()  # its prompt-mate stays as published
    assert [w.split(': ', 1)[1] for w in warnings] == [
        "1 image(s) of data.csv not in the split file, set to 'excluded' (in no part) in ipce_split_01..10, "
        "cianet_split_01..10: 'glide_normal_002.jpg'",
        "1 name(s) of the split file not in data.csv, ignored (the published parts lack them): 'extra.jpg'",
        'split column(s) not read: qalign_split_1 (published splits of this dataset: ipce_split_01..10, '
        'cianet_split_01..10; default and val-carved columns are computed)']
    with pytest.raises(MetadataError, match=r"nothing.csv: none of its 6 names is an image of data.csv"):
        build_agiqa3k_meta_info(data_csv, write_splits_csv(tmp_path / 'nothing.csv', [f'x{n}' for n in names]))
    leaky = write_splits_csv(tmp_path / 'leaky.csv', names, test_rows=(3, 4, 5))
    with pytest.raises(MetadataError, match=r"leaky.csv: ipce_split_01: 1 group\(s\) of "
                                            r"'group' on several sides: 1 \(test/train\)"):
        build_agiqa3k_meta_info(data_csv, leaky)


# ---------------------------------------------------------------- the real AGIQA-3K files

@pytest.fixture(scope='module')
def real():
    if not (REAL_DATA_CSV.exists() and REAL_SPLITS_CSV.exists()):
        pytest.skip(f'AGIQA-3K metadata not found in {AGIQA3K_DIR}')
    return build_agiqa3k_meta_info(REAL_DATA_CSV, REAL_SPLITS_CSV)


def test_real_agiqa3k(real):
    assert len(real) == 2982 and real['group'].nunique() == 300
    assert sorted(real['generator'].unique()) == ['AttnGAN', 'DALLE2', 'glide', 'midjourney',
                                                  'sd1.5', 'xl2.2']
    assert real['mos_quality'].min() == 0 and real['mos_quality'].max() < 4.5
    for column in [c for c in real.columns if '_split_' in c]:
        check_split_disjoint(real, 'group', column)  # published ipce/cianet included
        counts = real.groupby(column)['group'].nunique().to_dict()
        expected = {'train': 240, 'test': 60} if column in PUBLISHED else \
            {'train': 210, 'val': 30, 'test': 60}
        assert counts == expected, column


def test_bundled_csv_equals_fresh_build(real, tmp_path):
    fresh = tmp_path / 'agiqa3k.csv'
    write_meta_info(real, fresh)
    assert BUNDLED_CSV.read_bytes() == fresh.read_bytes(), \
        'bundled meta-info drifted: run scripts/build_bundled_meta_info.py --overwrite'
    pd.testing.assert_frame_equal(read_meta_info(BUNDLED_CSV), real, check_dtype=False)


def test_build_script_is_deterministic(real, tmp_path):
    spec = importlib.util.spec_from_file_location('build_bundled_meta_info', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    outputs = [tmp_path / 'first.csv', tmp_path / 'second.csv']
    for out in outputs:
        assert script.main(['--out', str(out)]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == BUNDLED_CSV.read_bytes()
