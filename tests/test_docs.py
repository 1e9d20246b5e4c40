"""The README and the docs/ pages hold together: every relative link resolves to a file of the
repository and every ``#anchor`` to a heading (GitHub's slugs), every page is linked from the
README, every docs/ page a file of the repository names exists, the README's set-up and test
commands are the ones ``.ci/run`` runs, the README stays short, and the layout tree of
docs/development.md says what tests/test_layout.py's MAY_IMPORT allows."""

import re
from pathlib import Path

from conftest import REPO
from test_layout import BOTTOM, MAY_IMPORT, PACKAGE, modules

README = REPO / 'README.md'
DOCS = REPO / 'docs'
SETUP = "pip install torch==2.14.1 torchvision==0.29.1 -e . && pyiqa-agiqa demo"
TEST = "pip install torch==2.14.1 torchvision==0.29.1 -e '.[test]' && python -m pytest -q"
MAX_README_LINES = 260

FENCE = re.compile(r'^(```|~~~)')
INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REFERENCE_LINK = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
CODE_SPAN = re.compile(r'(`+)(?:(?!\1).)+?\1', re.S)
SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
DOCS_PAGE = re.compile(r'\bdocs/[\w.-]+\.md\b')


def pages():
    return [README] + sorted(DOCS.glob('*.md'))


def prose(path: Path):
    """(line number, text) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lowercased, every character that is not
    a letter, a digit, ``-``, ``_`` or a space dropped, spaces turned into hyphens."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link counts by its text
    text = re.sub(r'<[^>]+>', '', text)  # inline HTML tags
    return re.sub(r'[^\w\- ]', '', text.strip().lower()).replace(' ', '-')


def anchors(path: Path) -> set:
    """Every heading's anchor on a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, found = {}, set()
    for _, line in prose(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            anchor = base if base not in seen else f'{base}-{seen[base]}'
            seen[base] = seen.get(base, 0) + 1
            found.add(anchor)
    return found


def links(path: Path):
    """(line number, target) of every link of a page (inline and reference style; a link's text
    may span lines), code blocks and code spans left out."""
    fenced = set(range(1, len(path.read_text().splitlines()) + 1)) - {number for number, _ in prose(path)}
    text = '\n'.join('' if number in fenced else line
                     for number, line in enumerate(path.read_text().splitlines(), 1))
    text = CODE_SPAN.sub(lambda span: '\n' * span.group(0).count('\n'), text)
    for match in INLINE_LINK.finditer(text):
        yield text.count('\n', 0, match.start()) + 1, match.group(1)
    for number, line in enumerate(text.splitlines(), 1):
        match = REFERENCE_LINK.match(line)
        if match:
            yield number, match.group(1)


def resolve(page: Path, target: str):
    """(file, anchor) a relative link points to; None for a link with a scheme (https:, mailto:)."""
    if SCHEME.match(target):
        return None
    path, _, anchor = target.partition('#')
    return (page if not path else (page.parent / path).resolve()), anchor


def broken_links(page: Path) -> list:
    wrong = []
    for number, target in links(page):
        resolved = resolve(page, target)
        if resolved is None:
            continue
        file, anchor = resolved
        where = f'{page.relative_to(REPO)}:{number}: {target}'
        if REPO not in file.parents and file != REPO:
            wrong.append(f'{where} points outside the repository')
        elif not file.exists():
            wrong.append(f'{where}: no such file')
        elif anchor and file.suffix != '.md':
            wrong.append(f'{where}: an anchor into a file that is not a page')
        elif anchor and anchor not in anchors(file):
            wrong.append(f'{where}: no heading with that anchor in {file.relative_to(REPO)}')
    return wrong


def test_every_relative_link_and_anchor_resolves():
    wrong = [problem for page in pages() for problem in broken_links(page)]
    assert not wrong, '\n'.join(wrong)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {resolved[0] for resolved in (resolve(README, target) for _, target in links(README)) if resolved}
    assert DOCS.is_dir() and list(DOCS.glob('*.md'))
    missing = [str(p.relative_to(REPO)) for p in sorted(DOCS.glob('*.md')) if p.resolve() not in linked]
    assert not missing, f'docs pages the README does not link: {missing}'


def test_every_docs_page_named_in_the_repository_exists():
    texts = [README, *DOCS.glob('*.md'), *PACKAGE.rglob('*.py'), *PACKAGE.rglob('*.json'),
             *(REPO / 'tests').rglob('*.py'), *(REPO / 'scripts').rglob('*'), *(REPO / 'options').glob('*.yml'),
             REPO / 'pyproject.toml', REPO / '.ci' / 'run']
    wrong = sorted({f'{path.relative_to(REPO)} names {name}' for path in texts if path.is_file()
                    for name in DOCS_PAGE.findall(path.read_text(errors='replace'))
                    if not (REPO / name).is_file()})
    assert not wrong, wrong


def code_blocks(text: str) -> list:
    return [block.strip() for block in re.findall(r'^```[^\n]*\n(.*?)^```', text, flags=re.M | re.S)]


def test_the_readme_set_up_and_test_commands_are_the_ones_ci_runs():
    readme = README.read_text()
    section = readme[readme.index('\n## Set-up'):]
    section = section[:section.index('\n## ', 1)]
    assert code_blocks(section) == [SETUP, TEST]
    ci = [line.strip() for line in (REPO / '.ci' / 'run').read_text().splitlines()
          if 'pytest' in line and not line.lstrip().startswith('#')]
    assert ci == [TEST], ci


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f'README.md has {lines} lines (> {MAX_README_LINES}): move a subject to docs/'


def layout_tree() -> dict:
    """{part: (depth, its line's may-import set)} from the tree of docs/development.md's Layout section."""
    text = (DOCS / 'development.md').read_text()
    section = text[text.index('## Layout'):]
    tree = code_blocks(section)[0].splitlines()
    assert tree[0] == 'pyiqa_agiqa/'
    rows, parent = [], None
    for line in tree[1:]:
        match = re.match(r'^([│├└─\s]*)(\S+)\s.*→\s*(.+)$', line)
        assert match, f'a line of the layout tree says what its package may import (→ ...): {line!r}'
        prefix, name, may = match.groups()
        depth = len(prefix) // 4 - 1
        words = {w.strip() for w in may.split(',')}
        allowed = set() if words == {'nothing'} else set().union(*({w} if w != 'bottom' else BOTTOM for w in words))
        part = '' if name == '__init__.py' else name.rstrip('/').removesuffix('.py')
        if depth == 0:
            parent = part
            rows.append((part, part, allowed))
        else:
            assert (PACKAGE / parent / part / '__init__.py').is_file(), f'{parent}/{part}/ is not a subpackage'
            rows.append((parent, f'{parent}/{part}', allowed))
    return rows


def test_the_layout_tree_matches_the_import_rules():
    mods = modules()
    parts = {name.split('.')[0] for name in mods}
    rows = layout_tree()
    wrong = [f'{where}: the tree says {sorted(allowed)}, MAY_IMPORT {sorted(MAY_IMPORT[part] & parts)}'
             for part, where, allowed in rows if allowed != MAY_IMPORT[part] & parts]
    assert not wrong, '\n'.join(wrong)
    assert {part for part, _, _ in rows} == parts, 'every top-level package and module has its line'
    subpackages = {'/'.join(name.split('.')[:2]) for name, (_, is_package) in mods.items() if is_package and
                   name.count('.') >= 1}
    assert {where for _, where, _ in rows if '/' in where} == subpackages, 'every subpackage has its line'
