"""``pyiqa-agiqa benchmark``: plan the grid, run what is not finished, write the outputs as
each run ends.

DIR holds ``options/`` (one option file per run), ``experiments/`` (the training runs),
``runs/`` (each run's record, written last by its worker), ``predictions/``, ``weights/``
(every run exported), ``best/`` (the best split per option file), ``logs/``, ``plots/``,
``runs.csv``, ``results.csv`` and ``report.md``. A run with a ``finished`` record is never
started again; any other run (not started, interrupted, failed) is started with the loop's
resume, so a killed benchmark run again with the same command ends with the figures of an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from ..errors import OptionError, RunsFailedError
from ..weights.io import atomic_write
from . import engines
from .grid import Run, format_plan, plan_runs, write_run_options
from .report import report_markdown, write_plots, write_report
from .tables import (RESULT_COLUMNS, RUN_COLUMNS, best_runs, copy_best, result_rows, run_rows, write_csv)
from .worker import BUSY, RUNS_DIR, read_record, write_record

ENGINES = ('local', 'ray')


def write_outputs(out: Path, runs: Sequence[Run], command: str) -> Dict[str, dict]:
    """runs.csv, results.csv, best/, plots and report.md from the records there are now."""
    records = {r.run_id: read_record(out, r.run_id) for r in runs}
    records = {k: v for k, v in records.items() if v is not None}
    rows = run_rows(runs, records)
    write_csv(out / 'runs.csv', rows, RUN_COLUMNS)
    results = result_rows(runs, rows)
    write_csv(out / 'results.csv', results, RESULT_COLUMNS)
    best = copy_best(out, best_runs(runs, records))
    plots = write_plots(out, runs, records, results)
    write_report(out, report_markdown(runs, records, results, plots, best, command))
    return records


def _write_specs(out: Path, runs: Sequence[Run]) -> None:
    """``runs/RUN.run.json`` (what the worker reads) and ``plan.json`` (the grid, in order)."""
    folder = out / RUNS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    plan = json.dumps([asdict(r) for r in runs], indent=1)
    atomic_write(out / 'plan.json', lambda tmp: Path(tmp).write_text(plan))
    for run in runs:
        spec = {k: v for k, v in asdict(run).items() if k != 'images'}
        atomic_write(folder / f'{run.run_id}.run.json', lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=1)))


def load_plan(out: Path) -> List[Run]:
    """The grid of the last benchmark run in ``out`` (``plan.json``)."""
    return [Run(**entry) for entry in json.loads((Path(out) / 'plan.json').read_text())]


def _crashed(out: Path, run: Run, code: int, tail: str) -> None:
    """A worker that ended without writing its record (killed, out of memory, or its run held
    by another live process): a failed record saying which."""
    if read_record(out, run.run_id) is not None:
        return
    if code == BUSY:
        error = (f'another process (a second benchmark on {out}?) is running {run.run_id}: not started twice; '
                 'run the command again when that one has ended')
    else:
        error = (f'the run\'s process ended with status {code} without a result (killed? out of memory?); '
                 f'its log: {engines.LOGS_DIR}/{run.run_id}.log: {tail[-300:]}')
    write_record(out, dict(asdict(run), run=run.run_id, status='failed', resumed=None, seconds=None, error=error))


def run_benchmark(option_files: Sequence[str], out: str, splits: Optional[Sequence[int]] = None,
                  engine: str = 'local', jobs: Optional[int] = None, threads: Optional[int] = None,
                  gpus_per_run: float = 1.0, retries: int = 3, plan_only: bool = False,
                  progress: bool = True, command: Optional[str] = None) -> Dict[str, dict]:
    """Run the grid (see the module doc); returns {run_id: record}. Raises RunsFailedError at
    the end if a run failed (after every other run and every output). Only ``plan_only``'s grid
    goes to standard output; progress and summaries go to standard error."""
    if engine not in ENGINES:
        raise OptionError(f'--engine must be one of {list(ENGINES)}, got {engine!r}')
    runs = plan_runs(option_files, splits, images=not plan_only)
    if plan_only:
        print(format_plan(runs), flush=True)
        return {}
    out = Path(out).resolve()
    command = command or ' '.join(shlex.quote(a) for a in ['pyiqa-agiqa'] + sys.argv[1:])
    write_run_options(out, runs)
    _write_specs(out, runs)
    todo = [r for r in runs if (read_record(out, r.run_id) or {}).get('status') != 'finished']
    by_id = {r.run_id: r for r in runs}
    if len(todo) < len(runs):
        print(f'{len(runs) - len(todo)} of {len(runs)} runs already finished in {out}: kept', file=sys.stderr,
              flush=True)
    if engine == 'ray':
        threads = threads or 1
        finished = engines.run_ray(out, [r.run_id for r in todo], threads, gpus_per_run, retries)
    else:
        gpus = engines.visible_gpus()
        jobs = jobs or max(1, len(gpus))
        threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        finished = engines.run_local(out, [r.run_id for r in todo], jobs, threads, gpus)
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc='benchmark', unit='run', disable=not progress)
    records = write_outputs(out, runs, command)
    for run_id, code, tail in finished:
        _crashed(out, by_id[run_id], code, tail)
        bar.update(1)
        bar.write(_summary(read_record(out, run_id)), file=sys.stderr)
        records = write_outputs(out, runs, command)
    bar.close()
    failed = [r.run_id for r in runs if (records.get(r.run_id) or {}).get('status') != 'finished']
    print(f'{len(runs) - len(failed)} of {len(runs)} runs finished; tables, plots and report in {out}', file=sys.stderr,
          flush=True)
    if failed:
        raise RunsFailedError(f'{len(failed)} of {len(runs)} runs failed ({", ".join(failed)}); {out}/runs.csv '
                              'names each error and results.csv averages the finished splits only; fix them and run '
                              'the same command again (finished runs are kept)')
    return records


def _summary(record: dict) -> str:
    if record['status'] != 'finished':
        return f"{record['run']}: FAILED: {record['error']}"
    figures = ', '.join(f"{t} SRCC {f['srcc']:.4f} PLCC {f['plcc']:.4f}" for t, f in record['figures'].items())
    return f"{record['run']}: {figures} ({record['seconds']:.0f} s{', resumed' if record.get('resumed') else ''})"


__all__: List[str] = ['run_benchmark', 'write_outputs', 'load_plan', 'ENGINES']
