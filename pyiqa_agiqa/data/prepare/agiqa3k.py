"""AGIQA-3K: official ``data.csv`` -> the package's meta-info CSV.

Source: AGIQA-3K (Li et al., "AGIQA-3K: An Open Database for AI-Generated Image Quality
Assessment", IEEE TCSVT 2023), official metadata ``data.csv``, MIT licence, so the derived
meta-info is bundled as ``pyiqa_agiqa/data/meta_info/agiqa3k.csv``. Images (not bundled):
one flat folder of ``{generator}_{variant}_{NNN}.jpg``, variants normal/lowstep/lowcorr/highcorr.

Content of the official file: 2,982 images, 300 distinct prompts (7 to 10 images each),
6 generators by file-name prefix: AttnGAN 300, DALLE2 290, glide 300, midjourney 592,
sd1.5 1200, xl2.2 300 (Stable Diffusion XL). Columns
``name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align``; the prompt text
already contains the adjectives and style; empty ``adj1``/``adj2``/``style`` cells stay empty.

Scales: both MOS are "normalised MOS", higher is better. Observed ranges:
mos_quality 0 .. 4.48874 (8 images at exactly 0), mos_align 0.02146 .. 4.28620,
std_quality 0.1083 .. 1.4523, std_align 0.1087 .. 1.9335. Values are kept at full precision.

Output columns: name, mos_quality, prompt, mos_correspondence (= mos_align), std_quality,
std_correspondence (= std_align), generator, group, adj1, adj2, style, then splits:

- ``default_split_01..10``: prompt-grouped 70/10/20 train/val/test
  (``add_split_columns(..., 'default', ratios=(0.7, 0.1, 0.2), base_seed=123)``: split i
  uses seed 123 + i); 210/30/60 prompts.
- with published split manifests (``prepare`` passes the shipped
  ``pyiqa_agiqa/data/split_manifests/agiqa3k.csv`` first, then ``--splits-csv``; a later file
  replaces an earlier one column by column): ``ipce_split_01..10`` and ``cianet_split_01..10``
  copied as published (80/20 train/test, 240/60 prompts; all 20 are prompt-disjoint, checked on
  build), and ``ipcev_split_01..10`` = ``ipce_split_i`` with ``carve_validation(...,
  val_fraction=0.125, seed=123 + i)``: the published test set, 30 of the 240 training prompts
  moved to val for checkpoint selection. The collected file's image-level ``qalign_split_*``
  and ``ma_agiqa_seed20_712`` splits share prompts between train and test and are not copied.
  Images of ``data.csv`` that a manifest does not list are ``'excluded'`` in its columns, and
  manifest names missing from ``data.csv`` are ignored; both are reported as warnings
  (``read_split_manifests``).

The bundled ``agiqa3k.csv`` is ``prepare_meta_info('agiqa3k', ..., data='data.csv')``: the
official file plus the shipped manifest.
"""

import pandas as pd

from pyiqa_agiqa.data.tables import MetadataError, read_split_manifests, validate_meta_info
from pyiqa_agiqa.data.splits import add_split_columns, carve_validation, check_split_disjoint

OFFICIAL_COLUMNS = ('name', 'prompt', 'adj1', 'adj2', 'style',
                    'mos_quality', 'std_quality', 'mos_align', 'std_align')
RENAMED = {'mos_align': 'mos_correspondence', 'std_align': 'std_correspondence'}
LABELS = ('mos_quality', 'mos_correspondence', 'std_quality', 'std_correspondence')
EXTRA_COLUMNS = ('adj1', 'adj2', 'style')
N_SPLITS = 10
BASE_SEED = 123
PUBLISHED_SCHEMES = ('ipce', 'cianet')


def build_agiqa3k_meta_info(data_csv, published_splits_csv=None, *, return_warnings=False):
    """Build the AGIQA-3K meta-info table (rows in the order of ``data.csv``).

    Args:
        data_csv: the official ``data.csv``, with exactly the columns ``OFFICIAL_COLUMNS``.
        published_splits_csv: optional split manifest, or a list of them applied in order
            (``name`` + ``ipce_split_01..10`` and/or ``cianet_split_01..10``, values
            train/test) to copy and carve (see module doc).
        return_warnings: return ``(table, warnings)`` (as the other converters do) instead of
            the table alone.

    Returns:
        DataFrame, one row per image: labels float64, ``group`` int64 (id of the distinct
        prompt text, numbered by first appearance from 0), split columns str; with
        ``return_warnings`` also the list of warnings (manifest coverage).

    Raises:
        MetadataError: on a column set other than the official one, bad labels, duplicated
            names, empty prompts, a split file that does not match (no common name, bad
            values, missing columns), or a published split that puts one prompt on both sides
            (the message names the file).
    """
    raw = pd.read_csv(data_csv, dtype=str, keep_default_na=False)
    missing = [c for c in OFFICIAL_COLUMNS if c not in raw.columns]
    extra = [c for c in raw.columns if c not in OFFICIAL_COLUMNS]
    if missing or extra:
        raise MetadataError(f'{data_csv}: not the official AGIQA-3K data.csv layout: missing '
                            f'columns {missing}, unexpected columns {extra}; '
                            f'expected {list(OFFICIAL_COLUMNS)}')
    raw = raw.rename(columns=RENAMED)
    df = pd.DataFrame({
        'name': raw['name'],
        'mos_quality': raw['mos_quality'],
        'prompt': raw['prompt'],
        **{c: raw[c] for c in LABELS[1:]},
        'generator': raw['name'].str.split('_', n=1).str[0],
        'group': pd.factorize(raw['prompt'])[0],
        **{c: raw[c] for c in EXTRA_COLUMNS},
    })
    validate_meta_info(df, data_csv, label_columns=LABELS)
    df = df.astype({c: float for c in LABELS})
    df = add_split_columns(df, 'group', 'default', N_SPLITS, (0.7, 0.1, 0.2), BASE_SEED)
    warnings = []
    if published_splits_csv is not None:
        df = _add_published_splits(df, published_splits_csv, warnings)
    return (df, warnings) if return_warnings else df


def _add_published_splits(df, paths, warnings):
    wanted = [f'{s}_split_{i:02d}' for s in PUBLISHED_SCHEMES for i in range(1, N_SPLITS + 1)]
    found = read_split_manifests(paths, df['name'], wanted, reference='data.csv', warnings=warnings)
    if found is None:
        return df
    table, sources = found
    df = pd.concat([df, table[wanted]], axis=1)
    for column in wanted:
        try:
            check_split_disjoint(df, 'group', column)
        except ValueError as error:
            raise MetadataError(f'{sources[column]}: {error}') from None
    for i in range(1, N_SPLITS + 1):
        df[f'ipcev_split_{i:02d}'] = carve_validation(df[f'ipce_split_{i:02d}'], df['group'],
                                                      val_fraction=0.125, seed=BASE_SEED + i)
    return df
