"""The package's layout holds: imports point down only (module- and function-level), no
import cycle, at most ten modules at the top level. The table below is the one in
docs/development.md; a new import that breaks it fails here."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'pyiqa_agiqa'
BOTTOM = {'errors', 'options', 'prompt_args', 'metric_configs', 'losses', 'version'}
# part -> the parts it may import (besides itself), from the top of the stack down
MAY_IMPORT = {
    'cli': {'compare', 'benchmark', 'demo', 'scoring', 'training', 'export', 'metrics', 'data', 'archs',
            'weights'} | BOTTOM,
    'compare': {'scoring', 'metrics', 'data', 'archs', 'weights'} | BOTTOM,
    'benchmark': {'scoring', 'training', 'export', 'metrics', 'data', 'archs', 'weights'} | BOTTOM,
    'demo': {'training', 'data', 'archs', 'weights'} | BOTTOM,
    'scoring': {'metrics', 'data', 'archs', 'weights'} | BOTTOM,
    'training': {'data', 'archs', 'weights'} | BOTTOM,
    'export': {'data', 'archs', 'weights'} | BOTTOM,
    'metrics': {'data', 'archs', 'weights'} | BOTTOM,
    'data': {'archs', 'weights'} | BOTTOM,
    'archs': {'weights'} | BOTTOM,
    'weights': BOTTOM,
    'options': {'errors'},
    'prompt_args': {'errors'},
    'errors': set(), 'metric_configs': set(), 'losses': set(), 'version': set(),
    'plugin': set(),  # names its targets as strings (pyiqa's entry points)
    '': {'metrics', 'metric_configs', 'version'},  # pyiqa_agiqa/__init__.py: installs the metric entries
}


def modules():
    """{dotted name under the package ('' for its __init__): (path, is_package)}."""
    out = {}
    for path in PACKAGE.rglob('*.py'):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        is_package = parts[-1] == '__init__'
        out['.'.join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports(name, path, is_package):
    """Every module of the package that ``name`` imports, anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split('.') if name else []
                base = base if is_package else base[:-1]
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            elif (node.module or '').split('.')[0] == 'pyiqa_agiqa':
                target = node.module[len('pyiqa_agiqa') + 1:]
            else:
                continue
            found.add(target)
            found.update(f'{target}.{a.name}'.strip('.') for a in node.names)  # from X import submodule
        elif isinstance(node, ast.Import):
            found.update(a.name[len('pyiqa_agiqa') + 1:] for a in node.names
                         if a.name.split('.')[0] == 'pyiqa_agiqa')
    return found


def graph():
    mods = modules()
    return {name: {t for t in imports(name, *mods[name]) if t in mods and t != name} for name in mods}


def part(name):
    return name.split('.')[0]


def test_every_import_points_down():
    wrong = sorted(f'{name or "pyiqa_agiqa"} imports {target}' for name, targets in graph().items()
                   for target in targets
                   if part(target) != part(name) and part(target) not in MAY_IMPORT[part(name)])
    assert not wrong, wrong


def test_every_part_is_in_the_table():
    assert {part(name) for name in modules()} <= set(MAY_IMPORT)


def test_no_import_cycle():
    edges = graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_at_most_ten_modules_at_the_top_level():
    top = sorted(p.name for p in PACKAGE.glob('*.py'))
    assert len(top) <= 10, top
