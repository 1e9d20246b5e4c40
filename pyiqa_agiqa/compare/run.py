"""``pyiqa-agiqa compare``: score every model's images with the scoring engine, local or Ray (either
way one resumable ``OUT/scores/<model>.csv`` per model), pair them by prompt, compute the
statistics of :mod:`.stats` and write the tables and the report into OUT.

OUT holds only what this module writes: ``compare.json`` (what was compared), ``scores/``,
``summary.csv``, ``summary_by_category.csv``, ``pairwise.csv``, ``ranking.csv``,
``seed_spread.csv``, ``left_out.csv``, ``failed.csv``, ``report.html``, ``report.md`` and
``thumbs/``. A folder with other content is refused unless ``overwrite``; an earlier compare's
folder is continued (its scores resumed)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import pandas as pd

from ..errors import OptionError
from ..scoring.contract import row_key
from . import stats
from .inputs import models_of

MARKER = 'compare.json'
OWN_NAMES = {MARKER, 'scores', 'summary.csv', 'summary_by_category.csv', 'pairwise.csv', 'ranking.csv',
             'seed_spread.csv', 'left_out.csv', 'failed.csv', 'report.html', 'report.md', 'thumbs'}


@dataclass
class CompareResult:
    """What a compare wrote and measured: the tables of :mod:`.stats`, the long table of scored
    images (``scored``: metric, model, image, key, prompt, category, seed, score), the rows that
    failed, and seconds spent scoring / on everything else."""
    summary: pd.DataFrame
    pairwise: pd.DataFrame
    ranking: pd.DataFrame
    by_category: pd.DataFrame
    seed_spread: pd.DataFrame
    left_out: pd.DataFrame
    scored: pd.DataFrame
    failed: pd.DataFrame
    models: List[str]
    metrics: List[str]
    n_common: int
    seconds: Dict[str, float] = field(default_factory=dict)


class PromptFreeMetric:
    """One of pyiqa's own no-reference metrics scored by the plugin's engine: the prompt is ignored."""

    def __init__(self, metric):
        self.metric, self.device, self.lower_better = metric, metric.device, bool(metric.lower_better)

    def __call__(self, images, prompt=None):
        return self.metric(images)


def check_metrics(names: Sequence[str], options=None, weights=None, allow_untrained: bool = False) -> None:
    """Every name, option and weights request checked before anything is scored or written
    (one-line errors): the plugin's metrics by
    :func:`~pyiqa_agiqa.metrics.factory.metric_requests`, others must be pyiqa's no-reference ones."""
    import pyiqa

    from ..metrics.factory import metric_network, metric_requests, plugin_metric_names

    ours = [n for n in names if n in plugin_metric_names()]
    for name in names:
        if name not in ours and name not in pyiqa.list_models(metric_mode='NR'):
            metric_network(name)  # the one-line error of an unknown metric, with its suggestion
    if ours:
        metric_requests(ours, options, weights, allow_untrained)
    elif options or weights:
        raise OptionError(f'--set / --weights / --precision apply to the plugin\'s metrics; {list(names)} take none')


def build_metrics(names: Sequence[str], device=None, options=None, weights=None, seed: int = 0,
                  compile_mode=None, allow_untrained: bool = False) -> Dict[str, object]:
    """The plugin's metrics by :func:`~pyiqa_agiqa.metrics.factory.create_metrics` (options,
    weights, readiness checks); pyiqa's own no-reference metrics (e.g. ``piqe``) as
    :class:`PromptFreeMetric` (they take no options here)."""
    import pyiqa

    from ..metrics.factory import create_metrics, plugin_metric_names

    ours = [n for n in names if n in plugin_metric_names()]
    theirs = [n for n in names if n not in ours]
    metrics = create_metrics(ours, device, options, weights, seed, compile_mode, allow_untrained) if ours else {}
    for name in theirs:
        metrics[name] = PromptFreeMetric(pyiqa.create_metric(name, device=device))
    return {name: metrics[name] for name in names}


def lower_better_of(names: Sequence[str]) -> Dict[str, bool]:
    """{metric: True} for the metrics whose lower scores are better, from pyiqa's metric table
    (which holds the plugin's entries once this package is imported)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return {name: bool(DEFAULT_CONFIGS.get(name, {}).get('lower_better', False)) for name in names}


def prepare_out(out: str, overwrite: bool) -> bool:
    """Check that ``out`` may be written: new, empty, or an earlier compare's (continued); a folder
    holding anything else only with ``overwrite``. Returns whether score files are overwritten."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise OptionError(f'--out {out} is a file; give a folder (new, or an earlier compare to continue)')
    entries = set(os.listdir(out)) if os.path.isdir(out) else set()
    if entries and MARKER not in entries and not overwrite:
        raise OptionError(f'--out {out} holds other files ({", ".join(sorted(entries)[:3])}); give a new folder, '
                          'or pass --overwrite to write the comparison into it')
    os.makedirs(os.path.join(out, 'scores'), exist_ok=True)
    return overwrite


def _rows(generations: pd.DataFrame):
    from ..scoring.rows import Row

    return [Row(image, prompt or None, 'csv' if prompt else '') for image, prompt in
            zip(generations['image'], generations['prompt'])]


class ModelWriters:
    """The scoring engine's writer (``done``, ``start``, ``write``) over one
    :class:`~pyiqa_agiqa.scoring.output.ResultWriter` per model, so that every model's images are
    scored in one pass (one decoding pipeline, full batches): each record goes to the file of every
    model that lists its row key and lacks it (an image listed by two models is scored once)."""

    def __init__(self, writers: Dict[str, object], owners: Dict[tuple, List[str]]):
        self.writers, self.owners = writers, owners
        self.done = {key for key, models in owners.items() if all(key in writers[m].done for m in models)}

    def start(self) -> None:
        for writer in self.writers.values():
            writer.start()

    def write(self, records: List[dict]) -> None:
        per_model: Dict[str, List[dict]] = {}
        for record in records:
            key = row_key(record['image'], record['prompt'], record['prompt_source'])
            for model in self.owners.get(key, ()):
                if key not in self.writers[model].done:
                    per_model.setdefault(model, []).append(record)
        for model, chosen in per_model.items():
            self.writers[model].write(chosen)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _open_writers(metric_names: Sequence[str], generations: pd.DataFrame, out: str, overwrite: bool):
    """({model: ResultWriter of out/scores/<model>.csv}, {model: its rows still to score}): each
    model's file resumed (unless ``overwrite``), its rows not done there listed (with a line per
    model that has some)."""
    from ..scoring.contract import output_columns
    from ..scoring.local import rows_to_score
    from ..scoring.output import ResultWriter

    writers, todo = {}, {}
    try:
        for model in models_of(generations):
            path = os.path.join(out, 'scores', f'{model}.csv')
            writers[model] = ResultWriter(path, output_columns(metric_names), overwrite=overwrite,
                                          resume=not overwrite)
            for note in writers[model].notes:
                print(f'note: {note}', file=sys.stderr)
            todo[model], _, done = rows_to_score(_rows(generations[generations['model'] == model]),
                                                 writers[model].done)
            if todo[model]:
                print(f'{model}: {len(todo[model])} images to score' + (f' ({done} already in {path})' if done else ''),
                      file=sys.stderr, flush=True)
    except BaseException:
        for writer in writers.values():
            writer.close()
        raise
    return writers, todo


def score_models(metric_names: Sequence[str], generations: pd.DataFrame, out: str, make_metrics: Callable,
                 overwrite: bool = False, batch_size: int = 8, workers: int = 2, progress: bool = True) -> None:
    """Score every model's images into ``out/scores/<model>.csv`` with the local engine in one pass,
    resuming what is there; the metrics are built (``make_metrics()``) only if some image needs
    scoring."""
    from ..scoring.local import rows_to_score, score_rows

    writers, todo = _open_writers(metric_names, generations, out, overwrite)
    try:
        owners, rows = {}, []
        for model, mine in todo.items():
            for row in _rows(generations[generations['model'] == model]):
                owners.setdefault(row_key(row.image, row.prompt, row.prompt_source), []).append(model)
            rows += mine
        combined = ModelWriters(writers, owners)
        if rows_to_score(rows, combined.done)[0]:
            score_rows(make_metrics(), rows, combined, batch_size=batch_size, progress=progress, workers=workers)
        else:
            combined.start()
    finally:
        for writer in writers.values():
            writer.close()


RAY_FOLDER = os.path.join('scores', 'ray')


def score_models_ray(metric_names: Sequence[str], generations: pd.DataFrame, out: str, ray_options: dict,
                     overwrite: bool = False) -> None:
    """As :func:`score_models` on the Ray engine, ending with the same ``out/scores/<model>.csv``
    files: one Ray job over the rows that some model's file lacks (each (image, prompt) once),
    listed in ``out/scores/ray/input.csv``, into the Ray engine's part files in ``out/scores/ray/``
    (resumed by the Ray engine if the job is killed); when the job has finished, each model's rows
    are appended to its file and the part folder is removed. A rerun with one more model scores
    only that model's images."""
    import shutil

    from ..scoring.ray_engine import read_results, score_with_ray

    folder = os.path.join(out, RAY_FOLDER)
    if overwrite:
        shutil.rmtree(folder, ignore_errors=True)
    writers, todo = _open_writers(metric_names, generations, out, overwrite)
    try:
        listing = pd.DataFrame([dict(image=r.image, prompt=r.prompt or '') for rows in todo.values() for r in rows],
                               columns=['image', 'prompt']).drop_duplicates()
        if len(listing):
            os.makedirs(folder, exist_ok=True)
            listing.to_csv(os.path.join(folder, 'input.csv'), index=False)
            summary = score_with_ray(list(metric_names), os.path.join(folder, 'input.csv'), folder, fmt='csv',
                                     **ray_options)
            print(f'ray: {summary.read} rows read, {summary.skipped} already scored, {summary.scored} scored, '
                  f'{summary.failed} failed', file=sys.stderr, flush=True)
            results = read_results(folder)
            results.index = [row_key(i, p, s) for i, p, s in
                             zip(results['image'], results['prompt'], results['prompt_source'])]
            columns = list(results.columns)
            for model, rows in todo.items():
                keys = [row_key(r.image, r.prompt, r.prompt_source) for r in rows]
                found = results.reindex([k for k in keys if k in results.index])
                records = [{c: ('' if isinstance(v, float) and v != v else v) for c, v in zip(columns, values)}
                           for values in found.itertuples(index=False)]
                if records:
                    writers[model].write(records)
        for writer in writers.values():
            writer.close()
        shutil.rmtree(folder, ignore_errors=True)  # every row is in the models' files now
    finally:
        for writer in writers.values():
            writer.close()


def read_model_scores(out: str, model: str) -> pd.DataFrame:
    """``out/scores/<model>.csv`` (either engine)."""
    from ..scoring.output import read_scores

    return read_scores(os.path.join(out, 'scores', f'{model}.csv'))


def scored_table(generations: pd.DataFrame, out: str, metric_names: Sequence[str]):
    """(scored, failed): the long table of scores (metric, model, image, key, prompt, category,
    seed, score) of the listed images, joined to their score rows by the row contract; and the
    rows not scored (model, image, prompt, error)."""
    parts, failed = [], []
    for model in models_of(generations):
        listed = generations[generations['model'] == model].copy()
        stored = read_model_scores(out, model)
        stored = stored.assign(_ok=stored['error'].fillna('') == '').sort_values('_ok', kind='stable')  # done last
        stored.index = [row_key(i, p, s) for i, p, s in
                        zip(stored['image'], stored['prompt'], stored['prompt_source'])]
        stored = stored[~stored.index.duplicated(keep='last')]
        keys = [row_key(i, p or None, 'csv' if p else '') for i, p in zip(listed['image'], listed['prompt'])]
        found = stored.reindex(keys)
        listed['prompt'] = found['prompt'].fillna('').to_numpy()
        listed['error'] = found['error'].fillna('not scored').to_numpy()
        bad = listed['error'] != ''
        failed.append(listed[bad][['model', 'image', 'prompt', 'error']])
        ok, found = listed[~bad], found[~bad.to_numpy()]
        ok = ok.assign(key=[pid or prompt for pid, prompt in zip(ok['prompt_id'], ok['prompt'])])
        for metric in metric_names:
            parts.append(ok.assign(metric=metric, score=found[metric].astype(float).to_numpy()))
    columns = ['metric', 'model', 'image', 'key', 'prompt', 'category', 'seed', 'score']
    scored = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    return scored, pd.concat(failed, ignore_index=True)


def analyse(scored: pd.DataFrame, models: Sequence[str], metric_names: Sequence[str], resamples: int, seed: int,
            lower_better: Dict[str, bool]) -> dict:
    """Every table of :mod:`.stats` from the long table of scores."""
    if resamples < 1:
        raise OptionError(f'--bootstrap must be >= 1, got {resamples}')
    means = stats.per_prompt_means(scored)
    summary = stats.summary(means, models, resamples, seed)
    pairs = stats.pairwise(means, models, resamples, seed, lower_better)
    return dict(means=means, summary=summary, pairwise=pairs, ranking=stats.ranking(summary, pairs, lower_better),
                by_category=stats.summary_by_category(means, models, resamples, seed),
                seed_spread=stats.seed_spread(means), left_out=stats.left_out(means, models))


def write_csv(table: pd.DataFrame, path: str) -> None:
    """``table`` as CSV with every text cell spreadsheet-safe (no formula runs when opened)."""
    from ..scoring.output import spreadsheet_safe

    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(spreadsheet_safe)
    safe.to_csv(path, index=False)


def run_compare(metric_names: Sequence[str], generations: pd.DataFrame, out: str, make_metrics: Callable,
                lower_better: Optional[Dict[str, bool]] = None, resamples: int = 10000, seed: int = 0,
                overwrite: bool = False, batch_size: int = 8, workers: int = 2, progress: bool = True,
                engine: str = 'local', ray_options: Optional[dict] = None, report: bool = True) -> CompareResult:
    """The whole comparison (see the module doc). ``make_metrics()`` -> {name: metric};
    ``lower_better``: {metric: True} for metrics where a lower score is better."""
    metric_names = list(dict.fromkeys(metric_names))
    models = models_of(generations)
    overwrite = prepare_out(out, overwrite)
    with open(os.path.join(out, MARKER), 'w') as handle:
        json.dump({'metrics': metric_names, 'models': models, 'bootstrap': resamples, 'seed': seed}, handle, indent=1)
    start = time.perf_counter()
    if engine == 'ray':
        score_models_ray(metric_names, generations, out, ray_options or {}, overwrite)
    else:
        score_models(metric_names, generations, out, make_metrics, overwrite, batch_size, workers, progress)
    scoring = time.perf_counter() - start
    scored, failed = scored_table(generations, out, metric_names)
    tables = analyse(scored, models, metric_names, resamples, seed, dict(lower_better or {}))
    for name in ('summary', 'pairwise', 'ranking', 'seed_spread', 'left_out'):
        write_csv(tables[name], os.path.join(out, f'{name}.csv'))
    write_csv(tables['by_category'], os.path.join(out, 'summary_by_category.csv'))
    write_csv(failed, os.path.join(out, 'failed.csv'))
    result = CompareResult(tables['summary'], tables['pairwise'], tables['ranking'], tables['by_category'],
                           tables['seed_spread'], tables['left_out'], scored, failed, models, metric_names,
                           int(tables['summary']['n_prompts'].iloc[0]) if len(tables['summary']) else 0)
    if report:
        from .report import write_reports

        write_reports(result, tables['means'], out, dict(lower_better or {}), resamples, seed)
    result.seconds = dict(scoring=scoring, rest=time.perf_counter() - start - scoring)
    return result
