"""AGIQA-1K: official ``AIGC_MOS_Zscore.xlsx`` -> the package's meta-info CSV.

Source: AGIQA-1K (Zhang, Li, Sun, Liu, Min, Zhai, "A Perceptual Quality Assessment
Exploration for AIGC Images", ICME Workshops 2023, arXiv:2303.12618), official repository
https://github.com/lcysyzxdxc/AGIQA-1k-Database, MIT licence, so the derived meta-info is
bundled as ``pyiqa_agiqa/data/meta_info/agiqa1k.csv``. Images (not bundled): the release
archive holds ``file/<name>.jpg``; point ``dataroot_target`` at that unpacked ``file`` folder.

Official metadata: ``AIGC_MOS_Zscore.xlsx``, sheet ``Sheet1``, header ``Image, Prompt, MOS``,
1,080 data rows. Names are ``{generator}_{i}_{j}_{scene}_{style}.jpg`` with two generators
(file-name prefixes, the web services used): ``deepai`` 720 images, ``dreamStudio`` 360 rows.
``scene`` 0/1 = city/wild and ``style`` 0/1 = anime/realistic style, as in the prompt text
``"<subject>, <action>, <scene>, <style>"``; the meaning of ``i``/``j`` differs between the two
generators (the README's name-to-prompt table is wrong for dreamStudio), so the prompt is
always taken from the ``Prompt`` column. 720 distinct prompts: every dreamStudio prompt is also
a deepai prompt (359 prompts with images of both generators, 361 deepai-only).

Scale: ``mos_quality`` = the ``MOS`` column (z-scored then rescaled MOS, higher is better),
nominal range 0..5, observed 0.0 (7 images) .. 5.0 (2 images); kept at full precision.

Known defects of the xlsx (each is reported in the returned warnings):

1. ``dreamStudio_8_9_1_1.jpg`` appears twice (data rows 1079 and 1080, the last two rows), with
   the same prompt ``"alien, wearing shirt, wild, realistic style"`` and MOS 0.441416 and
   2.084116. A name cannot be two meta-info rows; ``duplicate_policy`` decides:

   - ``'drop'`` (default, used for the bundled file): drop both rows (1,078 images remain).
     Neither value can be verified from the official file, and the two differ by 1.64 MOS
     (about 2 standard deviations of the whole MOS distribution).
   - ``'corroborated'``: keep the row whose MOS agrees best with ``AIGC_all.csv``
     (``aigc_all_csv``, an undocumented ``Image,Score`` file of the same release on another
     scale, multiples of 1/22; it names this image ``dreamStudio_8_9_1_.jpg``, a typo
     corrected with a warning). Rule: least-squares line MOS ~ Score over the unduplicated
     images of the same generator, keep the row with the smaller absolute residual. On the
     real files (358 dreamStudio images, MOS ~ 0.876 * Score - 0.148, residual SD 0.380, no
     residual above 1.0) the Score 2.0455 predicts 1.643: the 2.084116 row has residual +0.44
     (1.2 SD) and is kept, the 0.441416 row has residual -1.20 (3.2 SD, larger than every
     other dreamStudio residual). By rank: Score at the 46th percentile of dreamStudio, the
     MOS 2.084 at the 75th, 0.441 at the 8th.
   - ``'first'`` / ``'last'``: keep the first / last of the rows in file order
     (0.441416 / 2.084116).

   Is one of the two rows really the missing ``dreamStudio_8_5_0_0.jpg`` (defect 2)? The
   evidence does not support it, so this converter never renames a row: both rows carry the
   prompt of 8_9_1_1, not ``"alien, using laptop, city, anime style"``; the extra row sits
   right after the first one at the end of the sorted table, not at 8_5_0_0's place; and
   ``AIGC_all.csv`` lists 8_5_0_0 with Score 2.2273 (predicted MOS 1.803): assigning it
   0.441416 gives residual -1.36 (3.6 SD), and assigning it 2.084116 leaves 8_9_1_1 with the
   outlying 0.441416.
2. ``dreamStudio_8_5_0_0.jpg`` has no row (found as the one gap in the 2x2 scene x style grid
   of every ``{generator}_{i}_{j}``; ``AIGC_all.csv`` lists it, so the image probably exists
   in the archive). It is not in the meta-info.

Any other duplicated name, NaN or non-numeric MOS, empty prompt or empty name raises
``MetadataError`` naming the file and its data rows (row 1 = first row after the header).

Output columns: name, mos_quality, prompt, generator, group (id of the distinct prompt text,
numbered by first appearance from 0), then splits:

- ``default_split_01..10``: prompt-grouped 70/10/20 train/val/test
  (``add_split_columns(..., 'default', ratios=(0.7, 0.1, 0.2), base_seed=123)``: split i uses
  seed 123 + i); 504/72/144 of the 720 prompts. Images of one prompt by both generators
  always fall on the same side.
- with ``published_splits_csv`` (the shipped ``pyiqa_agiqa/data/split_manifests/agiqa1k.csv``,
  which ``prepare`` applies by default, = ``splits_IPCE_AGIQA-1K.csv`` reduced: ``name,
  ipce_split_00..10``, one row per distinct name, 1,079 rows; or a list of manifests, a later
  one replacing an earlier one column by column): ``ipce_split_00..10`` copied as published. They are
  image-level 80/20 splits of the 1,080 xlsx rows (863 train / 216 test names), NOT
  prompt-disjoint: split 00 puts the first 20 % of each generator's rows (file order) in
  test, 8 prompts on both sides; splits 01..10 are random, 109..117 prompts on both sides.
  The duplicated name holds ``CONFLICT`` where its two rows fell on both sides (splits 02,
  03, 05, 10). If the duplicate is kept (policy other than ``'drop'``), such a value becomes
  ``'excluded'``: the image is in neither part of that split (the dataset keeps the rows
  whose value equals the phase). With ``'drop'`` the name is not a meta-info row and its
  split values are ignored (reported).
  ``ipcev_split_00..10``: ``ipce_split_NN`` with ``carve_validation(..., val_fraction=0.125,
  seed=123 + NN)`` using the image name as the group (these are image-level splits): the
  published test set kept exactly, 1/8 of the training images moved to ``'val'`` for
  checkpoint selection, ``'excluded'`` kept.

  Images of the xlsx that a manifest does not list are ``'excluded'`` in its columns, and
  manifest names missing from the xlsx (other than a dropped duplicate) are ignored; both are
  reported as warnings (``read_split_manifests``).

The bundled ``agiqa1k.csv`` is ``prepare_meta_info('agiqa1k', ..., data='AIGC_MOS_Zscore.xlsx')``
(policy ``'drop'``, the shipped manifest), i.e. ``build_agiqa1k_meta_info(AIGC_MOS_Zscore.xlsx,
splits_IPCE_AGIQA-1K.csv)`` written with ``write_meta_info``.
"""
import re

import numpy as np
import pandas as pd

from pyiqa_agiqa.data.tables import MetadataError, format_items, read_split_manifests, validate_meta_info
from pyiqa_agiqa.data.splits import EXCLUDED, add_split_columns, carve_validation

SHEET = 'Sheet1'
OFFICIAL_COLUMNS = ('Image', 'Prompt', 'MOS')
SCORE_COLUMNS = ('Image', 'Score')
KNOWN_DUPLICATES = ('dreamStudio_8_9_1_1.jpg',)
KNOWN_SCORE_NAME_TYPOS = {'dreamStudio_8_9_1_.jpg': 'dreamStudio_8_9_1_1.jpg'}
DUPLICATE_POLICIES = ('drop', 'corroborated', 'first', 'last')
NAME_PATTERN = re.compile(r'^(?P<generator>[A-Za-z]+)_(?P<i>\d+)_(?P<j>\d+)_(?P<scene>[01])_(?P<style>[01])\.jpg$')
N_SPLITS = 10
BASE_SEED = 123
PUBLISHED_SPLITS = tuple(f'ipce_split_{i:02d}' for i in range(11))
PUBLISHED_VALUES = ('train', 'test')
CONFLICT = 'CONFLICT'

DATASET_INFO = dict(
    key='agiqa1k',
    title='AGIQA-1K',
    citation=('Z. Zhang, C. Li, W. Sun, X. Liu, X. Min, G. Zhai. A Perceptual Quality Assessment '
              'Exploration for AIGC Images. ICME Workshops 2023 (arXiv:2303.12618).'),
    licence='MIT (derived meta-info bundled as agiqa1k.csv)',
    images=('https://github.com/lcysyzxdxc/AGIQA-1k-Database: the archive unpacks to '
            'file/<name>.jpg (JPEGs of generators deepai and dreamStudio); official '
            'labels AIGC_MOS_Zscore.xlsx'),
    labels={'mos_quality': 'MOS column of AIGC_MOS_Zscore.xlsx (z-scored, rescaled), nominal '
                           '0..5, observed 0.0..5.0, higher is better'},
    dataroot='the unpacked file/ folder of the archive (names are bare file names)',
)


def build_agiqa1k_meta_info(mos_xlsx, published_splits_csv=None, duplicate_policy='drop',
                            aigc_all_csv=None):
    """Build the AGIQA-1K meta-info table (rows in the order of the xlsx).

    Args:
        mos_xlsx: the official ``AIGC_MOS_Zscore.xlsx`` (sheet ``Sheet1``, columns exactly
            ``Image, Prompt, MOS``).
        published_splits_csv: optional ``splits_IPCE_AGIQA-1K.csv`` (``name`` +
            ``ipce_split_00..10``, values train/test/CONFLICT) to copy and carve, or a list of
            such manifests applied in order (a later one replaces columns of an earlier one).
        duplicate_policy: how the known duplicated name is resolved, one of
            ``DUPLICATE_POLICIES`` (see the module doc); default ``'drop'``.
        aigc_all_csv: ``AIGC_all.csv`` of the release, required by ``'corroborated'``.

    Returns:
        (DataFrame, warnings): one row per image, ``mos_quality`` float64, ``group`` int64,
        split columns str; ``warnings`` a list of strings describing every defect found and
        how it was handled.

    Raises:
        MetadataError: on another sheet/column layout, NaN or non-numeric MOS, empty prompts or
            names, duplicated names other than the known defect, a split file that does not
            match, or (``'corroborated'``) a score file that does not cover the duplicate.
        ValueError: on an unknown ``duplicate_policy`` or ``'corroborated'`` without
            ``aigc_all_csv``.
    """
    if duplicate_policy not in DUPLICATE_POLICIES:
        raise ValueError(f'duplicate_policy must be one of {DUPLICATE_POLICIES}, got {duplicate_policy!r}')
    if duplicate_policy == 'corroborated' and aigc_all_csv is None:
        raise ValueError("duplicate_policy='corroborated' needs aigc_all_csv (AIGC_all.csv of the release)")
    warnings = []
    raw = _read_xlsx(mos_xlsx)
    table = pd.DataFrame({'name': raw['Image'], 'mos_quality': raw['MOS'], 'prompt': raw['Prompt']})
    _validate_rows(table, mos_xlsx)
    table['mos_quality'] = table['mos_quality'].astype(float)

    duplicated = [n for n in dict.fromkeys(table.loc[table['name'].duplicated(), 'name'])]
    scores = _read_scores(aigc_all_csv, warnings) if duplicate_policy == 'corroborated' else None
    drop_rows = []
    for name in duplicated:
        rows = np.flatnonzero(table['name'].to_numpy() == name)
        drop_rows += _resolve_duplicate(table, name, rows, duplicate_policy, scores, mos_xlsx, aigc_all_csv,
                                        warnings)
    kept_duplicates = [n for n in duplicated if duplicate_policy != 'drop']
    warnings += _grid_gaps(table['name'], mos_xlsx)
    df = table.drop(index=table.index[drop_rows]).reset_index(drop=True)
    df['generator'] = df['name'].str.split('_', n=1).str[0].astype(str)
    df['group'] = pd.factorize(df['prompt'])[0]
    df = add_split_columns(df, 'group', 'default', N_SPLITS, (0.7, 0.1, 0.2), BASE_SEED)
    if published_splits_csv is None:
        return df, warnings
    published = _read_published_splits(published_splits_csv, df['name'], duplicated, kept_duplicates, warnings)
    if published is None:
        return df, warnings
    df = pd.concat([df, published], axis=1)
    for column in PUBLISHED_SPLITS:
        index = int(column[-2:])
        df[column.replace('ipce', 'ipcev')] = carve_validation(df[column], df['name'], 0.125, BASE_SEED + index)
    return df, warnings


def _read_xlsx(path):
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=object, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise MetadataError(f'{path}: cannot be read as an xlsx workbook: {error}') from None
    if SHEET not in sheets:
        raise MetadataError(f'{path}: no sheet {SHEET!r} (sheets found: {list(sheets)}); expected the official '
                            f'AGIQA-1K AIGC_MOS_Zscore.xlsx')
    raw = sheets[SHEET]
    columns = [str(c) for c in raw.columns]
    missing = [c for c in OFFICIAL_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in OFFICIAL_COLUMNS]
    if missing or extra:
        raise MetadataError(f'{path}: sheet {SHEET!r} is not the official AGIQA-1K layout: missing columns '
                            f'{missing}, unexpected columns {extra}; expected {list(OFFICIAL_COLUMNS)}')
    raw.columns = columns
    text = {c: raw[c].map(lambda v: '' if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            for c in ('Image', 'Prompt')}
    return pd.DataFrame({'Image': text['Image'], 'Prompt': text['Prompt'], 'MOS': raw['MOS']})


def _validate_rows(table, source):
    """validate_meta_info on every xlsx row; the known duplicate is checked separately."""
    empty = np.flatnonzero(table['name'].str.strip().eq('').to_numpy())
    if len(empty):
        raise MetadataError(f'{source}: empty Image name in {len(empty)} row(s): '
                            f'{format_items(f"row {i + 1}" for i in empty)} (row 1 = first row after the header)')
    checked = table.copy()
    counts = checked.groupby('name').cumcount().to_numpy()
    known = (checked['name'].isin(KNOWN_DUPLICATES) & checked['name'].duplicated(keep=False)).to_numpy()
    checked.loc[known, 'name'] = [f'{n} (occurrence {k + 1})' for n, k in zip(checked['name'][known], counts[known])]
    validate_meta_info(checked, source, label_columns=['mos_quality'])


def _resolve_duplicate(table, name, rows, policy, scores, source, scores_source, warnings):
    """Row positions to drop for the duplicated ``name``; appends a warning."""
    listing = ', '.join(f'row {r + 1} (MOS {table["mos_quality"].iat[r]:.6f})' for r in rows)
    prompts = table['prompt'].iloc[rows].unique()
    head = f'{source}: {name!r} appears {len(rows)} times: {listing}'
    if len(prompts) > 1:
        head += f' with different prompts {list(prompts)}'
    if policy == 'drop':
        warnings.append(f'{head}; duplicate_policy=drop: all {len(rows)} rows dropped, the image is not in '
                        f'the meta-info')
        return list(rows)
    if policy in ('first', 'last'):
        keep = rows[0] if policy == 'first' else rows[-1]
        reason = f'duplicate_policy={policy}: kept row {keep + 1}'
    else:
        keep, reason = _corroborated_row(table, name, rows, scores, scores_source)
    warnings.append(f'{head}; {reason} (MOS {table["mos_quality"].iat[keep]:.6f}), dropped the other(s)')
    return [r for r in rows if r != keep]


def _corroborated_row(table, name, rows, scores, scores_source):
    if name not in scores.index:
        raise MetadataError(f'{scores_source}: no score for the duplicated name {name!r}; '
                            f"duplicate_policy='corroborated' cannot choose")
    generator = name.split('_', 1)[0]
    unique = table[~table['name'].duplicated(keep=False)]
    same = unique[unique['name'].str.split('_', n=1).str[0].eq(generator) & unique['name'].isin(scores.index)]
    if len(same) < 10:
        raise MetadataError(f'{scores_source}: only {len(same)} {generator} images have both a MOS and a score; '
                            f"too few to corroborate {name!r}")
    x = scores.loc[same['name']].to_numpy(dtype=float)
    y = same['mos_quality'].to_numpy(dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    sd = float(np.std(y - (slope * x + intercept), ddof=2))
    predicted = slope * float(scores.loc[name]) + intercept
    residuals = {r: table['mos_quality'].iat[r] - predicted for r in rows}
    keep = min(rows, key=lambda r: abs(residuals[r]))
    detail = ', '.join(f'row {r + 1} residual {residuals[r]:+.3f} ({residuals[r] / sd:+.1f} SD)' for r in rows)
    return keep, (f'duplicate_policy=corroborated: {scores_source} gives Score {float(scores.loc[name]):.4f}, '
                  f'predicted MOS {predicted:.3f} (fit on {len(same)} {generator} images: MOS = {slope:.3f} * Score '
                  f'{intercept:+.3f}, residual SD {sd:.3f}); {detail}; kept row {keep + 1}')


def _read_scores(path, warnings):
    """``AIGC_all.csv`` as a Series Score by name, known name typos corrected (reported)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SCORE_COLUMNS if c not in raw.columns]
    if missing:
        raise MetadataError(f'{path}: missing column(s) {missing}; expected {list(SCORE_COLUMNS)}')
    names = raw['Image'].copy()
    for typo, fixed in KNOWN_SCORE_NAME_TYPOS.items():
        if (names == typo).any() and not (names == fixed).any():
            names[names == typo] = fixed
            warnings.append(f'{path}: name {typo!r} read as {fixed!r} (typo in the score file)')
    score = pd.to_numeric(raw['Score'], errors='coerce')
    bad = np.flatnonzero(~np.isfinite(score.to_numpy(dtype=float)) | names.duplicated().to_numpy())
    if len(bad):
        raise MetadataError(f'{path}: non-numeric Score or duplicated name in '
                            f'{format_items(f"row {i + 1} ({names[i]!r})" for i in bad)}')
    return pd.Series(score.to_numpy(dtype=float), index=names.to_numpy())


def _grid_gaps(names, source):
    """Warnings for names missing from the 2x2 scene x style grid of each generator_i_j."""
    parsed = names.str.extract(NAME_PATTERN)
    odd = names[parsed['generator'].isna()]
    warnings = []
    if len(odd):
        warnings.append(f'{source}: {len(odd)} name(s) not of the form generator_i_j_scene_style.jpg: '
                        f'{format_items(map(repr, odd))}')
    parsed = parsed.dropna()
    present = set(names)
    missing = sorted({f'{g}_{i}_{j}_{s}_{t}.jpg' for g, i, j in parsed[['generator', 'i', 'j']].itertuples(index=False)
                      for s in '01' for t in '01'} - present)
    if missing:
        warnings.append(f'{source}: {len(missing)} image(s) of the scene x style grid have no row (no MOS), so are '
                        f'not in the meta-info: {format_items(map(repr, missing))}')
    return warnings


def _read_published_splits(paths, names, duplicated, kept_duplicates, warnings):
    """Split columns of the manifest(s) ``paths`` for ``names`` (in that order), CONFLICT -> 'excluded'."""
    dropped = [n for n in duplicated if n not in kept_duplicates]
    found = read_split_manifests(paths, names, PUBLISHED_SPLITS, values=PUBLISHED_VALUES + (CONFLICT,),
                                 reference='the xlsx', extra_names=dropped, warnings=warnings)
    if found is None:
        return None
    table, sources = found
    files = ' + '.join(dict.fromkeys(str(sources[c]) for c in PUBLISHED_SPLITS))
    if dropped:
        warnings.append(f'{files}: split values of {format_items(map(repr, dropped))} ignored (dropped duplicate)')
    out = table[list(PUBLISHED_SPLITS)]
    conflicts = out.eq(CONFLICT)
    for column in PUBLISHED_SPLITS:
        wrong = [names.iat[i] for i in np.flatnonzero(conflicts[column].to_numpy()) if names.iat[i] not in duplicated]
        if wrong:
            raise MetadataError(f'{sources[column]}: {CONFLICT} for names that are not duplicated: '
                                f'{format_items(map(repr, wrong))}')
    if conflicts.to_numpy().any():
        for position in np.flatnonzero(conflicts.any(axis=1).to_numpy()):
            columns = [c for c in PUBLISHED_SPLITS if conflicts[c].iat[position]]
            where = ' + '.join(dict.fromkeys(str(sources[c]) for c in columns))
            warnings.append(f'{where}: {names.iat[position]!r} is {CONFLICT} (its duplicate rows fell on both '
                            f'sides) in {", ".join(columns)}; set to {EXCLUDED!r} there: the image is in no part '
                            f'of those splits')
        out = out.mask(conflicts, EXCLUDED)
    return out.reset_index(drop=True)
