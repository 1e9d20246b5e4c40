"""PKU-I2IQA: the official ``I2IQA_annotation.xlsx`` -> the package's meta-info table.

Source: PKU-I2IQA (Yuan et al., "PKU-I2IQA: An Image-to-Image Quality Assessment Database
for AI Generated Images", arXiv:2311.15556, 2023), https://github.com/jiquan123/I2IQA.
No licence is stated, so nothing is bundled: the meta-info is built from the user's copy.

Release layout (``release_root`` = the folder the archive unpacks to; it is also the folder
``dataroot_target`` must point at, as names are relative to it):

- ``I2IQA_annotation.xlsx`` (``ANNOTATION``): first sheet, columns read BY POSITION, in this
  order: image prompt (file name of the source image in ``Image_prompt/``), text prompt,
  generated image name (file in ``Generated_image/All/``), MOS quality, MOS authenticity,
  MOS correspondence. The header names are not known (not public outside the archive), so
  they are never used: a first row whose three MOS cells are all non-numeric text is taken as
  the header and skipped; otherwise the first row is data. Header cells that name a
  dimension other than the one read at their position are reported in the warnings.
  Columns after the sixth are ignored (reported in the warnings).
- ``Generated_image/All/{MJ|SD}_{NNN}_{ij}.jpg``: 1,600 generated images (2 generators,
  Midjourney and Stable Diffusion, x 200 source images x 4, ``ij`` in 00/01/10/11).
- ``Image_prompt/{0..199}.jpg``: the 200 source images (the image prompts).

Image prompt cells: a file name (``0.jpg``; a leading ``Image_prompt/`` is accepted) or a
bare number (``0``, read as ``0.jpg``, reported). ``ref_name`` = ``Image_prompt/<file>``.
``group`` = the source image id (the number in that file name; ids are assigned by first
appearance if a file name is not a number). The ``NNN`` of a generated name is checked
against it (disagreements are reported, the image prompt column wins).

Content (measured on ``PKU-I2IQA_metadata_reconstructed_from_CIANet_splits.csv``, the same
content rebuilt from a reference implementation, since the xlsx is not public): 1,600 rows,
MJ 800 / SD 800, 200 source images with 8 images each, 200 text prompts (one per source
image) of which 199 are distinct: "there is a clock that is sitting on a table" is the text
prompt of source images 99 and 196 (so splits, grouped by source image, can put that text on
two sides; it is reported in the warnings). MOS have 4 decimals; scale as published (a 0..5
rating scale, higher is better), observed ranges: mos_quality 0.6988 .. 4.6180 (mean 3.127),
mos_authenticity 0.4411 .. 4.8100 (mean 2.688), mos_correspondence 0.6760 .. 4.9844
(mean 3.564). No standard deviations are published.

Output columns: name (``Generated_image/All/<file>``), mos_quality, prompt (text prompt),
mos_authenticity, mos_correspondence, generator (name prefix MJ/SD), group (source image id),
ref_name (``Image_prompt/<file>``), then splits:

- ``default_split_01..10``: grouped by source image 70/10/20 (140/20/40 source images,
  1120/160/320 images; split i uses seed 123 + i).
- with ``published_splits_csv`` (the shipped ``pyiqa_agiqa/data/split_manifests/pku_i2iqa.csv``,
  which ``prepare`` applies by default, = ``splits_PKU-I2IQA_CIANet.csv``; or a list of
  manifests, a later one replacing an earlier one column by column; ``name`` = bare generated
  file name): ``cianet_split_01..10`` as published (one image of each (generator, source
  image) group of four is test: 1200/400, checked on build; every source image is on both
  sides by design), and ``cianetv_split_01..10``: test rows untouched, all training rows of
  ``round(0.125 * 200) = 25`` source images moved to val (seed 123 + i): 1050/150/400. Val
  source images never occur in train; they keep their test images. Images that a manifest
  does not list are ``'excluded'`` in its columns, manifest names that are not images of the
  annotation are ignored; both are reported as warnings.
"""
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pyiqa_agiqa.data.tables import MetadataError, format_items, read_split_manifests, validate_meta_info
from pyiqa_agiqa.data.prepare.aigciqa2023 import (BASE_SEED, N_SPLITS, VAL_FRACTION, carve_validation_within_train,
                                                  check_image_files, check_one_test_per_cell, read_xlsx_cells)
from pyiqa_agiqa.data.splits import add_split_columns

ANNOTATION = 'I2IQA_annotation.xlsx'
GENERATED_DIR = 'Generated_image/All'
IMAGE_PROMPT_DIR = 'Image_prompt'
POSITIONS = ('image_prompt', 'prompt', 'name', 'mos_quality', 'mos_authenticity',
             'mos_correspondence')
LABELS = ('mos_quality', 'mos_authenticity', 'mos_correspondence')
GENERATORS = ('MJ', 'SD')
N_IMAGES = 1600
N_SOURCES = 200
NAME_PATTERN = re.compile(r'^(MJ|SD)_(\d{3})_([01]{2})\.jpg$')
# words that identify a dimension in a header cell (checked against the position read)
HEADER_HINTS = {'mos_quality': ('qual', 'mos_q'), 'mos_authenticity': ('auth', 'mos_a'),
                'mos_correspondence': ('corr', 'align', 'consist', 'mos_c')}

DATASET_INFO = {
    'key': 'pku_i2iqa',
    'title': 'PKU-I2IQA',
    'citation': ('J. Yuan, X. Cao, C. Li, F. Yang, J. Lin, X. Cao, "PKU-I2IQA: An Image-to-Image '
                 'Quality Assessment Database for AI Generated Images", arXiv:2311.15556, 2023.'),
    'licence': 'none stated by the authors: nothing is bundled; the meta-info is built from the '
               "user's copy of the release",
    'images': ('Archive linked from https://github.com/jiquan123/I2IQA. It holds '
               'I2IQA_annotation.xlsx, Generated_image/All/{MJ|SD}_{NNN}_{ij}.jpg (1,600 generated '
               'images) and Image_prompt/{0..199}.jpg (the 200 source images).'),
    'labels': {
        'mos_quality': 'MOS, 0..5 scale as published, higher is better; observed 0.6988 .. 4.6180',
        'mos_authenticity': 'MOS, same scale; observed 0.4411 .. 4.8100',
        'mos_correspondence': 'MOS, same scale; observed 0.6760 .. 4.9844',
    },
    'dataroot': 'the unpacked release folder, the one holding Generated_image/ and Image_prompt/ '
                '(name = Generated_image/All/<file>, ref_name = Image_prompt/<file>)',
}


def build_pku_i2iqa_meta_info(release_root=None, published_splits_csv=None, *,
                              annotation_xlsx=None, check_images=True):
    """Build the PKU-I2IQA meta-info table (rows in the order of the annotation sheet).

    Args:
        release_root: the unpacked release folder; ``I2IQA_annotation.xlsx`` is read from its
            top level unless ``annotation_xlsx`` is given.
        published_splits_csv: optional ``splits_PKU-I2IQA_CIANet.csv`` or a list of split
            manifests applied in order (see module doc).
        annotation_xlsx: explicit path of ``I2IQA_annotation.xlsx``.
        check_images: when ``release_root`` is given, report (as warnings) generated and
            source images that are missing.

    Returns:
        (DataFrame, list of warning strings). Labels float64, ``group`` int64.

    Raises:
        FileNotFoundError: the annotation file is missing (named with its expected place).
        MetadataError: fewer than six columns, empty names / image prompts / text prompts,
            NaN or non-numeric MOS, duplicated names, or a split file that does not match
            (the message names the file and the rows).
    """
    if annotation_xlsx is not None:
        path, where = Path(annotation_xlsx), 'given as annotation_xlsx'
    elif release_root is not None:
        path, where = Path(release_root) / ANNOTATION, f'official place {ANNOTATION} in the release folder'
    else:
        raise ValueError('pass release_root (the unpacked PKU-I2IQA folder) or annotation_xlsx')
    if not path.is_file():
        raise FileNotFoundError(f'PKU-I2IQA annotation not found: {path} ({where}); it is '
                                f'inside the archive linked from https://github.com/jiquan123/I2IQA')
    warnings = []
    raw, source = _read_annotation(path, warnings)
    df = pd.DataFrame({
        'name': [f'{GENERATED_DIR}/{n}' for n in _generated_names(raw['name'], source, warnings)],
        'mos_quality': raw['mos_quality'],
        'prompt': raw['prompt'],
        'mos_authenticity': raw['mos_authenticity'],
        'mos_correspondence': raw['mos_correspondence'],
    })
    df['generator'] = [n.rsplit('/', 1)[-1].split('_', 1)[0] for n in df['name']]
    ref_files, group = _image_prompts(raw['image_prompt'], source, warnings)
    df['group'] = group
    df['ref_name'] = [f'{IMAGE_PROMPT_DIR}/{f}' for f in ref_files]
    validate_meta_info(df, source, label_columns=LABELS)
    df = df.astype({c: float for c in LABELS})
    warnings += _content_warnings(df, path)
    df = add_split_columns(df, 'group', 'default', N_SPLITS, (0.7, 0.1, 0.2), BASE_SEED)
    if published_splits_csv is not None:
        df = _add_published_splits(df, published_splits_csv, warnings)
    if release_root is not None and check_images:
        root = Path(release_root)
        warnings += check_image_files(root, df['name'], GENERATED_DIR)
        warnings += check_image_files(root, df['ref_name'].unique(), IMAGE_PROMPT_DIR)
    return df, warnings


# ---------------------------------------------------------------- reading the annotation

def _is_number(value):
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return bool(np.isfinite(value))
    try:
        return bool(np.isfinite(float(str(value).strip())))
    except ValueError:
        return False


def _text(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ''
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_annotation(path, warnings):
    """(table with the six POSITIONS columns as text, source string for messages)."""
    cells = read_xlsx_cells(path)
    if cells.shape[1] < len(POSITIONS):
        raise MetadataError(f'{path}: expected {len(POSITIONS)} columns (image prompt, text '
                            f'prompt, generated image, MOS quality, MOS authenticity, MOS '
                            f'correspondence), found {cells.shape[1]}')
    if cells.shape[1] > len(POSITIONS):
        warnings.append(f'{path}: {cells.shape[1] - len(POSITIONS)} column(s) after the sixth '
                        f'ignored')
    cells = cells.iloc[:, :len(POSITIONS)]
    cells.columns = list(POSITIONS)
    first = cells.iloc[0] if len(cells) else None
    header = first is not None and all(
        _text(first[c]).strip() != '' and not _is_number(first[c]) for c in LABELS)
    if header:
        for column in LABELS:
            text = _text(first[column]).strip().lower()
            other = [c for c, hints in HEADER_HINTS.items() if c != column
                     and any(h in text for h in hints)]
            if other and not any(h in text for h in HEADER_HINTS[column]):
                warnings.append(f'{path}: header cell {first[column]!r} of column '
                                f'{POSITIONS.index(column) + 1} looks like {other[0]}, but that '
                                f'column is read as {column} (official column order)')
        cells = cells.iloc[1:].reset_index(drop=True)
    source = f'{path} (data rows from sheet row {2 if header else 1})'
    table = pd.DataFrame({c: [_text(v) if c not in LABELS else v for v in cells[c]]
                          for c in POSITIONS})
    for column in LABELS:  # keep numbers, turn empty cells into NaN (validation names them)
        table[column] = [np.nan if isinstance(v, str) and not v.strip() else v
                         for v in table[column].to_numpy(dtype=object)]
    if not len(table):
        raise MetadataError(f'{path}: no data rows')
    return table, source


def _rows(mask):
    return format_items(f'row {i + 1}' for i in np.flatnonzero(mask))


def _generated_names(values, source, warnings):
    names = [v.strip().replace('\\', '/') for v in values]
    empty = np.array([n == '' for n in names])
    if empty.any():
        raise MetadataError(f'{source}: empty generated image name in {_rows(empty)}')
    with_dir = [n for n in names if '/' in n]
    if with_dir:
        warnings.append(f'{source}: {len(with_dir)} generated image name(s) carry a folder; the '
                        f'file name alone is used under {GENERATED_DIR}/: {format_items(with_dir)}')
        names = [n.rsplit('/', 1)[-1] for n in names]
    odd = [n for n in names if not NAME_PATTERN.match(n)]
    if odd:
        warnings.append(f'{source}: {len(odd)} generated image name(s) not of the documented form '
                        f'{{MJ|SD}}_NNN_ij.jpg (kept; generator = text before the first "_"): '
                        f'{format_items(odd)}')
    return names


def _image_prompts(values, source, warnings):
    """(file names in Image_prompt/, group ids) from the image prompt column."""
    files, bare = [], []
    for i, value in enumerate(values):
        text = value.strip().replace('\\', '/')
        if text.startswith(IMAGE_PROMPT_DIR + '/'):
            text = text[len(IMAGE_PROMPT_DIR) + 1:]
        if text.isdigit():
            bare.append(i)
            text = f'{int(text)}.jpg'
        files.append(text)
    empty = np.array([f == '' for f in files])
    if empty.any():
        raise MetadataError(f'{source}: empty image prompt in {_rows(empty)}')
    if bare:
        warnings.append(f'{source}: image prompt given as a bare number in {len(bare)} row(s), '
                        f'read as {IMAGE_PROMPT_DIR}/<number>.jpg')
    stems = [f.rsplit('.', 1)[0] for f in files]
    if all(s.isdigit() for s in stems):
        group = np.array([int(s) for s in stems], dtype=np.int64)
    else:
        group = pd.factorize(pd.Series(files))[0].astype(np.int64)
        warnings.append(f'{source}: image prompt file names are not all numbers; group ids '
                        f'numbered by first appearance')
    return files, group


def _content_warnings(df, path):
    """Differences from the documented content (1600 rows, MJ/SD, 200 x 8, name NNN = id)."""
    warnings = []
    if len(df) != N_IMAGES:
        warnings.append(f'{path}: {len(df)} images, the paper describes {N_IMAGES}')
    unknown = sorted(set(df['generator']) - set(GENERATORS))
    if unknown:
        warnings.append(f'{path}: generators other than {list(GENERATORS)}: {unknown}')
    sizes = df.groupby('group').size()
    if len(sizes) != N_SOURCES or (sizes != N_IMAGES // N_SOURCES).any():
        odd = sizes[sizes != N_IMAGES // N_SOURCES]
        warnings.append(f'{path}: {len(sizes)} source images (paper: {N_SOURCES} with '
                        f'{N_IMAGES // N_SOURCES} images each); other counts: '
                        + format_items(f'{g}: {n}' for g, n in odd.items()))
    file_names = df['name'].str.rsplit('/', n=1).str[-1]
    match = file_names.str.extract(NAME_PATTERN.pattern)[1]
    known = match.notna()
    off = known & (match.fillna('-1').astype(int) != df['group'])
    if off.any():
        warnings.append(f'{path}: the source image number in {int(off.sum())} generated name(s) '
                        f'differs from the image prompt column (the column is used): '
                        + format_items(f'{n} vs {r}' for n, r in
                                       zip(df['name'][off], df['ref_name'][off])))
    shared = df.groupby(df['prompt'].str.strip())['group'].unique()
    shared = shared[shared.map(len) > 1]
    for text, groups in shared.items():
        warnings.append(f'{path}: text prompt {text!r} belongs to several source images '
                        f'({", ".join(map(str, sorted(groups)))}); splits keep source images '
                        f'disjoint, so this text can be on two sides')
    texts = df.groupby('group')['prompt'].nunique()
    several = texts[texts > 1]
    if len(several):
        warnings.append(f'{path}: source image(s) with several text prompts: '
                        + format_items(several.index))
    return warnings


# ---------------------------------------------------------------- published splits

def _add_published_splits(df, paths, warnings):
    columns = [f'cianet_split_{i:02d}' for i in range(1, N_SPLITS + 1)]
    keys = df['name'].str.rsplit('/', n=1).str[-1].tolist()
    found = read_split_manifests(paths, keys, columns, reference='the annotation', warnings=warnings)
    if found is None:
        return df
    table, sources = found
    published = table[list(columns)]
    cells = (df['generator'] + ':' + df['group'].astype(str)).to_numpy()
    for column in columns:
        check_one_test_per_cell(sources[column], column, published[column], cells,
                                '(generator, source image) group')
    df = pd.concat([df, published.set_index(df.index)], axis=1)
    carved = {f'cianetv_split_{i:02d}': carve_validation_within_train(
        df[f'cianet_split_{i:02d}'], df['group'], VAL_FRACTION, seed=BASE_SEED + i)
        for i in range(1, N_SPLITS + 1)}
    return pd.concat([df, pd.DataFrame(carved, index=df.index)], axis=1)
