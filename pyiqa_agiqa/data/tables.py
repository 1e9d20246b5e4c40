"""The datasets' tables: meta-info CSVs (labels per image) and split manifests (published
split columns), read, validated and written; shared by all dataset converters. (The prompts
generators embed in image files are read by :mod:`.embedded_prompts`.)

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

from ..errors import AGIQAError
from .split_manifests import is_shipped
from .splits import EXCLUDED

REQUIRED_COLUMNS = ('name', 'mos_quality', 'prompt')
LABEL_PREFIXES = ('mos_', 'std_')
MAX_LISTED = 20
_NAN_TEXT = ['', 'nan', 'NaN', 'NA', 'N/A', 'null']


class MetadataError(AGIQAError, ValueError):
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


def read_split_manifests(paths, names, columns, values=('train', 'test'), reference='the release',
                         extra_names=(), warnings=None):
    """Published split columns of one or more manifests (CSV keyed by ``name``), aligned to ``names``.

    Precedence: the files are read in order and a later file replaces, column by column, the
    values of an earlier one (``prepare`` passes the shipped manifest first, then the user's
    ``--splits-csv``). A requested column must be in at least one file; each file must hold at
    least one of them. Columns of a file that are not requested are kept too (callers may check
    them, e.g. AIGCIQA2023's ``model``), except split-like columns (``*_split_*``), which are
    reported as not read.

    Coverage, reported in ``warnings`` (a list that is appended to), never silently:

    - a row of ``names`` that a file does not list gets ``EXCLUDED`` (in no part) in that
      file's columns, so the published parts keep only the images the manifest names;
    - a name of a file that is not in ``names`` (nor in ``extra_names``, e.g. rows the
      converter dropped on purpose) is ignored;
    - a file that shares no name with ``names`` is an error (another dataset, or names written
      differently), except a manifest shipped with the package: it is skipped with a warning
      (the release is not the official one, so its published splits do not apply).

    Errors (MetadataError naming the file): no ``name`` column, duplicated names, values of a
    requested column outside ``values``, no requested column at all, a requested column in no
    file.

    Returns:
        ``(table, sources)``: ``table`` has one row per entry of ``names`` (in that order, fresh
        index), column ``name``, the requested columns (str), then the other columns the files
        hold ('' where a file does not list the row); ``sources`` maps each column to the file
        its values come from. ``None`` if every file was skipped.
    """
    warnings = [] if warnings is None else warnings
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    names = [str(n) for n in names]
    out = pd.DataFrame({'name': names})
    sources = {}
    for path in paths:
        table, present = _read_manifest(path, columns, values)
        if not _names_images_of(path, table, names, reference, warnings):
            continue
        skipped = _coverage_warnings(path, table, names, columns, present, reference, set(extra_names), warnings)
        _merge_manifest(out, sources, path, table, names, present, skipped, warnings)
    if not sources:
        return None
    missing = [c for c in columns if c not in sources]
    if missing:
        raise MetadataError(f'{" + ".join(map(str, paths))}: missing split column(s) {missing}')
    order = ['name', *columns, *[c for c in out.columns if c != 'name' and c not in columns]]
    return out[order], sources


def _read_manifest(path, columns, values):
    """(the manifest at ``path`` as text, the requested ``columns`` it holds), checked: a
    ``name`` column, unique names, at least one requested column, only ``values`` in them."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if 'name' not in table.columns:
        raise MetadataError(f'{path}: no name column; columns found: {list(table.columns)}')
    present = [c for c in columns if c in table.columns]
    if not present:
        raise MetadataError(f'{path}: missing split column(s) {list(columns)}; columns found: '
                            f'{list(table.columns)}')
    duplicated = table['name'][table['name'].duplicated()]
    if len(duplicated):
        raise MetadataError(f'{path}: duplicated name(s) {format_items(map(repr, duplicated))}')
    for column in present:
        bad = table.loc[~table[column].isin(values), ['name', column]]
        if len(bad):
            listing = format_items(f'row {i + 1} ({name!r}: {value!r})' for i, name, value in bad.itertuples())
            raise MetadataError(f'{path}: {column} has values other than {"/".join(values)} in {listing}')
    return table, present


def _names_images_of(path, table, names, reference, warnings) -> bool:
    """Whether the manifest shares a name with ``names``; if not, a shipped manifest is
    skipped with a warning (False) and any other is an error."""
    if not set(table['name']).isdisjoint(names):
        return True
    if is_shipped(path):
        warnings.append(f'{path}: the shipped split manifest names none of the {len(names)} images of '
                        f'{reference} (not the official release?); its split columns are not written')
        return False
    raise MetadataError(f'{path}: none of its {len(table)} names is an image of {reference} '
                        f'({len(names)} images, e.g. {format_items(map(repr, names[:3]))}; the file has '
                        f'{format_items(map(repr, table["name"][:3]))}): a manifest of another dataset, or '
                        f'names written differently')


def _coverage_warnings(path, table, names, columns, present, reference, allowed_extra, warnings) -> list:
    """Warn about images the manifest does not list, names it lists that are not images and
    split columns it holds that are not requested; returns those columns (not read)."""
    listed, name_set = set(table['name']), set(names)
    unlisted = [n for n in names if n not in listed]
    if unlisted:
        warnings.append(f'{path}: {len(unlisted)} image(s) of {reference} not in the split file, set to '
                        f'{EXCLUDED!r} (in no part) in {_column_range(present)}: '
                        f'{format_items(map(repr, unlisted))}')
    unknown = [n for n in table['name'] if n not in name_set and n not in allowed_extra]
    if unknown:
        warnings.append(f'{path}: {len(unknown)} name(s) of the split file not in {reference}, ignored (the '
                        f'published parts lack them): {format_items(map(repr, unknown))}')
    skipped = [c for c in table.columns if '_split_' in c and c not in columns]
    if skipped:
        warnings.append(f'{path}: split column(s) not read: {_column_range(skipped)} (published splits of this '
                        f'dataset: {_column_range(columns)}; default and val-carved columns are computed)')
    return skipped


def _merge_manifest(out, sources, path, table, names, present, skipped, warnings) -> None:
    """Write the manifest's columns (but ``skipped``) into ``out``, aligned to ``names``
    (``EXCLUDED`` for an unlisted image in a split column, '' in another), replacing an earlier
    manifest's values; ``sources`` records ``path`` for each; changed values are a warning."""
    aligned = table.set_index('name').reindex(names)
    changed = []
    for column in [c for c in table.columns if c != 'name' and c not in skipped]:
        fill = EXCLUDED if column in present else ''
        new = aligned[column].fillna(fill).to_numpy(dtype=object)
        if column in sources and column in present:
            differs = int((out[column].to_numpy(dtype=object) != new).sum())
            if differs:
                changed.append(f'{column} ({differs})')
        out[column] = new
        sources[column] = path
    if changed:
        warnings.append(f'{path}: replaces values of an earlier split manifest; row(s) changed per column: '
                        f'{format_items(changed)}')


def _column_range(columns):
    """'ipce_split_01..10, cianet_split_01..10' for consecutive runs of one scheme, else the names."""
    schemes = {}
    for column in columns:
        scheme, _, number = str(column).rpartition('_split_')
        schemes.setdefault(scheme, []).append(number)
    parts = []
    for scheme, numbers in schemes.items():
        values = [int(n) if n.isdigit() else None for n in numbers]
        run = (len(numbers) > 1 and None not in values and len({len(n) for n in numbers}) == 1
               and values == list(range(values[0], values[0] + len(values))))
        parts += ([f'{scheme}_split_{numbers[0]}..{numbers[-1]}'] if run
                  else [f'{scheme}_split_{n}' if scheme else n for n in numbers])
    return format_items(parts)
