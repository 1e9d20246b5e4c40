"""Resume states of a training run: what is in them, how they are written and found.

A state (``experiments/NAME/training_states/<iter>.state``) holds everything a run needs to
continue as if it had not stopped: the network and the val-selected ``net_best``, optimisers
and schedulers, the best validation results, the training stage, early-stop and
skipped-step counters, the epoch and the batches already done in it, and the RNG states of
every process. Only tensors, numbers, strings and containers: it loads with
``torch.load(weights_only=True)``; a state whose networks hold NaN or infinity is refused.

Files are written atomically (a kill leaves the previous complete file); the newest
``keep`` states are kept. :meth:`StateStore.latest` returns the newest state that loads; a
truncated or unreadable newer file is skipped with a warning naming it.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..weights.io import WeightsFormatError, atomic_write, check_finite, load_file

STATE_FORMAT = 'pyiqa_agiqa.training_state'
STATE_VERSION = 1
_STATE_NAME = re.compile(r'^(\d+)\.state$')


def capture_rng() -> dict:
    """RNG states of this process (Python, NumPy, torch CPU and CUDA) as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=_to_lists(random.getstate()), torch=torch.get_rng_state(),
                 numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                            has_gauss=int(has_gauss), cached=float(cached)))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(_to_tuples(state['python']))
    n = state['numpy']
    np.random.set_state((n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['cached']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


class StateStore:
    """The ``training_states`` folder of one experiment."""

    def __init__(self, folder, keep: int = 2):
        self.folder, self.keep = Path(folder), max(1, int(keep))

    def paths(self) -> List[Tuple[int, Path]]:
        """(iteration, path) of the state files, newest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _STATE_NAME.match(p.name))]
        return sorted(found, reverse=True)

    def save(self, state: dict, iteration: int) -> Path:
        """Write ``state`` as ``<iteration>.state`` and drop all but the newest ``keep`` states."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f'{iteration}.state'
        state = dict(state, format=STATE_FORMAT, version=STATE_VERSION)
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        for _, old in self.paths()[self.keep:]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, warn=print) -> Optional[Tuple[dict, Path]]:
        """The newest state that loads, with its path; None if there is none."""
        for _, path in self.paths():
            try:
                return load_state(path), path
            except (WeightsFormatError, KeyError) as error:
                warn(f'training state {path} cannot be used ({error}); trying the previous one')
        return None


def load_state(path) -> dict:
    """Read one state file (tensors only) and check that it is a plugin state."""
    state = load_file(path)
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
        raise WeightsFormatError(f"'{path}' is not a pyiqa-agiqa training state (written by another program?)")
    if state.get('version', 0) > STATE_VERSION:
        raise WeightsFormatError(f"'{path}' was written by a newer pyiqa-agiqa (state version {state['version']})")
    for key in ('net', 'net_best'):
        if isinstance(state.get(key), dict):
            check_finite(state[key], path, f' ({key})')
    return state


def resume_path(opt: dict) -> Optional[str]:
    """The state file named in the options (``path.resume_state``), absolute, or None."""
    value = (opt.get('path') or {}).get('resume_state')
    return os.path.abspath(os.path.expanduser(str(value))) if value else None
