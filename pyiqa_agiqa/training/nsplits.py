"""``pyiqa-agiqa train-nsplits``: one training per split, then a mean / std table.

As pyiqa's ``train_nsplits``: every split of ``split_num`` trains with its ``split_index`` in
every dataset block, and the table goes to ``save_final_results_path``. Differences: splits are
numbered from 1 everywhere, as ``split_index`` (split 1 trains as experiment ``NAME_Split01``
and is row ``01`` of the table; pyiqa's script names it ``NAME_Split00``); a failing split
(non-finite loss, no valid checkpoint, ...) does not end the others; the table names it and
averages only the splits that finished, saying how many; a non-finite figure is never averaged
in; the command then exits with status 1 (``RunsFailedError``). With ``--auto_resume``
finished splits are read back from their final state and unfinished ones continue where they
stopped.
"""

from __future__ import annotations

import math
import os
from copy import deepcopy
from typing import Dict, List, Optional

import numpy as np

import sys

from ..errors import OptionError, RunsFailedError, TrainingError
from . import distributed
from .pipeline import TrainingRun, load_options


def split_run_name(name: str, split: int) -> str:
    """The experiment name of split ``split`` (``split_index``, from 1) of the runs named ``name``."""
    return f'{name}_Split{split:02d}'


def split_options(opt: dict, split: int, root_path: str) -> dict:
    """The options of split ``split`` (``split_index``, from 1)."""
    from pyiqa.utils.options import make_paths

    options = deepcopy(opt)
    options['name'] = split_run_name(opt['name'], split)
    make_paths(options, root_path)
    for block in options['datasets'].values():
        block['split_index'] = split
    return options


def format_table(results: Dict[int, dict], failures: Dict[int, str], n_splits: int) -> str:
    """The result table: one line per dataset and split, then mean / std per dataset over the
    finished splits (non-finite figures left out and named)."""
    finished = sorted(results)
    lines = []
    if finished:
        datasets = list(results[finished[0]])
        metrics = list(results[finished[0]][datasets[0]])
        lines.append('Val Datasets\tSplits\t{}\tselected at iter'.format('\t'.join(metrics)))
        for ds in datasets:
            table = {m: [] for m in metrics}
            for i in finished:
                row = results[i][ds]
                lines.append(f'{ds}\t{i:02d}\t' + '\t'.join(f"{row[m]['val']:.6f}" for m in metrics)
                             + f"\t@{row[metrics[0]]['iter']:05d}")
                for m in metrics:
                    table[m].append((i, row[m]['val']))
            summary, left_out = [], []
            for m in metrics:
                values = [v for _, v in table[m] if math.isfinite(v)]
                left_out += [f'{m} of split {i:02d}' for i, v in table[m] if not math.isfinite(v)]
                summary.append(f'{m} {np.mean(values):.6f} ± {np.std(values):.6f}' if values else f'{m} n/a')
            lines.append(f'Overall results in {ds} (mean ± std over {len(finished)} of {n_splits} splits): '
                         + ', '.join(summary))
            if left_out:
                lines.append(f'  non-finite, left out of the mean: {", ".join(left_out)}')
    for i, message in sorted(failures.items()):
        lines.append(f'split {i:02d} FAILED (not in the means): {message}')
    return '\n'.join(lines) + '\n'


def run_nsplits(argv: List[str], root_path: Optional[str] = None) -> Dict[int, dict]:
    """Train every split of ``split_num``; returns {split: best-metric table}. Raises
    RunsFailedError (a TrainingError) after writing the table if any split failed."""
    root = os.path.abspath(root_path or os.getcwd())
    opt, opt_file = load_options(argv, root, 'train-nsplits')
    n_splits = opt.get('split_num')
    if not isinstance(n_splits, int) or n_splits < 1:
        raise OptionError(f"train-nsplits needs split_num (a positive int) in the option file, got {n_splits!r}")
    save_path = os.path.abspath(opt.get('save_final_results_path')
                                or os.path.join(root, 'experiments', f"{opt['name']}_{n_splits}splits.txt"))
    results, failures = {}, {}
    for i in range(1, n_splits + 1):
        try:
            results[i] = TrainingRun(split_options(opt, i, root), opt_file).run()
        except TrainingError as error:
            failures[i] = str(error)
            print(f'error: split {i:02d}: {error}', file=sys.stderr, flush=True)
    if distributed.rank() == 0:
        os.makedirs(os.path.dirname(save_path), exist_ok=True)
        with open(save_path, 'w') as handle:
            handle.write(format_table(results, failures, n_splits))
        print(f'results of {len(results)} of {n_splits} splits written to {save_path}', file=sys.stderr,
              flush=True)
    if failures:
        failed = ', '.join(f'{i:02d}' for i in failures)
        raise RunsFailedError(f'{len(failures)} of {n_splits} splits failed ({failed}); {save_path} averages '
                              f'the other {len(results)} and names the failures')
    return results
