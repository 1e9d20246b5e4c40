"""The benchmark's plots (``plots/*.png``, with matplotlib) and ``report.md``.

Plots: predicted vs MOS scatter per (option file, target), all finished splits, one colour per
split (``scatter_NAME_TARGET.png``); SRCC / PLCC mean +- std bars per (method x dataset,
target), the published figure as a black mark (``bars.png``); the validation key metric of
every validation of each run, the selected iteration marked (``val_NAME.png``). Without
matplotlib (``pip install 'pyiqa-agiqa[report]'``) everything else is written and the report
says how to get them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence

from ..weights.io import atomic_write
from .grid import Run
from .predictions import read_predictions

PLOTS_DIR = 'plots'
MATPLOTLIB_HINT = "plots need matplotlib: pip install 'pyiqa-agiqa[report]' and run the same command again"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110, bbox_inches='tight'))
    plt.close(fig)
    return f'{PLOTS_DIR}/{path.name}'


def _scatter(plt, out: Path, runs: List[Run], records: Dict[str, dict], target: str, result: dict) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for run in runs:
        record = records.get(run.run_id) or {}
        if record.get('status') != 'finished':
            continue
        table = read_predictions(out / record['predictions'])
        part = table[table['target'] == target]
        ax.scatter(part['mos'], part['prediction'], s=8, alpha=0.6, label=f'split {run.split}')
    first = runs[0]
    ax.set_xlabel(f'MOS ({first.targets[target]})')
    ax.set_ylabel('prediction')
    ax.set_title(f"{first.method} on {first.dataset}, {target}\nSRCC {_pm(result, 'srcc')}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(plt, fig, out / PLOTS_DIR / f'scatter_{first.name}_{target}.png')


def _bars(plt, out: Path, results: List[dict]) -> str:
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(results) + 1), 3.6))
    width = 0.38
    for offset, metric in ((-width / 2, 'srcc'), (width / 2, 'plcc')):
        xs = [i + offset for i in range(len(results))]
        means = [r[f'{metric}_mean'] if r[f'{metric}_mean'] is not None else 0.0 for r in results]
        stds = [r[f'{metric}_std'] or 0.0 for r in results]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=metric.upper())
        marks = [(x, r[f'published_{metric}']) for x, r in zip(xs, results) if r[f'published_{metric}'] is not None]
        if marks:
            ax.scatter(*zip(*marks), marker='_', s=300, color='black', zorder=3,
                       label='published' if metric == 'srcc' else None)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([f"{r['method']}\n{r['dataset']}\n{r['target']}" for r in results], fontsize=7)
    ax.set_ylabel('mean over splits (+- std)')
    ax.legend(fontsize=7)
    return _save(plt, fig, out / PLOTS_DIR / 'bars.png')


def _curves(plt, out: Path, runs: List[Run], records: Dict[str, dict]) -> str:
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    key = None
    for run in runs:
        record = records.get(run.run_id) or {}
        history = record.get('selection_history') or []
        if not history:
            continue
        key = record.get('key_metric')
        its, values = zip(*history)
        line, = ax.plot(its, values, marker='.', label=f'split {run.split}')
        if record.get('selected_iter') in its:
            ax.scatter([record['selected_iter']], [values[its.index(record['selected_iter'])]], s=60,
                       facecolors='none', edgecolors=line.get_color())
    ax.set_xlabel('iteration')
    ax.set_ylabel(f'{key} on {runs[0].select_block} (validation)')
    ax.set_title(f'{runs[0].name}: validations (circle: selected)', fontsize=9)
    ax.legend(fontsize=7)
    return _save(plt, fig, out / PLOTS_DIR / f'val_{runs[0].name}.png')


def write_plots(out: Path, runs: Sequence[Run], records: Dict[str, dict], results: List[dict]) -> List[str]:
    """Write every plot; returns their paths relative to ``out`` ([] without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    for name in dict.fromkeys(r.name for r in runs):
        mine = [r for r in runs if r.name == name]
        if not any((records.get(r.run_id) or {}).get('status') == 'finished' for r in mine):
            continue
        for result in (r for r in results if r['name'] == name):
            written.append(_scatter(plt, out, mine, records, result['target'], result))
        written.append(_curves(plt, out, mine, records))
    finished = [r for r in results if r['splits']]
    if finished:
        written.insert(0, _bars(plt, out, finished))
    return written


def _fmt(value, digits: int = 4) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and not math.isfinite(value)) else f'{value:.{digits}f}'


def _pm(result: dict, metric: str) -> str:
    return f"{_fmt(result[f'{metric}_mean'])} ± {_fmt(result[f'{metric}_std'])}"


def _signed(value) -> str:
    return '' if value is None else f'{value:+.4f}'


def _cell(text) -> str:
    """Text in a markdown table cell, inert: no markup, links or HTML from file contents."""
    text = ' '.join(str(text).split())
    for char in '\\|`*_[]<>#!':
        text = text.replace(char, f'\\{char}')
    return text


def _code(text) -> str:
    """Text in a markdown code span (shown as is; a backtick in it cannot end the span)."""
    return '`' + ' '.join(str(text).split()).replace('`', "'") + '`'


def report_markdown(runs: Sequence[Run], records: Dict[str, dict], results: List[dict], plots: List[str],
                    best: Dict[str, str], command: str) -> str:
    """report.md: the table, the protocol, the failures, the plots and the versions."""
    done = sum(1 for r in runs if (records.get(r.run_id) or {}).get('status') == 'finished')
    failed = [r for r in runs if (records.get(r.run_id) or {}).get('status') == 'failed']
    lines = ['# pyiqa-agiqa benchmark', '',
             f'{done} of {len(runs)} runs finished' + (f', {len(failed)} failed' if failed else '')
             + (f', {len(runs) - done - len(failed)} not run yet' if len(runs) - done - len(failed) else '') + '.',
             '', f'Command: {_code(command)}', '', '## Results', '',
             'Mean ± std (population) over the finished splits of each option file, on its test part; '
             '"published" is the method card\'s figure (its protocol may differ: see below).', '',
             '| method | dataset | target | splits | SRCC | PLCC | KRCC | published SRCC / PLCC | Δ SRCC / PLCC |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        published = (f"{_fmt(r['published_srcc'])} / {_fmt(r['published_plcc'])}"
                     if r['published_srcc'] is not None else '—')
        diff = (f"{_signed(r['diff_srcc'])} / {_signed(r['diff_plcc'])}" if r['diff_srcc'] is not None else '—')
        lines.append(f"| {_cell(r['method'])} | {_cell(r['dataset'])} | {_cell(r['target'])} | "
                     f"{r['splits']} of {r['splits_planned']} | {_pm(r, 'srcc')} | {_pm(r, 'plcc')} | "
                     f"{_pm(r, 'krcc')} | {published} | {diff} |")
    lines += ['', '## Protocol', '']
    for name in dict.fromkeys(r.name for r in runs):
        mine = [r for r in runs if r.name == name]
        first = mine[0]
        selection = (f'selected on the test part {_code(first.select_block)} (no val block: as the reference code '
                     'did; the test figures are then optimistic)' if first.selected_on_test else
                     f'net_best selected on {_code(first.select_block)} by the validation key metric, '
                     f'figures on {_code(first.test_block)}')
        images = '/'.join(str(first.images.get(p, 0)) for p in ('train', 'val', 'test'))
        lines.append(f"- {_code(name)} ({_cell(first.method)} on {_cell(first.dataset)}): split scheme "
                     f"{_code(first.scheme)}, splits {' '.join(str(r.split) for r in mine)}, {first.epochs}; "
                     f'{selection}; train/val/test images of split {first.split}: {images}'
                     + (f"; best split's weights: {_code(best[name])}" if name in best else ''))
    for r in results:
        if r['published_source']:
            lines.append(f"- published {_cell(r['method'])} / {_cell(r['dataset'])} / {_cell(r['label'])}: "
                         f"{_cell(r['published_source'])}; protocol: {_cell(r['published_protocol'])}")
        if r['left_out']:
            lines.append(f"- {_cell(r['name'])} / {_cell(r['target'])}: non-finite, left out of the means: "
                         f"{_cell(r['left_out'])}")
    if failed:
        lines += ['', '## Failed runs (not in the means)', '']
        lines += [f"- {_code(r.run_id)}: {_cell(records[r.run_id].get('error'))}" for r in failed]
    lines += ['', '## Plots', '']
    lines += [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots] or [MATPLOTLIB_HINT]
    versions = next((rec.get('versions') for rec in records.values() if rec and rec.get('versions')), None)
    if versions:
        lines += ['', '## Versions', '', ', '.join(f'{_cell(k)} {_cell(v)}' for k, v in versions.items()
                                                   if not isinstance(v, dict))]
    return '\n'.join(lines) + '\n'


def write_report(out: Path, text: str) -> None:
    atomic_write(out / 'report.md', lambda tmp: Path(tmp).write_text(text))
