"""One benchmark run, in a process of its own: train (resuming whatever state is there),
predict the test part with the selected weights, export them, and write the run's record.

``python -m pyiqa_agiqa.benchmark.worker DIR RUN_ID [--threads N]``. Every engine runs this
same command (the local one as a child process pinned to one GPU, the Ray one inside a task),
so a run's figures do not depend on the engine. The record ``DIR/runs/RUN_ID.json`` is
written last and atomically: a run without one is not finished and is resumed next time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

from ..errors import one_line
from ..weights.io import atomic_write
from .grid import run_options_path
from .predictions import figures, predictions_path, write_predictions

RUNS_DIR = 'runs'


def record_path(out: Path, run_id: str) -> Path:
    return Path(out) / RUNS_DIR / f'{run_id}.json'


def read_record(out: Path, run_id: str) -> Optional[dict]:
    path = record_path(out, run_id)
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(out: Path, record: dict) -> None:
    path = record_path(out, record['run'])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))


def _resumable(out: Path, run_id: str) -> bool:
    states = Path(out) / 'experiments' / run_id / 'training_states'
    return states.is_dir() and any(states.iterdir())


def _train_predict_export(out: Path, run_id: str, record: dict) -> None:
    import torch
    from pyiqa.data import build_dataset

    from ..export.experiment import export_experiment
    from ..training.loaders import build_eval_loader
    from ..training.pipeline import TrainingRun, load_options

    opt, opt_file = load_options(['-opt', str(run_options_path(out, run_id)), '--auto_resume'], str(out))
    run = TrainingRun(opt, opt_file)
    run.run()
    model = run.model
    model.copy_model(model.net_best, model.net)  # predictions with the selected weights
    block = opt['datasets'][record['test_block']]
    dataset = build_dataset(block)
    preds, gts = model.predict(build_eval_loader(dataset, block, opt))
    write_predictions(predictions_path(out, run_id), dataset, block, model.targets, preds, gts)
    record['figures'] = figures(predictions_path(out, run_id))  # read back: the file is the source
    results = json.loads((Path(opt['path']['experiments_root']) / 'results.json').read_text())
    weights = Path(out) / 'weights' / run_id
    export_experiment(Path(opt['path']['experiments_root']), weights, overwrite=True)
    selection = results['results'].get(results['selected_on'], {})
    key = results.get('key_metric')
    record.update(selected_iter=results.get('selected_iter'), selected_on=results.get('selected_on'),
                  key_metric=key, key_value=(selection.get(key) or {}).get('val'),
                  selection_history=results.get('selection_history', []), versions=results.get('versions'),
                  weights=os.path.relpath(weights, out), device=str(model.device), threads=torch.get_num_threads(),
                  predictions=os.path.relpath(predictions_path(out, run_id), out))


BUSY = 75  # exit status of a worker whose run another live process holds


def _hold(out: Path, run_id: str):
    """An exclusive lock on the run (None where another process holds it), released when this
    process ends however it ends."""
    handle = open(Path(out) / RUNS_DIR / f'{run_id}.lock', 'a')
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def run_one(out: Path, run_id: str, threads: Optional[int] = None) -> dict:
    """Train, predict and export one run; returns (and writes) its record, whose ``status``
    is ``finished`` or ``failed`` (with ``error``: the exception's type and message)."""
    import torch

    out = Path(out).resolve()
    if threads:
        torch.set_num_threads(threads)
    spec = json.loads((Path(out) / RUNS_DIR / f'{run_id}.run.json').read_text())
    record = dict(spec, run=run_id, status='failed', error='', resumed=_resumable(out, run_id))
    start = record['started'] = time.time()
    try:
        _train_predict_export(out, run_id, record)
        record['status'] = 'finished'
    except Exception as error:  # noqa: BLE001  (any failure is this run's named error, the others go on)
        record['error'] = f'{type(error).__name__}: {one_line(error)}'
        traceback.print_exc()
    record['seconds'] = round(time.time() - start, 3)
    write_record(out, record)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m pyiqa_agiqa.benchmark.worker',
                                     description='one run of pyiqa-agiqa benchmark (started by the benchmark)')
    parser.add_argument('out')
    parser.add_argument('run_id')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s)')
    args = parser.parse_args(argv)
    lock = _hold(Path(args.out), args.run_id)
    if lock is None:
        print(f'{args.run_id} is being run by another process: not started twice', flush=True)
        return BUSY
    record = run_one(Path(args.out), args.run_id, args.threads)
    print(f"{args.run_id}: {record['status']} {record['error']}".rstrip(), flush=True)
    return 0 if record['status'] == 'finished' else 1


if __name__ == '__main__':
    sys.exit(main())
