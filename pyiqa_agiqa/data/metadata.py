"""Reading and validation of the package's meta-info CSVs, shared by all dataset converters.

Meta-info format: one row per image. Column 0 ``name`` (image path relative to the image
folder) and column 1 ``mos_quality`` (pyiqa reads these two by position), then ``prompt``,
the other labels (``mos_authenticity``, ``mos_correspondence``, ``std_*``), ``generator``,
``group`` (id that keeps splits disjoint), dataset-specific extra columns, and split columns
``{scheme}_split_{NN}`` with values train/val/test.

Error messages number rows as a user counts data rows in a spreadsheet: row 1 is the first
row after the header (line 2 of the file).
"""
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ('name', 'mos_quality', 'prompt')
LABEL_PREFIXES = ('mos_', 'std_')
MAX_LISTED = 20
_NAN_TEXT = ['', 'nan', 'NaN', 'NA', 'N/A', 'null']


class MetadataError(ValueError):
    """A metadata file is malformed; the message names the file and the offending rows."""


def format_items(items, limit=MAX_LISTED):
    """Join ``items`` with ', ', listing at most ``limit`` and saying how many more there are."""
    items = [str(item) for item in items]
    more = len(items) - limit
    return ', '.join(items[:limit]) + (f', ... and {more} more' if more > 0 else '')


def label_columns_of(columns):
    """Numeric label columns among ``columns``: those starting with ``mos_`` or ``std_``."""
    return [c for c in columns if str(c).startswith(LABEL_PREFIXES)]


def validate_meta_info(df, source, required=REQUIRED_COLUMNS, label_columns=None):
    """Check a meta-info table; raise MetadataError listing every problem found.

    Checks: required columns (plus ``name`` and ``label_columns``) are present; every label
    column holds finite numbers (strings are parsed, so raw text tables can be checked);
    names are unique; prompts are non-empty and not whitespace only (if ``prompt`` exists).
    All offending rows of a kind are reported in one message (the first ``MAX_LISTED`` listed).

    Args:
        df: the table, one row per image (its index is ignored; rows count from 1).
        source: file the table came from, named in the message.
        required: columns that must exist.
        label_columns: numeric columns to check; default ``label_columns_of(df.columns)``.
    """
    labels = label_columns_of(df.columns) if label_columns is None else list(label_columns)
    needed = list(dict.fromkeys(['name', *required, *labels]))
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise MetadataError(f'{source}: missing required column(s) {missing}; '
                            f'columns found: {list(df.columns)}')
    names = df['name'].astype(object).to_numpy()
    problems = []
    for column in labels:
        raw = df[column].astype(object).to_numpy()
        numbers = pd.to_numeric(df[column], errors='coerce').to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            listing = format_items(f'row {i + 1} ({names[i]!r}: {raw[i]!r})' for i in bad)
            problems.append(f'{column} is NaN or non-numeric in {len(bad)} row(s): {listing}')
    duplicated = df['name'].duplicated(keep=False).to_numpy()
    if duplicated.any():
        positions = pd.Series(np.flatnonzero(duplicated)).groupby(names[duplicated], sort=False)
        listing = format_items(f'{name!r} (rows {", ".join(str(i + 1) for i in pos)})'
                               for name, pos in positions)
        problems.append(f'{positions.ngroups} duplicated name(s): {listing}')
    if 'prompt' in df.columns:
        empty = np.flatnonzero(df['prompt'].fillna('').astype(str).str.strip().eq('').to_numpy())
        if len(empty):
            listing = format_items(f'row {i + 1} ({names[i]!r})' for i in empty)
            problems.append(f'empty prompt in {len(empty)} row(s): {listing}')
    if problems:
        raise MetadataError(f'{source}: invalid meta-info (row 1 = first row after the header):\n'
                            + '\n'.join(f'  - {p}' for p in problems))


def read_meta_info(path):
    """Read and validate a meta-info CSV.

    Label columns (``mos_*``, ``std_*``) are returned as float64; ``group`` keeps pandas'
    inferred type (int64 for integer ids); every other column is text, with empty cells as
    empty strings (not NaN).

    Raises:
        MetadataError: as ``validate_meta_info``, naming ``path``.
    """
    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns
    labels = label_columns_of(header)
    df = pd.read_csv(path, keep_default_na=False,
                     na_values={c: _NAN_TEXT for c in labels},
                     dtype={c: str for c in header if c not in labels and c != 'group'})
    validate_meta_info(df, path, label_columns=labels)
    return df.astype({c: float for c in labels})


def write_meta_info(df, out_path, overwrite=False):
    """Write ``df`` as CSV (no index, '\\n' line ends, floats at full precision).

    Creates missing parent folders. Raises FileExistsError if ``out_path`` exists and
    ``overwrite`` is False.
    """
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f'{out_path} exists; pass overwrite=True to replace it')
    out_path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_path, index=False, lineterminator='\n')


def read_split_manifest(path, names, columns, values=('train', 'test'), reference='the release', extra_names=()):
    """Published split columns of the CSV ``path`` (keyed by ``name``), aligned to ``names``.

    Checks, each failure a MetadataError naming the file: the ``columns`` exist; no name is
    duplicated; the file names exactly ``names`` (plus, optionally, ``extra_names``, e.g. rows
    the converter dropped); every value of ``columns`` is in ``values``.

    Returns:
        DataFrame with one row per entry of ``names`` (in that order, fresh index) and every
        column of the file (so callers can check extra columns of the manifest).
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ['name', *columns] if c not in table.columns]
    if missing:
        raise MetadataError(f'{path}: missing split column(s) {missing}')
    duplicated = table['name'][table['name'].duplicated()]
    if len(duplicated):
        raise MetadataError(f'{path}: duplicated name(s) {format_items(map(repr, duplicated))}')
    names = list(names)
    only_reference = sorted(set(names) - set(table['name']))
    only_splits = sorted(set(table['name']) - set(names) - set(extra_names))
    if only_reference or only_splits:
        raise MetadataError(
            f'{path}: image names differ from {reference}: {len(only_reference)} missing from the split file '
            f'({format_items(map(repr, only_reference))}), {len(only_splits)} only in the split file '
            f'({format_items(map(repr, only_splits))})')
    for column in columns:
        bad = table.loc[~table[column].isin(values), ['name', column]]
        if len(bad):
            listing = format_items(f'row {i + 1} ({name!r}: {value!r})' for i, name, value in bad.itertuples())
            raise MetadataError(f'{path}: {column} has values other than {"/".join(values)} in {listing}')
    return table.set_index('name').loc[names].reset_index()
