"""Where the benchmark's runs execute. Every engine starts the same worker command
(:mod:`.worker`) for each run, with the same torch thread count, so the figures do not depend
on the engine.

- ``local``: child processes on this machine, ``jobs`` at once; with GPUs, one run per GPU
  (``CUDA_VISIBLE_DEVICES`` set to one device for each child, the option files'
  ``num_gpu: auto`` then uses that one).
- ``ray``: one Ray task per run (``num_gpus=gpus_per_run``, ``num_cpus=threads``) on the
  cluster of ``RAY_ADDRESS`` or a local Ray instance. DIR must be on a filesystem every node
  reaches at the same path. A task whose node dies is retried by Ray (``retries`` times), and
  the retry resumes the run from its last training state in DIR.

An engine yields ``(run_id, exit status, log tail)`` as each run ends; the worker's output
goes to ``DIR/logs/RUN.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

LOGS_DIR = 'logs'


def worker_command(out: Path, run_id: str, threads: int) -> List[str]:
    return [sys.executable, '-m', 'pyiqa_agiqa.benchmark.worker', str(out), run_id, '--threads', str(threads)]


def worker_env(threads: int, device: Optional[str] = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    if device is not None:
        env['CUDA_VISIBLE_DEVICES'] = device
    return env


def _die_with_parent() -> None:
    """In the child (Linux): be killed when the benchmark process dies, so that a killed
    benchmark leaves no run going on by itself (the next benchmark resumes it)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def log_tail(path: Path, lines: int = 3) -> str:
    if not path.is_file():
        return ''
    return ' | '.join(line.strip() for line in path.read_text(errors='replace').splitlines()[-lines:])


def visible_gpus() -> List[str]:
    """The GPU ids runs can be pinned to (CUDA_VISIBLE_DEVICES's entries, or 0..N-1)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = [d.strip() for d in os.environ.get('CUDA_VISIBLE_DEVICES', '').split(',') if d.strip()]
    return listed or [str(i) for i in range(torch.cuda.device_count())]


def run_local(out: Path, run_ids: Sequence[str], jobs: int, threads: int,
              gpus: Sequence[str] = ()) -> Iterator[Tuple[str, int, str]]:
    """Child processes, ``jobs`` at once (one per GPU of ``gpus`` when given)."""
    pending, active = list(run_ids), {}
    slots = list(gpus) if gpus else [None] * jobs
    slots = slots[:jobs] if jobs else slots
    free = list(range(len(slots)))
    (out / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    try:
        while pending or active:
            while pending and free:
                slot, run_id = free.pop(0), pending.pop(0)
                log = open(out / LOGS_DIR / f'{run_id}.log', 'a')
                process = subprocess.Popen(worker_command(out, run_id, threads), env=worker_env(threads, slots[slot]),
                                           stdout=log, stderr=subprocess.STDOUT,
                                           preexec_fn=_die_with_parent if sys.platform == 'linux' else None)
                active[run_id] = (process, slot, log)
            for run_id, (process, slot, log) in list(active.items()):
                if process.poll() is not None:
                    log.close()
                    del active[run_id]
                    free.append(slot)
                    yield run_id, process.returncode, log_tail(out / LOGS_DIR / f'{run_id}.log')
            time.sleep(0.2)
    finally:
        for process, _, log in active.values():
            process.terminate()
            log.close()


def _ray_run(out: str, run_id: str, threads: int) -> Tuple[int, str]:
    """The body of a Ray task: the worker command in a child process (GPUs as Ray assigned)."""
    path = Path(out) / LOGS_DIR / f'{run_id}.log'
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as log:
        code = subprocess.call(worker_command(Path(out), run_id, threads), env=worker_env(threads),
                               stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=_die_with_parent if sys.platform == 'linux' else None)
    return code, log_tail(path)


def run_ray(out: Path, run_ids: Sequence[str], threads: int, gpus_per_run: float = 0.0,
            retries: int = 3) -> Iterator[Tuple[str, int, str]]:
    """One Ray task per run on the cluster of RAY_ADDRESS (or a local Ray instance)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get('RAY_ADDRESS'), include_dashboard=False, log_to_driver=False)
    if not ray.cluster_resources().get('GPU'):
        gpus_per_run = 0.0  # a CPU cluster (or this machine): runs on CPUs
    task = ray.remote(num_cpus=threads, num_gpus=gpus_per_run, max_retries=retries)(_ray_run)
    refs = {task.remote(str(out), run_id, threads): run_id for run_id in run_ids}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        run_id = refs.pop(done[0])
        try:
            code, tail = ray.get(done[0])
        except Exception as error:  # noqa: BLE001  (a task lost after its retries: the run's error)
            code, tail = -1, f'Ray task failed: {type(error).__name__}: {" ".join(str(error).split())[:300]}'
        yield run_id, code, tail
