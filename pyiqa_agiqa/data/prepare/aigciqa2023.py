"""AIGCIQA2023: the official release files -> the package's meta-info table.

Source: AIGCIQA2023 (Wang et al., "AIGCIQA2023: A Large-scale Image Quality Assessment
Database for AI Generated Images: from the Perspectives of Quality, Authenticity and
Correspondence", arXiv:2307.00211, 2023), https://github.com/wangjiarui153/AIGCIQA2023.
No licence is stated, so nothing is bundled: the meta-info is built from the user's copy.

Release files and where the converter looks for them inside ``release_root`` (the folder the
archive unpacks to, the one holding ``Image/`` and ``DATA/``), see ``OFFICIAL_PATHS``:

- ``AIGCIQA2023_Prompts.xlsx`` and ``pic-index.xlsx``: published in the GitHub repository, not
  in the image archive; put them into ``release_root`` or pass their paths explicitly.
  ``AIGCIQA2023_Prompts.xlsx``: one sheet, no header, 100 rows: category, class, prompt.
  ``pic-index.xlsx``: one sheet, no header, 2,400 rows: model, ``NNN-k.png``; sheet row
  ``i + 1`` describes image ``Image/allimg/{i}.png``.
- ``DATA/MOS/mosz1.mat`` (quality), ``mosz2.mat`` (authenticity), ``mosz3.mat``
  (correspondence): key ``MOSz``, shape (2400, 1), entry ``i`` = image ``{i}.png``.
- ``DATA/STD/SD1.mat``, ``SD2.mat``, ``SD3.mat``: the standard deviations, key ``SD``,
  same layout (``with_std=False`` skips them).
- Images: ``Image/allimg/{0..2399}.png``. Meta-info ``name`` = ``Image/allimg/{i}.png``, so
  ``dataroot_target`` is ``release_root`` itself.

Index rule (checked on every build against ``pic-index.xlsx``, which the real file follows
for all 2,400 rows): ``i = model_index * 400 + prompt_index * 4 + (k - 1)``, model order
Controlnet, DALLE, Glide, Lafite, stable-diffusion, Unidiffuser; ``prompt_index`` = ``NNN``
is the row (0-based) of ``AIGCIQA2023_Prompts.xlsx``.

Content of the real files: 2,400 images = 6 generators x 100 prompts x 4 images; 100
distinct prompts in 10 categories x 10 prompts; classes cycle through 10 values per category
except row 58 (category "Style & Format"), whose class is "Arts" where the cycle has
"Indoor Scenes" (kept as published). Two prompts end with a space (rows 23 and 55); they are
kept verbatim and reported in the warnings.

Scales (raw, as in the .mat files; the z-scores of the subjective study rescaled to about
0..100, higher is better; IPCE divides them by 20). Observed ranges:
mos_quality 26.627 .. 72.110 (mean 49.92), mos_authenticity 28.418 .. 73.719,
mos_correspondence 27.693 .. 72.393, std_quality 0.393 .. 1.669,
std_authenticity 0.428 .. 1.669, std_correspondence 0.485 .. 1.762.

Output columns: name, mos_quality, prompt, mos_authenticity, mos_correspondence,
std_quality, std_authenticity, std_correspondence, generator (model name from
``pic-index.xlsx``), group (prompt index 0..99), category, class, pic_index_file
(``NNN-k.png``), then splits:

- ``default_split_01..10``: prompt-grouped 70/10/20 (70/10/20 prompts, 1680/240/480 images;
  ``add_split_columns(..., 'default', base_seed=123)``: split i uses seed 123 + i).
- with ``published_splits_csv`` (the shipped ``pyiqa_agiqa/data/split_manifests/aigciqa2023.csv``,
  which ``prepare`` applies by default: ``splits_AIGCIQA2023_IPCE_CIANet.csv`` reduced to
  ``name`` + split columns; or that file itself, or a list of manifests, a later one replacing
  an earlier one column by column; ``name`` = ``{i}.png``, optional ``model``/``model_file``
  columns, which are checked against ``pic-index.xlsx``):
  ``ipce_split_01..10`` (image-level 80/20, 1920/480; every prompt appears on both sides in
  almost every split: these splits measure unseen images of seen prompts) and
  ``cianet_split_01..10`` (one image of each (model, prompt) group of four is test, 1800/600;
  checked on build), copied as published; and ``cianetv_split_01..10``: ``cianet_split_i``
  with its test rows untouched and, among the training rows, all rows of
  ``round(0.125 * 100) = 12`` prompts moved to val (``carve_validation_within_train`` with
  group = prompt index, seed 123 + i): 1584/216/600. Val prompts never occur in train, so
  checkpoint selection sees prompts the model was not trained on (carving whole (model,
  prompt) groups instead would leave every val prompt in train through the other five
  models, so val would reward memorised prompts); by the design of the
  published CIANet protocol every prompt (val prompts included) has test images and every
  (model, prompt) group has 3 images in train+val and 1 in test, so the test set shares all
  100 prompts with training.
  Images that a manifest does not list are ``'excluded'`` in its columns (and the
  one-test-per-group check then only asks at most one test image of their groups); manifest
  names that are not images of the release are ignored; both are reported as warnings.
"""
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from openpyxl.utils.exceptions import InvalidFileException

from pyiqa_agiqa.data.tables import MetadataError, format_items, read_split_manifests, validate_meta_info
from pyiqa_agiqa.data.splits import EXCLUDED, add_split_columns, carve_validation

MODELS = ('Controlnet', 'DALLE', 'Glide', 'Lafite', 'stable-diffusion', 'Unidiffuser')
N_PROMPTS = 100
IMAGES_PER_PROMPT = 4
N_IMAGES = len(MODELS) * N_PROMPTS * IMAGES_PER_PROMPT  # 2400
IMAGE_DIR = 'Image/allimg'
DIMENSIONS = ('quality', 'authenticity', 'correspondence')
OFFICIAL_PATHS = {
    'prompts_xlsx': 'AIGCIQA2023_Prompts.xlsx',
    'pic_index_xlsx': 'pic-index.xlsx',
    'mos_quality': 'DATA/MOS/mosz1.mat',
    'mos_authenticity': 'DATA/MOS/mosz2.mat',
    'mos_correspondence': 'DATA/MOS/mosz3.mat',
    'std_quality': 'DATA/STD/SD1.mat',
    'std_authenticity': 'DATA/STD/SD2.mat',
    'std_correspondence': 'DATA/STD/SD3.mat',
}
MAT_KEYS = {'mos': 'MOSz', 'std': 'SD'}
N_SPLITS = 10
BASE_SEED = 123
VAL_FRACTION = 0.125
PUBLISHED_SCHEMES = ('ipce', 'cianet')
PIC_INDEX_FILE = re.compile(r'^(\d{3})-([1-4])\.png$')
# what reading a file that is not a real .xlsx / .mat raises
READ_ERRORS = (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile,
               scipy.io.matlab.MatReadError, InvalidFileException)

DATASET_INFO = {
    'key': 'aigciqa2023',
    'title': 'AIGCIQA2023',
    'citation': ('J. Wang, H. Duan, J. Liu, S. Chen, X. Min, G. Zhai, "AIGCIQA2023: A Large-scale '
                 'Image Quality Assessment Database for AI Generated Images: from the Perspectives '
                 'of Quality, Authenticity and Correspondence", arXiv:2307.00211, 2023 (CICAI 2023).'),
    'licence': 'none stated by the authors: nothing is bundled; the meta-info is built from the '
               "user's copy of the release",
    'images': ('Archive linked from https://github.com/wangjiarui153/AIGCIQA2023 (Baidu Netdisk / '
               'Terabox; a Hugging Face copy, IntMeGroup/AIGCIQA2023, is linked there too). It '
               'unpacks to Image/allimg/{0..2399}.png, DATA/MOS/mosz{1,2,3}.mat and '
               'DATA/STD/SD{1,2,3}.mat; AIGCIQA2023_Prompts.xlsx and pic-index.xlsx come from the '
               'GitHub repository (copy them into the same folder or pass their paths).'),
    'labels': {
        'mos_quality': 'MOSz (rescaled z-score, ~0..100, higher is better); observed 26.63 .. 72.11',
        'mos_authenticity': 'MOSz, same scale; observed 28.42 .. 73.72',
        'mos_correspondence': 'MOSz, same scale; observed 27.69 .. 72.39',
        'std_quality': 'standard deviation (SD1.mat); observed 0.393 .. 1.669',
        'std_authenticity': 'standard deviation (SD2.mat); observed 0.428 .. 1.669',
        'std_correspondence': 'standard deviation (SD3.mat); observed 0.485 .. 1.762',
    },
    'dataroot': 'the unpacked release folder, the one holding Image/allimg/ and DATA/ '
                '(names are Image/allimg/{i}.png)',
}


def image_index(model, prompt_index, k):
    """Row of image ``k`` (1..4) of ``prompt_index`` (0..99) by ``model``: the official rule."""
    return MODELS.index(model) * N_PROMPTS * IMAGES_PER_PROMPT + prompt_index * IMAGES_PER_PROMPT + k - 1


def image_name(i):
    """Meta-info name of image ``i`` (relative to the release root)."""
    return f'{IMAGE_DIR}/{i}.png'


def build_aigciqa2023_meta_info(release_root=None, published_splits_csv=None, *, prompts_xlsx=None,
                                pic_index_xlsx=None, mos_mats=None, std_mats=None, with_std=True,
                                check_images=True):
    """Build the AIGCIQA2023 meta-info table (rows in image order 0..2399).

    Args:
        release_root: the unpacked release folder; the files not passed explicitly are taken
            from it at ``OFFICIAL_PATHS`` (the two xlsx files at its top level).
        published_splits_csv: optional ``splits_AIGCIQA2023_IPCE_CIANet.csv`` or a list of
            split manifests applied in order (see module doc).
        prompts_xlsx, pic_index_xlsx: explicit paths of the two official xlsx files.
        mos_mats: explicit (quality, authenticity, correspondence) .mat paths (key ``MOSz``).
        std_mats: explicit (quality, authenticity, correspondence) .mat paths (key ``SD``).
        with_std: read the standard deviations (``std_*`` columns); False skips them.
        check_images: when ``release_root`` is given, report (as warnings) images missing
            from ``Image/allimg``.

    Returns:
        (DataFrame, list of warning strings). Labels float64, ``group`` int64.

    Raises:
        FileNotFoundError: a needed file is missing (all missing files are named).
        MetadataError: a file is malformed: wrong sheet size, unknown model, a pic-index row
            that breaks the index rule, a .mat without the key or of the wrong shape,
            NaN/non-numeric labels, empty prompts, or a split file that does not match
            (the message names the file and the rows).
    """
    paths = _resolve_paths(release_root, prompts_xlsx, pic_index_xlsx, mos_mats,
                           std_mats if with_std else None, with_std)
    warnings = []
    prompts = _read_prompts(paths['prompts_xlsx'], warnings)
    labels = {}
    for kind in ('mos', 'std') if with_std else ('mos',):
        for dim in DIMENSIONS:
            column = f'{kind}_{dim}'
            labels[column] = read_mat_vector(paths[column], MAT_KEYS[kind], N_IMAGES)
    models, prompt_index, _, files = _read_pic_index(paths['pic_index_xlsx'])

    df = pd.DataFrame({
        'name': [image_name(i) for i in range(N_IMAGES)],
        'mos_quality': labels['mos_quality'],
        'prompt': prompts['prompt'].to_numpy(dtype=object)[prompt_index],
        **{c: labels[c] for c in labels if c != 'mos_quality'},
        'generator': models,
        'group': prompt_index.astype(np.int64),
        'category': prompts['category'].to_numpy(dtype=object)[prompt_index],
        'class': prompts['class'].to_numpy(dtype=object)[prompt_index],
        'pic_index_file': files,
    })
    validate_meta_info(df, paths['pic_index_xlsx'], label_columns=list(labels))
    df = add_split_columns(df, 'group', 'default', N_SPLITS, (0.7, 0.1, 0.2), BASE_SEED)
    if published_splits_csv is not None:
        df = _add_published_splits(df, published_splits_csv, models, files, warnings)
    if release_root is not None and check_images:
        warnings += check_image_files(Path(release_root), df['name'], IMAGE_DIR)
    return df, warnings


# ---------------------------------------------------------------- reading the release

def _resolve_paths(release_root, prompts_xlsx, pic_index_xlsx, mos_mats, std_mats, with_std):
    explicit = {'prompts_xlsx': prompts_xlsx, 'pic_index_xlsx': pic_index_xlsx}
    for kind, given in (('mos', mos_mats), ('std', std_mats)):
        if given is not None:
            if isinstance(given, (str, Path)) or len(given) != 3:
                raise ValueError(f'{kind}_mats must be three paths (quality, authenticity, '
                                 f'correspondence), got {given!r}')
            explicit.update({f'{kind}_{d}': p for d, p in zip(DIMENSIONS, given)})
    wanted = [key for key in OFFICIAL_PATHS if with_std or not key.startswith('std_')]
    paths, missing = {}, []
    for key in wanted:
        if explicit.get(key) is not None:
            path = Path(explicit[key])
            where = f'given as {key}'
        elif release_root is not None:
            path = Path(release_root) / OFFICIAL_PATHS[key]
            where = f'official place {OFFICIAL_PATHS[key]} in the release folder'
        else:
            raise ValueError(f'no path for {key}: pass release_root (the unpacked AIGCIQA2023 '
                             f'folder) or the file explicitly')
        if not path.is_file():
            missing.append(f'{path} ({where})')
        paths[key] = path
    if missing:
        raise FileNotFoundError('AIGCIQA2023 release file(s) not found: ' + '; '.join(missing)
                                + '. The xlsx files come from https://github.com/wangjiarui153/'
                                'AIGCIQA2023, the .mat files from the image archive.')
    return paths


def read_xlsx_cells(path):
    """All cells of the first sheet of ``path`` as a DataFrame of Python objects (no header;
    empty cells NaN, text such as 'n/a' kept as text, fully empty rows/columns dropped).
    Unreadable -> MetadataError."""
    try:
        table = pd.read_excel(path, header=None, dtype=object, sheet_name=0,
                              keep_default_na=False, na_values=[])
    except READ_ERRORS as error:  # zip/xml errors of a file that is not a real xlsx
        raise MetadataError(f'{path}: cannot be read as an .xlsx workbook ({error})') from None
    table = table.map(lambda v: np.nan if isinstance(v, str) and v == '' else v)
    table = table.dropna(axis=0, how='all').dropna(axis=1, how='all')
    if len(table) and table.index[-1] != len(table) - 1:
        raise MetadataError(f'{path}: empty row(s) inside the sheet at sheet row(s) '
                            f'{format_items(sorted(set(range(table.index[-1] + 1)) - set(table.index)))}')
    return table.reset_index(drop=True)


def _cell_text(value):
    return '' if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _read_prompts(path, warnings):
    table = read_xlsx_cells(path)
    if table.shape != (N_PROMPTS, 3):
        raise MetadataError(f'{path}: expected {N_PROMPTS} rows x 3 columns (category, class, '
                            f'prompt; no header), found {table.shape[0]} x {table.shape[1]}')
    prompts = pd.DataFrame({c: [_cell_text(v) for v in table.iloc[:, j]]
                            for j, c in enumerate(('category', 'class', 'prompt'))})
    empty = np.flatnonzero(prompts['prompt'].str.strip().eq('').to_numpy())
    if len(empty):
        raise MetadataError(f'{path}: empty prompt in {len(empty)} row(s): sheet row(s) '
                            f'{format_items(empty + 1)} (prompt index {format_items(empty)})')
    padded = np.flatnonzero((prompts['prompt'] != prompts['prompt'].str.strip()).to_numpy())
    if len(padded):
        warnings.append(f'{path}: {len(padded)} prompt(s) with leading/trailing whitespace, kept '
                        f'verbatim: ' + format_items(f'sheet row {i + 1} '
                                                     f'{prompts["prompt"][i]!r}' for i in padded))
    duplicated = prompts['prompt'].str.strip().duplicated(keep=False).to_numpy()
    if duplicated.any():
        warnings.append(f'{path}: the same prompt text is in several rows (sheet rows '
                        f'{format_items(np.flatnonzero(duplicated) + 1)}); groups follow the prompt '
                        f'index, so that text can fall on two sides of a split')
    return prompts


def _read_pic_index(path):
    """(models, prompt_index, k, files) of the 2400 rows, checked against the index rule."""
    table = read_xlsx_cells(path)
    if table.shape != (N_IMAGES, 2):
        raise MetadataError(f'{path}: expected {N_IMAGES} rows x 2 columns (model, NNN-k.png; '
                            f'no header), found {table.shape[0]} x {table.shape[1]}')
    models = np.array([_cell_text(v).strip() for v in table.iloc[:, 0]], dtype=object)
    files = np.array([_cell_text(v).strip() for v in table.iloc[:, 1]], dtype=object)
    unknown = [i for i, m in enumerate(models) if m not in MODELS]
    if unknown:
        raise MetadataError(f'{path}: unknown model in {len(unknown)} row(s) (expected one of '
                            f'{list(MODELS)}): ' + format_items(
                                f'sheet row {i + 1} ({models[i]!r})' for i in unknown))
    matches = [PIC_INDEX_FILE.match(f) for f in files]
    malformed = [i for i, m in enumerate(matches) if m is None]
    if malformed:
        raise MetadataError(f'{path}: file name not of the form NNN-k.png (k = 1..4) in '
                            f'{len(malformed)} row(s): ' + format_items(
                                f'sheet row {i + 1} ({files[i]!r})' for i in malformed))
    prompt_index = np.array([int(m.group(1)) for m in matches])
    k = np.array([int(m.group(2)) for m in matches])
    out_of_range = np.flatnonzero(prompt_index >= N_PROMPTS)
    if len(out_of_range):
        raise MetadataError(f'{path}: prompt index NNN above {N_PROMPTS - 1} in ' + format_items(
            f'sheet row {i + 1} ({files[i]!r})' for i in out_of_range))
    expected = np.array([image_index(m, p, j) for m, p, j in zip(models, prompt_index, k)])
    off = np.flatnonzero(expected != np.arange(N_IMAGES))
    if len(off):
        raise MetadataError(
            f'{path}: {len(off)} row(s) disagree with the index rule i = model_index*400 + '
            f'prompt_index*4 + (k-1) (sheet row i+1 describes {IMAGE_DIR}/i.png): ' + format_items(
                f'sheet row {i + 1} ({models[i]}, {files[i]}) -> rule gives {expected[i]}.png, '
                f'row is {i}.png' for i in off))
    return models, prompt_index, k, files


def read_mat_vector(path, key, n):
    """The ``n`` finite numbers stored under ``key`` of the MATLAB file ``path`` (official
    shape (n, 1); (1, n) and (n,) are accepted too). Raises MetadataError naming the file."""
    try:
        content = scipy.io.loadmat(path)
    except NotImplementedError:
        raise MetadataError(f'{path}: MATLAB v7.3 (HDF5) file; save it with -v7 or older') from None
    except READ_ERRORS as error:
        raise MetadataError(f'{path}: cannot be read as a MATLAB .mat file ({error})') from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith('__'))
        raise MetadataError(f'{path}: no variable {key!r}; variables found: {found}')
    array = np.asarray(content[key])
    if array.ndim > 2 or array.size != n or (array.ndim == 2 and 1 not in array.shape):
        raise MetadataError(f'{path}: {key!r} has shape {array.shape}, expected ({n}, 1)')
    try:
        values = array.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MetadataError(f'{path}: {key!r} is not numeric (dtype {array.dtype})') from None
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise MetadataError(f'{path}: {key!r} is NaN or infinite in {len(bad)} entr(y/ies): '
                            + format_items(f'entry {i + 1} ({image_name(i)})' for i in bad))
    return values


def check_image_files(root, names, image_dir):
    """Warnings about images of ``names`` (relative to ``root``) that are not files."""
    if not (root / image_dir).is_dir():
        return [(f'image folder {root / image_dir} not found: the meta-info was built from the '
                 f'metadata only; unpack the images there before training')]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        return [f'{len(missing)} image(s) missing under {root}: {format_items(missing)}']
    return []


# ---------------------------------------------------------------- published splits

def check_one_test_per_cell(path, column, parts, cells, describe):
    """Raise MetadataError unless every cell id in ``cells`` has exactly one 'test' row
    (at most one where some of the cell's rows are ``EXCLUDED``, i.e. not listed)."""
    parts, cells = np.asarray(parts), np.asarray(cells)
    frame = pd.DataFrame({'test': parts == 'test', 'excluded': parts == EXCLUDED})
    grouped = frame.groupby(cells, sort=False)
    counts, partial = grouped['test'].sum(), grouped['excluded'].any()
    bad = counts[(counts > 1) | ((counts != 1) & ~partial)]
    if len(bad):
        raise MetadataError(f'{path}: {column} is not the CIANet protocol (one test image per '
                            f'{describe}): {len(bad)} group(s) have another count: '
                            + format_items(f'{cell} ({n} test)' for cell, n in bad.items()))


def carve_validation_within_train(parts, groups, val_fraction=VAL_FRACTION, seed=0):
    """Give a published train/test split a val part without touching its test rows.

    For splits whose groups sit on both sides by design (CIANet: one image of each
    (generator, prompt) group is test), ``carve_validation`` cannot be applied to the whole
    table. Here it is applied to the training rows alone: their distinct group ids are
    sorted, shuffled with ``numpy.random.default_rng(seed)``, and all training rows of the
    first ``round(val_fraction * G_train)`` groups become 'val'. So no group is in both train
    and val, test rows are returned unchanged, and val groups keep their test rows.
    ``EXCLUDED`` rows stay as they are.
    """
    parts = np.asarray(parts).astype(str).astype('<U8')
    groups = np.asarray(groups)
    train = parts == 'train'
    out = parts.copy()
    out[train] = carve_validation(np.full(int(train.sum()), 'train'), groups[train],
                                  val_fraction=val_fraction, seed=seed)
    return out


def _add_published_splits(df, paths, models, files, warnings):
    columns = [f'{s}_split_{i:02d}' for s in PUBLISHED_SCHEMES for i in range(1, N_SPLITS + 1)]
    found = read_split_manifests(paths, [f'{i}.png' for i in range(N_IMAGES)], columns,
                                 reference='the release (images 0..2399.png)', warnings=warnings)
    if found is None:
        return df
    table, sources = found
    published = table[list(columns)]
    for column, official in (('model', models), ('model_file', files)):
        if column in table.columns:
            given = table[column].to_numpy(dtype=object)
            off = np.flatnonzero((given != official) & (given != ''))
            if len(off):
                raise MetadataError(f'{sources[column]}: column {column!r} disagrees with pic-index.xlsx in '
                                    f'{len(off)} row(s): ' + format_items(
                                        f'{i}.png ({table[column][i]!r} vs {official[i]!r})'
                                        for i in off))
    cells = np.arange(N_IMAGES) // IMAGES_PER_PROMPT  # one id per (model, prompt) group of four
    for i in range(1, N_SPLITS + 1):
        column = f'cianet_split_{i:02d}'
        check_one_test_per_cell(sources[column], column, published[column], cells, '(model, prompt) group')
    df = pd.concat([df, published.set_index(df.index)], axis=1)
    carved = {f'cianetv_split_{i:02d}': carve_validation_within_train(
        df[f'cianet_split_{i:02d}'], df['group'], VAL_FRACTION, seed=BASE_SEED + i)
        for i in range(1, N_SPLITS + 1)}
    return pd.concat([df, pd.DataFrame(carved, index=df.index)], axis=1)
