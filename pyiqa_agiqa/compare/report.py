"""The report of ``pyiqa-agiqa compare``: ``report.html`` (one self-contained page: inline CSS and
SVG, no script, no network fetch; thumbnails under ``thumbs/``) and ``report.md`` (the same
tables, for a paper). Every text that comes from files (prompts, model and file names) is
escaped."""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from . import stats

THUMB = 160  # px, the longer side of a gallery thumbnail
PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf']
CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.t,th.t{text-align:left}.a{background:#d8f0d8}.b{background:#f6d6d6}.tie{background:#eee}
.note{color:#555;font-size:90%}.gal{display:flex;flex-wrap:wrap;gap:10px}.cell{border:1px solid #ddd;padding:4px;
font-size:85%;width:170px}.cell img{display:block;max-width:160px;max-height:160px}h2{margin-top:32px}
.grp{border:1px solid #bbb;padding:4px;background:#fafafa}.grp>div{display:flex;gap:6px}"""


def _axis(lo: float, hi: float, pad_share: float, width: int):
    """The horizontal axis of a plot ``width`` pixels wide for values in [lo, hi], padded by
    ``pad_share`` of the range on each side (1 when the range is 0): (x, (left, right, start,
    stop)), ``x(value)`` the pixel column of a value, [start, stop] the padded range drawn between
    the pixel columns left and right (the ticks' range); labels take the 170 pixels left of ``left``."""
    pad = (hi - lo) * pad_share or 1.0
    start, stop = lo - pad, hi + pad
    left, right = 170, width - 20

    def x(v):
        return left + (v - start) / (stop - start) * (right - left)
    return x, (left, right, start, stop)


def ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """Round values in [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten), as close to
    ``count`` of them as such steps allow."""
    if not hi > lo:
        return np.array([lo])
    power = 10.0 ** math.floor(math.log10((hi - lo) / count))
    best = None
    for step in (m * power for m in (1, 2, 2.5, 5, 10, 20)):
        values = np.arange(math.ceil(lo / step - 1e-9) * step, hi + step * 1e-9, step)
        if best is None or abs(len(values) - count) < abs(len(best) - count):
            best = values
    return np.round(best, 12)


def _svg_open(width: int, height: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 4) -> str:
    """A number for a table: 4 significant decimals, ``-`` for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f'{float(value):.{digits}g}' if abs(float(value)) < 1e-3 and value else f'{float(value):.{digits}f}'


def p_text(value) -> str:
    return '-' if value is None or not np.isfinite(value) else (f'{value:.2e}' if value < 1e-3 else f'{value:.3f}')


# ----- tables (shared by HTML and Markdown) -----
def summary_rows(summary: pd.DataFrame) -> List[List[str]]:
    return [[r.metric, r.model, fmt(r.n_prompts), fmt(r.n_images), fmt(r.mean), f'[{fmt(r.ci_low)}, {fmt(r.ci_high)}]']
            for r in summary.itertuples()]


def pairwise_rows(pairs: pd.DataFrame) -> List[List[str]]:
    return [[r.metric, r.model_a, r.model_b, fmt(r.n_prompts), fmt(r.mean_diff),
             f'[{fmt(r.ci_low)}, {fmt(r.ci_high)}]', fmt(r.win_rate, 3), p_text(r.p_value), p_text(r.p_holm),
             {'a': r.model_a, 'b': r.model_b}.get(r.verdict, 'tie')] for r in pairs.itertuples()]


def ranking_rows(ranking: pd.DataFrame) -> List[List[str]]:
    return [[r.metric, fmt(r.rank), r.model, fmt(r.mean), r.letters, r.ties_with or '-']
            for r in ranking.itertuples()]


def spread_rows(spread: pd.DataFrame) -> List[List[str]]:
    return [[r.metric, r.model, fmt(r.n_prompts_with_seeds), fmt(r.seed_sd), fmt(r.prompt_sd)]
            for r in spread.itertuples()]


SPREAD_HEAD = ['metric', 'model', 'prompts with seeds', 'sd within prompt', 'sd across prompts']
SUMMARY_HEAD = ['metric', 'model', 'prompts', 'images', 'mean', '95% CI']
PAIRWISE_HEAD = ['metric', 'a', 'b', 'prompts', 'mean a - b', '95% CI', 'win rate a', 'p', 'p (Holm)', 'better']
RANKING_HEAD = ['metric', 'rank', 'model', 'mean', 'letters', 'not different from']
RANKING_NOTE = ('Letters: the compact letter display of the pairwise verdicts (p (Holm) < 0.05): two models that '
                'share a letter are not significantly different; two models with no letter in common are. A model '
                'may carry several letters.')


def html_table(head: Sequence[str], rows: List[List[str]], text_columns=1, classes=None) -> str:
    """A table; ``text_columns``: how many leading columns hold text (left-aligned), or their indices."""
    text = set(range(text_columns)) if isinstance(text_columns, int) else set(text_columns)

    def cell(tag, i, value, extra=''):
        kind = ' class="t"' if i in text else ''
        return f'<{tag}{kind}{extra}>{esc(value)}</{tag}>'
    lines = ['<table>', '<tr>' + ''.join(cell('th', i, h) for i, h in enumerate(head)) + '</tr>']
    for n, row in enumerate(rows):
        style = f' class="{classes[n]}"' if classes else ''
        lines.append(f'<tr{style}>' + ''.join(cell('td', i, v) for i, v in enumerate(row)) + '</tr>')
    return '\n'.join(lines + ['</table>'])


MD_ENTITIES = {'&': '&amp;', '<': '&lt;', '>': '&gt;'}
MD_ESCAPED = set('\\`*_[]()!|~$^{}=#')
MD_NUMBER = r'(-|-?[0-9.]+(e[+-]?[0-9]+)?)'
MD_NUMBERS = re.compile(rf'{MD_NUMBER}|\[{MD_NUMBER}, {MD_NUMBER}\]')


def md_text(value) -> str:
    """A table cell as inert Markdown on one line: our numbers and intervals as they are; any other
    text (it may come from files: prompts, categories) with ``& < >`` as HTML entities (no raw
    HTML), the characters of links, images, emphasis, code spans, math and table cells
    (``\\ ` * _ [ ] ( ) ! | ~ $ ^ { } = #``) backslash-escaped, and line ends, tabs and other
    unprintable characters as spaces."""
    text = str(value)
    if MD_NUMBERS.fullmatch(text):
        return text
    out = []
    for char in text:
        if char in MD_ENTITIES:
            out.append(MD_ENTITIES[char])
        elif not char.isprintable():
            out.append(' ')
        else:
            out.append('\\' + char if char in MD_ESCAPED else char)
    return ''.join(out)


def md_table(head: Sequence[str], rows: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    return '\n'.join(lines + ['| ' + ' | '.join(md_text(v) for v in row) + ' |' for row in rows])


def matrix_html(pairs: pd.DataFrame, models: Sequence[str]) -> str:
    """Per metric, a models x models table: cell (row, column) holds the mean difference row -
    column and who is better (row, column, or tie at p (Holm) < 0.05)."""
    out = []
    for metric, part in pairs.groupby('metric', sort=False):
        cells = {}
        for r in part.itertuples():
            winner = {'a': r.model_a, 'b': r.model_b}.get(r.verdict)
            cells[(r.model_a, r.model_b)] = (r.mean_diff, winner)
            cells[(r.model_b, r.model_a)] = (0.0 - r.mean_diff, winner)  # 0 - x: no -0
        rows = ['<tr><th class="t">' + esc(metric) + ': row - column</th>'
                + ''.join(f'<th>{esc(m)}</th>' for m in models) + '</tr>']
        for a in models:
            line = [f'<th class="t">{esc(a)}</th>']
            for b in models:
                if a == b or (a, b) not in cells:
                    line.append('<td>-</td>')
                    continue
                diff, winner = cells[(a, b)]
                if winner is None:
                    kind, word = 'tie', 'tie'
                else:
                    kind, word = ('a', 'row better') if winner == a else ('b', 'column better')
                line.append(f'<td class="{kind}">{esc(fmt(diff))} ({word})</td>')
            rows.append('<tr>' + ''.join(line) + '</tr>')
        out.append('<table>' + '\n'.join(rows) + '</table>')
    return '\n'.join(out)


def disagreement_rows(means: pd.DataFrame, metric: str, models: Sequence[str], top: int = 5):
    """(head, rows): the prompts where the models' per-prompt means of ``metric`` spread most
    (:func:`.stats.disagreement`), each with every model's per-prompt mean."""
    part = means[means['metric'] == metric]
    table = part.pivot(index='key', columns='model', values='mean')
    prompts = part.groupby('key')['prompt'].first() if 'prompt' in part else pd.Series(dtype=str)
    rows = [[prompts.get(key, key)] + [fmt(table.at[key, m]) for m in models]
            for key in stats.disagreement(means, metric, models, top)]
    return ['prompt'] + list(models), rows


# ----- SVG plots -----
def forest_svg(labels: Sequence[str], means, lows, highs, zero: bool = False, width: int = 560) -> str:
    """A forest plot: one row per label, a dot at the mean and a line over its interval (a
    dashed line at 0 when ``zero``)."""
    values = [v for v in list(means) + list(lows) + list(highs) if np.isfinite(v)] + ([0.0] if zero else [])
    if not values:
        return ''
    lo, hi = min(values), max(values)
    x, (left, right, lo, hi) = _axis(lo, hi, 0.08, width)
    row = 22
    height = row * len(labels) + 40
    parts = [_svg_open(width, height)]
    if zero:
        parts.append(f'<line x1="{x(0):.1f}" y1="5" x2="{x(0):.1f}" y2="{height - 30}" stroke="#999" '
                     'stroke-dasharray="4 3"/>')
    for i, (label, m, a, b) in enumerate(zip(labels, means, lows, highs)):
        y = 15 + i * row
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12">{esc(label)}</text>')
        if np.isfinite(a) and np.isfinite(b):
            parts.append(f'<line x1="{x(a):.1f}" y1="{y}" x2="{x(b):.1f}" y2="{y}" stroke="{colour}" '
                         'stroke-width="2"/>')
        if np.isfinite(m):
            parts.append(f'<circle cx="{x(m):.1f}" cy="{y}" r="4" fill="{colour}"/>')
    axis = height - 22
    parts.append(f'<line x1="{left}" y1="{axis}" x2="{right}" y2="{axis}" stroke="#444"/>')
    for t in ticks(lo, hi):
        parts.append(f'<line x1="{x(t):.1f}" y1="{axis}" x2="{x(t):.1f}" y2="{axis + 4}" stroke="#444"/>'
                     f'<text x="{x(t):.1f}" y="{axis + 16}" text-anchor="middle" font-size="11">{t:.6g}</text>')
    return '\n'.join(parts + ['</svg>'])


def box_svg(groups: Dict[str, np.ndarray], width: int = 560) -> str:
    """Box plots of the per-prompt means of each model (whiskers: min and max; dot: mean)."""
    chunks = [v for v in groups.values() if len(v)]
    if not chunks:
        return ''
    values = np.concatenate(chunks)
    lo, hi = float(values.min()), float(values.max())
    x, (left, right, lo, hi) = _axis(lo, hi, 0.05, width)
    row = 26
    height = row * len(groups) + 36
    parts = [_svg_open(width, height)]
    for i, (label, v) in enumerate(groups.items()):
        y, colour = 16 + i * row, PALETTE[i % len(PALETTE)]
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12">{esc(label)}</text>')
        if not len(v):
            continue
        q0, q1, q2, q3, q4 = np.percentile(v, [0, 25, 50, 75, 100])
        parts.append(f'<line x1="{x(q0):.1f}" y1="{y}" x2="{x(q4):.1f}" y2="{y}" stroke="{colour}"/>'
                     f'<rect x="{x(q1):.1f}" y="{y - 7}" width="{max(x(q3) - x(q1), 1):.1f}" height="14" '
                     f'fill="{colour}" fill-opacity="0.25" stroke="{colour}"/>'
                     f'<line x1="{x(q2):.1f}" y1="{y - 7}" x2="{x(q2):.1f}" y2="{y + 7}" stroke="{colour}" '
                     f'stroke-width="2"/><circle cx="{x(float(np.mean(v))):.1f}" cy="{y}" r="3" fill="#000"/>')
    axis = height - 20
    parts.append(f'<line x1="{left}" y1="{axis}" x2="{right}" y2="{axis}" stroke="#444"/>')
    for t in ticks(lo, hi):
        parts.append(f'<text x="{x(t):.1f}" y="{axis + 14}" text-anchor="middle" font-size="11">{t:.6g}</text>')
    return '\n'.join(parts + ['</svg>'])


# ----- gallery -----
def thumbnail(image: str, out: str) -> str:
    """A JPEG thumbnail of ``image`` under ``out/thumbs/`` (named by a digest of the path);
    its path relative to ``out``, or '' when the image cannot be read."""
    from PIL import Image

    name = hashlib.sha1(image.encode('utf-8', 'surrogatepass')).hexdigest()[:16] + '.jpg'
    path = os.path.join(out, 'thumbs', name)
    if not os.path.exists(path):
        try:
            with Image.open(image) as picture:
                picture = picture.convert('RGB')
                picture.thumbnail((THUMB, THUMB))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                picture.save(path, quality=85)
        except Exception:  # noqa: BLE001 - a file gone since scoring: no thumbnail, the rest of the report
            return ''
    return f'thumbs/{name}'


def _cell(image: str, caption: str, out: str) -> str:
    src = thumbnail(image, out)
    picture = f'<img src="{esc(src)}" alt="{esc(os.path.basename(image))}">' if src else '<i>(image unreadable)</i>'
    return f'<div class="cell">{picture}{caption}</div>'


def gallery(scored: pd.DataFrame, means: pd.DataFrame, models: Sequence[str], metric: str, out: str,
            lower_better: bool, top: int = 5) -> str:
    """The prompts where the models disagree most (each model's images side by side), then each
    model's best and worst image, by ``metric``."""
    part = scored[scored['metric'] == metric]
    blocks = [f'<h3>Where the models disagree most ({esc(metric)})</h3>']
    prompt_means = means[means['metric'] == metric].set_index(['key', 'model'])['mean']
    for key in stats.disagreement(means, metric, models, top):
        rows = part[part['key'] == key].sort_values(['model', 'seed', 'image'])
        groups = []
        for model in models:
            mine = rows[rows['model'] == model]
            cells = [_cell(r.image, fmt(r.score) + (f' (seed {esc(r.seed)})' if r.seed else ''), out)
                     for r in mine.itertuples()]
            groups.append(f'<div class="grp"><b>{esc(model)}</b>: mean {fmt(prompt_means.get((key, model)))}'
                          f'<div>{"".join(cells)}</div></div>')
        blocks.append(f'<p class="t"><b>prompt</b>: {esc(rows["prompt"].iloc[0])}</p>'
                      f'<div class="gal">{"".join(groups)}</div>')
    blocks.append(f'<h3>Each model\'s best and worst image ({esc(metric)})</h3><div class="gal">')
    for model in models:
        mine = part[part['model'] == model].sort_values(['score', 'image'], ascending=[lower_better, True])
        if len(mine):
            for label, r in (('best', mine.iloc[0]), ('worst', mine.iloc[-1])):
                caption = f'<b>{esc(model)}</b> {label}: {fmt(r.score)}<br>{esc(r.prompt)}'
                blocks.append(_cell(r.image, caption, out))
    return '\n'.join(blocks + ['</div>'])


# ----- the pages -----
def _notes(result, resamples: int, seed: int, lower_better: Dict[str, bool]) -> List[str]:
    directions = ', '.join(f'{m}: {"lower" if lower_better.get(m) else "higher"} is better' for m in result.metrics)
    notes = [f'{len(result.models)} models, {len(result.metrics)} metric(s) ({directions}); the summary uses the '
             f'{result.n_common} prompts every model has; each pairwise row uses the prompts both models have.',
             f'Intervals: 95 % percentile bootstrap over prompts ({resamples} resamples, seed {seed}), the same '
             'resampled prompt sets for every model and pair. Seeds are not resampled: several images of a prompt '
             'are averaged first (their spread is in the seed-spread table).',
             'Pairwise p: two-sided Wilcoxon signed-rank test on the per-prompt differences; Holm-adjusted over '
             'every row; "better" names a model where p (Holm) < 0.05.']
    if len(result.left_out):
        notes.append(f'{len(result.left_out)} prompt(s) lack some model: listed in left_out.csv.')
    if len(result.failed):
        notes.append(f'{len(result.failed)} image(s) could not be scored: listed in failed.csv.')
    return notes


def _html_sections(result, means: pd.DataFrame, out: str, lower_better: Dict[str, bool]) -> List[str]:
    s = result.summary
    body = ['<h2 id="summary">Summary</h2>', html_table(SUMMARY_HEAD, summary_rows(s), 2)]
    for metric, part in s.groupby('metric', sort=False):
        better = 'lower' if lower_better.get(metric) else 'higher'
        body.append(f'<p><b>{esc(metric)}</b> (mean and 95 % interval; {better} is better)</p>')
        body.append(forest_svg(list(part['model']), part['mean'], part['ci_low'], part['ci_high']))
    p = result.pairwise
    classes = list(p['verdict'])
    body += ['<h2 id="pairwise">Pairwise comparisons</h2>', matrix_html(p, result.models),
             html_table(PAIRWISE_HEAD, pairwise_rows(p), 3, classes)]
    for metric, part in p.groupby('metric', sort=False):
        labels = [f'{a} - {b}' for a, b in zip(part['model_a'], part['model_b'])]
        body.append(f'<p><b>{esc(metric)}</b>: differences a - b with 95 % intervals</p>')
        body.append(forest_svg(labels, part['mean_diff'], part['ci_low'], part['ci_high'], zero=True))
    body += ['<h2 id="ranking">Ranking</h2>', f'<p class="note">{esc(RANKING_NOTE)}</p>',
             html_table(RANKING_HEAD, ranking_rows(result.ranking), (0, 2, 4, 5))]
    if len(result.by_category):
        rows = [[r.category] + summary_rows(pd.DataFrame([r]))[0] for r in result.by_category.itertuples()]
        body += ['<h2 id="categories">By category</h2>', html_table(['category'] + SUMMARY_HEAD, rows, 3)]
    body.append('<h2 id="distribution">Distribution of per-prompt scores</h2><p class="note">Each model\'s '
                'per-prompt scores (the mean of a prompt\'s images): box from the 25th to the 75th percentile, line '
                'at the median, whiskers to the minimum and maximum, dot at the mean.</p>')
    for metric in result.metrics:
        part = means[means['metric'] == metric]
        body.append(f'<p><b>{esc(metric)}</b></p>')
        body.append(box_svg({m: part[part['model'] == m]['mean'].to_numpy(float) for m in result.models}))
    body += ['<h2 id="seeds">Seed-to-seed spread</h2>', html_table(SPREAD_HEAD, spread_rows(result.seed_spread), 2)]
    body.append('<h2 id="gallery">Gallery</h2>')
    for metric in result.metrics:
        body.append(gallery(result.scored, means, result.models, metric, out, bool(lower_better.get(metric))))
    return body


def write_reports(result, means: pd.DataFrame, out: str, lower_better: Dict[str, bool], resamples: int,
                  seed: int) -> None:
    """``out/report.html`` and ``out/report.md``."""
    notes = _notes(result, resamples, seed, lower_better)
    title = 'Comparison of ' + ', '.join(result.models)
    page = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">', '<link rel="icon" href="data:,">',
            f'<title>{esc(title)}</title><style>{CSS}</style></head><body>', f'<h1>{esc(title)}</h1>']
    page += [f'<p class="note">{esc(n)}</p>' for n in notes]
    page += _html_sections(result, means, out, lower_better) + ['</body></html>']
    with open(os.path.join(out, 'report.html'), 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(page) + '\n')
    md = [f'# {title}', ''] + [f'- {n}' for n in notes]  # model and metric names: letters, digits, . _ + -
    md += ['', '## Summary', '', md_table(SUMMARY_HEAD, summary_rows(result.summary)),
           '', '## Pairwise comparisons', '', md_table(PAIRWISE_HEAD, pairwise_rows(result.pairwise)),
           '', '## Ranking', '', RANKING_NOTE, '', md_table(RANKING_HEAD, ranking_rows(result.ranking))]
    if len(result.by_category):
        rows = [[r.category] + summary_rows(pd.DataFrame([r]))[0] for r in result.by_category.itertuples()]
        md += ['', '## By category', '', md_table(['category'] + SUMMARY_HEAD, rows)]
    md += ['', '## Seed-to-seed spread', '', md_table(SPREAD_HEAD, spread_rows(result.seed_spread))]
    for metric in result.metrics:
        head, rows = disagreement_rows(means, metric, result.models)
        if rows:
            md += ['', f'## Where the models disagree most ({metric})', '', md_table(head, rows)]
    with open(os.path.join(out, 'report.md'), 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(md) + '\n')
