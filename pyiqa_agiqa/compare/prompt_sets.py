"""Prompt sets to generate images from (``pyiqa-agiqa prompts NAME -o prompts.csv``): a table of
``prompt_id, prompt, category`` that ``compare --table`` pairs images by.

- ``agiqa3k``: AGIQA-3K's 300 prompts, from the bundled meta-info (MIT): ``prompt_id`` is
  ``agiqa3k-<group>``, ``category`` the style the prompt asks for (``no style`` when none).
- ``parti``: PartiPrompts (github.com/google-research/parti, ``PartiPrompts.tsv``: columns
  Prompt, Category, Challenge, Note), read from the user's copy (not bundled): ``prompt_id`` is
  ``parti-<row, from 1>``, ``category`` its Category.
"""

from __future__ import annotations

import os
from importlib import resources

import pandas as pd

from ..errors import OptionError

PROMPT_SETS = ('agiqa3k', 'parti')
PARTI_HINT = ('PartiPrompts.tsv from https://github.com/google-research/parti (file PartiPrompts.tsv in the '
              'repository root)')


def agiqa3k_prompts() -> pd.DataFrame:
    """AGIQA-3K's 300 prompts, one row per prompt group, in group order."""
    with resources.as_file(resources.files('pyiqa_agiqa.data') / 'meta_info' / 'agiqa3k.csv') as path:
        meta = pd.read_csv(path, dtype={'style': str}, keep_default_na=False)
    first = meta.sort_values('group', kind='stable').groupby('group', sort=True).first().reset_index()
    return pd.DataFrame({'prompt_id': [f'agiqa3k-{g:03d}' for g in first['group']], 'prompt': first['prompt'],
                         'category': [s or 'no style' for s in first['style']]})


def parti_prompts(source: str) -> pd.DataFrame:
    """PartiPrompts from the user's ``PartiPrompts.tsv``: tab-separated, first line the header, cells
    taken as written (no quoting: a prompt may begin with ``"``); every row needs a prompt and a
    category. Any problem is one line naming the file (and the line)."""
    import csv

    if not source:
        raise OptionError(f'prompts parti reads your copy of PartiPrompts: pass --from {PARTI_HINT}')
    if not os.path.isfile(source):
        raise OptionError(f"no such file: '{source}' (pass --from {PARTI_HINT})")
    try:
        with open(source, newline='', encoding='utf-8-sig') as handle:
            lines = [(n, row) for n, row in enumerate(csv.reader(handle, delimiter='\t', quoting=csv.QUOTE_NONE),
                                                      start=1) if row]
    except (UnicodeDecodeError, csv.Error) as error:
        raise OptionError(f'{source} is not a PartiPrompts.tsv ({type(error).__name__}: {error}); expected '
                          f'{PARTI_HINT}') from None
    if not lines:
        raise OptionError(f'{source} is empty; expected {PARTI_HINT}')
    header = lines[0][1]
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise OptionError(f'{source} line {number}: {len(row)} tab-separated cells, the header has {len(header)}; '
                              f'expected {PARTI_HINT}')
    table = pd.DataFrame([row for _, row in lines[1:]], columns=header, dtype=str)
    missing = [c for c in ('Prompt', 'Category') if c not in table.columns]
    if missing:
        raise OptionError(f'{source}: missing column(s) {missing}; found {list(table.columns)[:6]} (expected the '
                          'tab-separated PartiPrompts.tsv: Prompt, Category, Challenge, Note)')
    if not len(table):
        raise OptionError(f'{source} holds a header and no prompts; expected {PARTI_HINT}')
    for column in ('Prompt', 'Category'):
        empty = [lines[i + 1][0] for i, cell in enumerate(table[column]) if not cell.strip()]
        if empty:
            raise OptionError(f'{source} line {empty[0]}: empty {column} cell; every row needs a prompt and a '
                              'category')
    return pd.DataFrame({'prompt_id': [f'parti-{i:04d}' for i in range(1, len(table) + 1)],
                         'prompt': table['Prompt'], 'category': table['Category']})


def prompt_set(name: str, source: str = None) -> pd.DataFrame:
    if name == 'agiqa3k':
        return agiqa3k_prompts()
    if name == 'parti':
        return parti_prompts(source)
    raise OptionError(f'unknown prompt set {name!r}; choose one of {list(PROMPT_SETS)}')
