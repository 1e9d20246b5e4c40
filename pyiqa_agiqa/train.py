"""Training entry points (kept for ``from pyiqa_agiqa.train import run_training``).

``run_training(['-opt', 'options/ipce_agiqa3k.yml'])`` is ``pyiqa-agiqa train -opt ...``;
``run_nsplits`` is ``pyiqa-agiqa train-nsplits`` (``split_num`` splits, mean / std table).
Both are implemented in :mod:`pyiqa_agiqa.training`.
"""

from .training.nsplits import run_nsplits
from .training.pipeline import run_training

__all__ = ['run_nsplits', 'run_training']
