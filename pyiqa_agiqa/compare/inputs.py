"""What ``pyiqa-agiqa compare`` compares: the generated images of each model, read from one folder
(or CSV) per model (``--models NAME=PATH ...``) or from one table (``--table``: columns ``model,
image, prompt``; optional ``prompt_id, seed, category``), as one table with the columns
:data:`COLUMNS` (text byte-exact; ``''`` where not given: a prompt read from the image later)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Sequence

import pandas as pd

from ..errors import OptionError
from ..scoring.contract import prompt_from_cell
from ..scoring.rows import scan_images

COLUMNS = ['model', 'image', 'prompt', 'prompt_id', 'seed', 'category']
OPTIONAL = ['prompt_id', 'seed', 'category']
_MODEL_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._+-]{0,63}')


class CompareInputError(OptionError):
    """A --models / --table input of ``compare`` is missing or malformed."""


def check_model_name(name: str, where: str = '--models') -> str:
    """``name`` if it can name the file ``scores/<name>.csv``: letters, digits and ``. _ + -``,
    starting with a letter or digit, at most 64 characters (no separator, no ``..``)."""
    if not _MODEL_NAME.fullmatch(name or '') or '..' in name:
        raise CompareInputError(f'{where}: model name {name!r} cannot name a file; use letters, digits and . _ + - '
                                '(starting with a letter or digit, at most 64 characters), e.g. base or sdxl-1.0')
    return name


def _table_rows(table: pd.DataFrame, base: Path, where: str) -> pd.DataFrame:
    """``table`` (image[, prompt, prompt_id, seed, category]) with image paths made absolute
    (relative ones: to ``base``) and the missing optional columns empty."""
    if 'image' not in table.columns:
        raise CompareInputError(f"{where}: missing column 'image'; found {list(table.columns)} (columns: "
                                'model, image, prompt; optional: prompt_id, seed, category)')
    out = pd.DataFrame({'image': [p if os.path.isabs(p) else str(base / p) for p in table['image']]})
    empty = [i + 2 for i, p in enumerate(table['image']) if not p.strip()]
    if empty:
        raise CompareInputError(f'{where} line {empty[0]}: empty image path')
    out['prompt'] = [prompt_from_cell(c) or '' for c in table['prompt']] if 'prompt' in table else ''
    for column in OPTIONAL:
        out[column] = table[column].map(lambda v: v.strip()).to_list() if column in table else ''
    if 'prompt_id' in table:
        missing = [i + 2 for i, v in enumerate(out['prompt_id']) if not v]
        if missing:
            raise CompareInputError(f'{where} line {missing[0]}: empty prompt_id; give every row its prompt_id, or '
                                    'drop the column to pair by the prompt text')
    return out


def _read_csv(path: str) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise CompareInputError(f"no such CSV file: '{path}'")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def from_folders(specs: Sequence[str]) -> pd.DataFrame:
    """``NAME=PATH`` per model: PATH a folder of images (each image's prompt read from its file
    when scored) or a CSV (image[, prompt, prompt_id, seed, category], paths relative to it)."""
    parts, names = [], []
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not path:
            raise CompareInputError(f'--models expects NAME=FOLDER (or NAME=LIST.csv), got {spec!r}, e.g. '
                                    '--models base=gen/base ft=gen/ft')
        names.append(check_model_name(name))
        if os.path.isdir(path):
            images, _ = scan_images(path)
            if not images:
                raise CompareInputError(f'--models {name}: no image files in folder {path}')
            rows = pd.DataFrame({'image': [os.path.abspath(p) for p in images], 'prompt': ''})
            rows = rows.assign(**{c: '' for c in OPTIONAL})
        elif path.lower().endswith('.csv'):
            rows = _table_rows(_read_csv(path), Path(path).resolve().parent, path)
        else:
            raise CompareInputError(f'--models {name}: no such folder: {path!r} (give a folder of images or a .csv)')
        parts.append(rows.assign(model=name))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CompareInputError(f'--models names {twice} more than once; give each model one NAME=FOLDER')
    return _checked(pd.concat(parts, ignore_index=True)[COLUMNS])


def from_table(path: str) -> pd.DataFrame:
    """One table (``model, image, prompt``; optional ``prompt_id, seed, category``), image paths
    relative to the table; an empty prompt cell: the prompt read from the image."""
    table = _read_csv(path)
    if 'model' not in table.columns:
        raise CompareInputError(f"{path}: missing column 'model'; found {list(table.columns)} (columns: model, "
                                'image, prompt; optional: prompt_id, seed, category)')
    for line, name in enumerate(table['model'], start=2):
        check_model_name(name, f'{path} line {line}')
    rows = _table_rows(table, Path(path).resolve().parent, path)
    return _checked(rows.assign(model=table['model'].to_list())[COLUMNS])


def _checked(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, image, prompt): an image listed twice for a model is an error."""
    twice = rows.duplicated(['model', 'image', 'prompt'])
    if twice.any():
        row = rows[twice].iloc[0]
        raise CompareInputError(f'model {row["model"]} lists image {row["image"]} twice with the same prompt; list '
                                'each generated image once')
    if len(rows['model'].unique()) < 2:
        raise CompareInputError(f'compare needs at least two models, got {list(rows["model"].unique())}')
    return rows.reset_index(drop=True)


def models_of(rows: pd.DataFrame) -> List[str]:
    """The model names, sorted."""
    return sorted(rows['model'].unique())
