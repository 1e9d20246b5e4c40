"""AIGIQA-20K (NTIRE 2024 AIGC quality challenge, image track): ``info_train.csv`` -> meta-info.

Source: AIGIQA-20K (Li, Kou, Gao, Cao, Sun, Zhang, Zhou, Zhang, Zhang, Wu, Liu, Min, Zhai,
"AIGIQA-20K: A Large Database for AI-Generated Image Quality Assessment", CVPR Workshops
2024, arXiv:2404.03407), released as AIGCQA-30K-Image on ModelScope
(https://www.modelscope.cn/datasets/lcysyzxdxc/AIGCQA-30K-Image). No licence is stated on the
official page (a mirror claims Apache-2.0), so nothing is bundled: users build the meta-info
from their own copy of the release.

Release: 20,000 PNGs ``{Generator}_{NNNN}.png`` of 15 generators, split by the organisers into
14,000 train / 2,000 val / 4,000 test images, in folders ``train/``, ``val/``, ``test/`` (the
layout seen in a third-party file list, ``.../AIGCQA-30K/train/DALLE2_0000.png``). Only the
training MOS were published: ``info_val.csv`` has no MOS and no official test labels exist
(a third-party copy of the val/test MOS circulates; this converter never uses it). So the
meta-info holds the 14,000 official training images only (a meta-info row must have a MOS).
Point ``dataroot_target`` at the unpacked ``train`` folder; names are bare file names.

Official files, both headerless UTF-8 CSV with one line per image (no multi-line prompts):
``info_train.csv`` = ``name, prompt, mos`` and ``info_val.csv`` = ``name, prompt``. The
README's 14k/2k is right: 14,000 and 2,000 rows; ``wc -l`` counts 13,999 and 1,999 only
because the last line of each file has no line terminator (nothing is missing).
Generators (training rows): DALLE2, DALLE3, IF, MJ 350 each; LCM_Pixart, LCM_SD1.5, LCM_SDXL,
SDXL_Turbo 700 each; Dream, Pixart, Playground, SD1.4, SD1.5, SDXL, SSD1B 1,400 each
(``generator`` = the name without the final ``_NNNN.png``; several prefixes contain ``_``).

Scale: ``mos_quality`` = the third column, MOS on a nominal 0..5 scale, higher is better
(perceptual quality and text-image alignment rated together); observed 0.12229 .. 4.98136,
mean 3.864. Kept at full precision.

Prompts: 13,624 distinct prompts for 14,000 images (case and whitespace variants: none);
335 prompts have 2..5 images (711 images): mostly the same prompt given to several
generators; 20 (generator, prompt) pairs (19 prompts) have two images of one generator.
``group`` = id of the distinct prompt text (first appearance, from 0).

Output columns: name, mos_quality, prompt, generator, group, then splits:

- ``default_split_01..10``: prompt-grouped 70/10/20 train/val/test
  (``add_split_columns(..., 'default', ratios=(0.7, 0.1, 0.2), base_seed=123)``, split i uses
  seed 123 + i): 9,537 / 1,362 / 2,725 prompts.
- with ``published_splits_csv`` (the shipped ``pyiqa_agiqa/data/split_manifests/aigiqa20k.csv``,
  which ``prepare`` applies by default, = ``splits_AIGIQA-20K_train14k_IPCE.csv``: ``name,
  ipce_split_01..10``, values train/test; or a list of manifests, a later one replacing an
  earlier one column by column): ``ipce_split_01..10`` copied as published, 10
  random image-level 90/10 splits of the 14k (12,600/1,400 for split 01, 12,599/1,401 for
  the others); NOT prompt-disjoint (50..77 prompts on both sides per split).
  ``ipcev_split_01..10``: ``ipce_split_i`` with ``carve_validation(..., val_fraction=0.125,
  seed=123 + i)`` using the image name as group (image-level, like the published split): the
  published test set kept, 1/8 of the training images moved to ``'val'`` for checkpoint
  selection. Training images that a manifest does not list are ``'excluded'`` in its columns,
  manifest names missing from ``info_train.csv`` are ignored; both are reported as warnings.

``build_aigiqa20k_meta_info`` returns warnings (strings) describing what is left out: the
official val set (when ``info_val_csv`` is given, its rows are checked and counted) and test
set, whose MOS are not public.
"""
import pandas as pd

from pyiqa_agiqa.data.tables import MetadataError, format_items, read_split_manifests, validate_meta_info
from pyiqa_agiqa.data.splits import add_split_columns, carve_validation

TRAIN_COLUMNS = ('name', 'prompt', 'mos')
VAL_COLUMNS = ('name', 'prompt')
N_SPLITS = 10
BASE_SEED = 123
PUBLISHED_SPLITS = tuple(f'ipce_split_{i:02d}' for i in range(1, N_SPLITS + 1))
NAME_PATTERN = r'^(?P<generator>.+)_(?P<number>\d{4})\.png$'

DATASET_INFO = dict(
    key='aigiqa20k',
    title='AIGIQA-20K (NTIRE 2024 AIGC quality challenge, image track; AIGCQA-30K-Image)',
    citation=('C. Li, T. Kou, Y. Gao, Y. Cao, W. Sun, Z. Zhang, Y. Zhou, Z. Zhang, W. Zhang, H. Wu, '
              'X. Liu, X. Min, G. Zhai. AIGIQA-20K: A Large Database for AI-Generated Image Quality '
              'Assessment. CVPR Workshops 2024 (arXiv:2404.03407).'),
    licence='none stated on the official page (a mirror claims Apache-2.0): meta-info not bundled, '
            'build it from your copy of info_train.csv',
    images=('https://www.modelscope.cn/datasets/lcysyzxdxc/AIGCQA-30K-Image: 20,000 PNGs '
            '{Generator}_{NNNN}.png in train/ (14,000, with MOS in info_train.csv), val/ (2,000, '
            'info_val.csv, no MOS) and test/ (4,000, no public labels)'),
    labels={'mos_quality': 'third column of info_train.csv, MOS nominal 0..5, observed '
                           '0.12229..4.98136, higher is better'},
    dataroot='the unpacked train/ folder of the release (names are bare file names)',
)


def build_aigiqa20k_meta_info(info_train_csv, published_splits_csv=None, info_val_csv=None):
    """Build the AIGIQA-20K meta-info table from the official training set (file order).

    Args:
        info_train_csv: the official headerless ``info_train.csv`` (name, prompt, mos).
        published_splits_csv: optional ``splits_AIGIQA-20K_train14k_IPCE.csv`` (``name`` +
            ``ipce_split_01..10``, values train/test) to copy and carve, or a list of split
            manifests applied in order (a later one replaces columns of an earlier one).
        info_val_csv: optional official headerless ``info_val.csv`` (name, prompt); only
            checked (format, no overlap with the training names) and reported: it has no MOS.

    Returns:
        (DataFrame, warnings): one row per training image, ``mos_quality`` float64, ``group``
        int64, split columns str; ``warnings`` a list of strings.

    Raises:
        MetadataError: on a wrong column count or a header line, NaN or non-numeric MOS, empty
            prompts, duplicated names, a val file overlapping the training set, or a split file
            that does not match (messages name the file and rows; row N = N-th line, as the
            official files have no header).
    """
    raw = _read_headerless(info_train_csv, TRAIN_COLUMNS)
    df = pd.DataFrame({'name': raw['name'], 'mos_quality': raw['mos'], 'prompt': raw['prompt']})
    _validate(df, info_train_csv, ['mos_quality'])
    df['mos_quality'] = df['mos_quality'].astype(float)
    warnings = [(f'{info_train_csv}: {len(df)} official training images with MOS; the official val (2,000) and '
                 f'test (4,000) images have no public MOS and are not in the meta-info')]
    parsed = df['name'].str.extract(NAME_PATTERN)
    odd = df['name'][parsed['generator'].isna()]
    if len(odd):
        warnings.append(f'{info_train_csv}: {len(odd)} name(s) not of the form Generator_NNNN.png (generator taken '
                        f'as the text before the last "_"): {format_items(map(repr, odd))}')
    df['generator'] = df['name'].str.rsplit('_', n=1).str[0].astype(str)
    df['group'] = pd.factorize(df['prompt'])[0]
    if info_val_csv is not None:
        warnings.append(_check_val(info_val_csv, df['name']))
    df = add_split_columns(df, 'group', 'default', N_SPLITS, (0.7, 0.1, 0.2), BASE_SEED)
    if published_splits_csv is None:
        return df, warnings
    found = read_split_manifests(published_splits_csv, df['name'], PUBLISHED_SPLITS,
                                 reference='info_train.csv', warnings=warnings)
    if found is None:
        return df, warnings
    df = pd.concat([df, found[0][list(PUBLISHED_SPLITS)]], axis=1)
    for i in range(1, N_SPLITS + 1):
        df[f'ipcev_split_{i:02d}'] = carve_validation(df[f'ipce_split_{i:02d}'], df['name'],
                                                      val_fraction=0.125, seed=BASE_SEED + i)
    return df, warnings


def _read_headerless(path, columns):
    """A headerless official CSV as str columns ``columns``; header lines and wrong widths raise."""
    try:
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding='utf-8')
    except pd.errors.ParserError as error:
        raise MetadataError(f'{path}: not a {len(columns)}-column CSV ({", ".join(columns)}): {error}') from None
    except pd.errors.EmptyDataError:
        raise MetadataError(f'{path}: empty file') from None
    if raw.shape[1] != len(columns):
        found = raw.shape[1]
        missing = list(columns[found:]) if found < len(columns) else []
        raise MetadataError(f'{path}: expected {len(columns)} columns without header ({", ".join(columns)}), found '
                            f'{found}' + (f'; missing column(s) {missing}' if missing else ''))
    raw.columns = list(columns)
    first = raw.iloc[0]
    if str(first['name']).strip().lower() in ('name', 'image', 'img', 'filename', 'image_name'):
        raise MetadataError(f'{path}: line 1 looks like a header ({list(first)}); the official file has none')
    return raw.fillna('')


def _validate(df, source, label_columns, required=('name', 'mos_quality', 'prompt')):
    """validate_meta_info with row numbers explained for a headerless file."""
    try:
        validate_meta_info(df, source, required=required, label_columns=label_columns)
    except MetadataError as error:
        raise MetadataError(str(error).replace('(row 1 = first row after the header)',
                                               '(row N = line N: the official file has no header)')) from None


def _check_val(path, train_names):
    raw = _read_headerless(path, VAL_COLUMNS)
    _validate(pd.DataFrame({'name': raw['name'], 'prompt': raw['prompt']}), path, [], required=VAL_COLUMNS)
    overlap = sorted(set(raw['name']) & set(train_names))
    if overlap:
        raise MetadataError(f'{path}: {len(overlap)} name(s) also in the training file: '
                            f'{format_items(map(repr, overlap))}')
    return (f'{path}: {len(raw)} official val images (name, prompt; no MOS published) checked and left out of '
            f'the meta-info')
