"""The benchmark's tables, from the runs' records: ``runs.csv`` (one row per run and target),
``results.csv`` (mean / std over the finished splits per option file and target, next to the
published figure), and the best split's weights per option file (``best/NAME``).

Means and standard deviations are over the finished splits only (``splits`` says how many of
the planned ones); the standard deviation is the population one (numpy's default, as
``train-nsplits``'s table). A non-finite figure (constant predictions) is left out of its mean
and counted in ``left_out``. The best split is the one with the highest validation key metric
(``key_value``: the figure net_best was selected by), never the test figure.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..scoring.output import spreadsheet_safe
from ..weights.card import CARD_FILE
from ..weights.io import atomic_write
from .grid import Run

PUBLISHED = Path(__file__).resolve().parent / 'published.csv'
METRICS = ('srcc', 'plcc', 'krcc')
RUN_COLUMNS = ['method', 'dataset', 'name', 'target', 'label', 'split', 'status', 'srcc', 'plcc', 'krcc', 'n_test',
               'selected_iter', 'selected_on', 'key_metric', 'key_value', 'seconds', 'resumed', 'weights',
               'predictions', 'run', 'error']
RESULT_COLUMNS = (['method', 'dataset', 'name', 'target', 'label', 'protocol', 'splits', 'splits_planned', 'failed']
                  + [f'{m}_{s}' for m in METRICS for s in ('mean', 'std')] + ['left_out']
                  + [f'published_{m}' for m in METRICS] + [f'diff_{m}' for m in METRICS]
                  + ['published_protocol', 'published_source'])


def published() -> pd.DataFrame:
    """The published figures of the method cards (method, dataset, label -> srcc, plcc, krcc)."""
    return pd.read_csv(PUBLISHED, keep_default_na=False)


def run_rows(runs: Sequence[Run], records: Dict[str, dict]) -> List[dict]:
    """runs.csv's rows: every run that has a record, one row per target."""
    rows = []
    for run in runs:
        record = records.get(run.run_id)
        if record is None:
            continue
        for target, label in run.targets.items():
            fig = (record.get('figures') or {}).get(target, {})
            rows.append(dict(
                method=run.method, dataset=run.dataset, name=run.name, target=target, label=label, split=run.split,
                status=record['status'], srcc=fig.get('srcc'), plcc=fig.get('plcc'), krcc=fig.get('krcc'),
                n_test=fig.get('n'), selected_iter=record.get('selected_iter'), selected_on=record.get('selected_on'),
                key_metric=record.get('key_metric'), key_value=record.get('key_value'), seconds=record.get('seconds'),
                resumed=record.get('resumed'), weights=record.get('weights', ''),
                predictions=record.get('predictions', ''), run=run.run_id, error=record.get('error', '')))
    return rows


def _finite(values) -> List[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _published_row(table: pd.DataFrame, method: str, dataset: str, label: str) -> Optional[dict]:
    match = table[(table['method'] == method) & (table['dataset'] == dataset) & (table['label'] == label)]
    return match.iloc[0].to_dict() if len(match) else None


def result_rows(runs: Sequence[Run], rows: List[dict]) -> List[dict]:
    """results.csv's rows: one per (option file, target) of the grid."""
    table, out = published(), []
    for name in dict.fromkeys(r.name for r in runs):
        planned = [r for r in runs if r.name == name]
        first = planned[0]
        for target, label in first.targets.items():
            mine = [row for row in rows if row['name'] == name and row['target'] == target]
            done = [row for row in mine if row['status'] == 'finished']
            result = dict(method=first.method, dataset=first.dataset, name=name, target=target, label=label,
                          protocol=f'{first.scheme} splits ' + ' '.join(str(r.split) for r in planned),
                          splits=len(done), splits_planned=len(planned),
                          failed=' '.join(str(row['split']) for row in mine if row['status'] != 'finished'))
            left_out = []
            for metric in METRICS:
                values = _finite(row[metric] for row in done)
                left_out += [f"{metric} of split {row['split']}" for row in done
                             if not _finite([row[metric]])]
                result[f'{metric}_mean'] = float(np.mean(values)) if values else None
                result[f'{metric}_std'] = float(np.std(values)) if values else None
            result['left_out'] = ', '.join(left_out)
            reference = _published_row(table, first.method, first.dataset, label)
            for metric in METRICS:
                value = reference.get(metric) if reference else None
                value = float(value) if value not in (None, '') else None
                result[f'published_{metric}'] = value
                mean = result[f'{metric}_mean']
                result[f'diff_{metric}'] = mean - value if value is not None and mean is not None else None
            result['published_protocol'] = reference['protocol'] if reference else ''
            result['published_source'] = reference['source'] if reference else ''
            out.append(result)
    return out


def write_csv(path: Path, rows: List[dict], columns: List[str]) -> None:
    """Atomically, text cells spreadsheet-safe (names and errors can come from files)."""
    safe = [{k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    atomic_write(path, lambda tmp: pd.DataFrame(safe, columns=columns).to_csv(tmp, index=False))


def best_runs(runs: Sequence[Run], records: Dict[str, dict]) -> Dict[str, str]:
    """{option file name: run_id of its finished split with the highest validation key metric}."""
    best: Dict[str, tuple] = {}
    for run in runs:
        record = records.get(run.run_id) or {}
        value = record.get('key_value')
        if record.get('status') != 'finished' or value is None or not math.isfinite(value):
            continue
        if run.name not in best or value > best[run.name][0]:
            best[run.name] = (value, run.run_id)
    return {name: run_id for name, (_, run_id) in best.items()}


def _card_experiment(folder: Path) -> Optional[str]:
    """The experiment an exported folder's card says it comes from (None if no card)."""
    card = folder / CARD_FILE
    return json.loads(card.read_text()).get('training', {}).get('experiment') if card.is_file() else None


def copy_best(out: Path, chosen: Dict[str, str]) -> Dict[str, str]:
    """Copy each chosen run's exported folder to ``best/NAME`` (replaced in one rename when
    another split became the best); returns {name: folder relative to out}."""
    written = {}
    for name, run_id in chosen.items():
        source, target = out / 'weights' / run_id, out / 'best' / name
        if _card_experiment(target) != run_id:
            staging = out / 'best' / f'.{name}.tmp{os.getpid()}'
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging)
            old = out / 'best' / f'.{name}.old{os.getpid()}'
            if target.exists():
                os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        written[name] = os.path.relpath(target, out)
    return written
