"""Training through pyiqa's own pipeline, with the plugin loaded and outputs kept under the
current directory (``python pyiqa/train.py`` would write them next to the pyiqa package).

``run_training(['-opt', 'options/ipce_agiqa3k.yml'])`` is ``pyiqa-agiqa train -opt ...``;
``run_nsplits`` is pyiqa's multi-split runner (``split_num`` splits, mean / std table).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import List, Optional

import pyiqa_agiqa.data  # noqa: F401  (registers the plugin before pyiqa builds anything)
import pyiqa_agiqa.models  # noqa: F401
import pyiqa_agiqa.archs  # noqa: F401
import pyiqa_agiqa.losses  # noqa: F401


@contextmanager
def _argv(argv: List[str]):
    saved = sys.argv
    sys.argv = ['pyiqa-agiqa'] + list(argv)
    try:
        yield
    finally:
        sys.argv = saved


def run_training(argv: List[str], root_path: Optional[str] = None):
    """pyiqa's ``train_pipeline`` with pyiqa's arguments (``-opt FILE``, ``--force_yml`` ...).

    Experiments go to ``root_path/experiments/<name>`` (default: the current directory).
    Returns pyiqa's best-metric table {dataset: {metric: {'val', 'iter'}}}.
    """
    from pyiqa.train import train_pipeline

    with _argv(argv):
        return train_pipeline(os.path.abspath(root_path or os.getcwd()))


def run_nsplits(argv: List[str], root_path: Optional[str] = None) -> None:
    """pyiqa's ``train_nsplits``: one training per split (``split_num``), then a result table
    at ``save_final_results_path``."""
    from pyiqa.train_nsplits import train_nsplits

    with _argv(argv):
        train_nsplits(os.path.abspath(root_path or os.getcwd()))
