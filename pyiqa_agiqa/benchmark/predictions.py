"""A run's test predictions (``DIR/predictions/RUN.csv``) and the figures computed from them.

One row per (image, target): ``image`` (the meta-info name, relative to ``dataroot_target``),
``prompt``, ``target`` (the network output), ``label`` (its MOS column), ``mos`` (the label on
the scale the run trained on, after ``mos_divisor``), ``prediction``. Numbers are written with
every digit (they read back to the same float64), text cells made spreadsheet-safe as the
scorer's (a prompt is untrusted text). SRCC / PLCC / KRCC are scipy's Spearman, Pearson and
Kendall (tau-b) coefficients, the functions pyiqa's ``calculate_srcc`` / ``calculate_plcc``
(no logistic fitting) / ``calculate_krcc`` call, on these values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd
from scipy import stats

from ..scoring.output import from_spreadsheet_safe, spreadsheet_safe
from ..weights.io import atomic_write

PREDICTIONS_DIR = 'predictions'
COLUMNS = ['image', 'prompt', 'target', 'label', 'mos', 'prediction']


def predictions_path(out: Path, run_id: str) -> Path:
    return Path(out) / PREDICTIONS_DIR / f'{run_id}.csv'


def write_predictions(path: Path, dataset, block: dict, targets: Dict[str, str], preds: dict, gts: dict) -> None:
    """Write the predictions of ``dataset`` (an AGIQADataset, in its order) atomically."""
    root = os.path.expanduser(str(block.get('dataroot_target', '')))
    items = dataset.paths_mos
    rows = []
    for output, label in targets.items():
        if len(preds[output]) != len(items):
            raise ValueError(f'{len(preds[output])} predictions for {len(items)} images of {block.get("name")}')
        for item, mos, pred in zip(items, gts[output], preds[output]):
            rows.append(dict(image=spreadsheet_safe(os.path.relpath(item['img_path'], root)),
                             prompt=spreadsheet_safe(item['prompt']), target=output, label=label,
                             mos=float(mos), prediction=float(pred)))
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def read_predictions(path: Path) -> pd.DataFrame:
    """The predictions file as written, with the original text of every cell."""
    text = {'image': str, 'prompt': str, 'target': str, 'label': str}
    table = pd.read_csv(path, keep_default_na=False, dtype=text)
    for column in ('image', 'prompt'):
        table[column] = table[column].map(from_spreadsheet_safe)
    return table


def correlations(mos: np.ndarray, prediction: np.ndarray) -> dict:
    """{'srcc', 'plcc', 'krcc', 'n'} of one target (NaN where a side is constant)."""
    mos, prediction = np.asarray(mos, np.float64), np.asarray(prediction, np.float64)
    if len(mos) < 2 or np.ptp(mos) == 0 or np.ptp(prediction) == 0:
        nan = float('nan')
        return dict(srcc=nan, plcc=nan, krcc=nan, n=len(mos))
    return dict(srcc=float(stats.spearmanr(prediction, mos)[0]), plcc=float(stats.pearsonr(prediction, mos)[0]),
                krcc=float(stats.kendalltau(prediction, mos)[0]), n=len(mos))


def figures(path: Path) -> Dict[str, dict]:
    """{target: correlations} of a predictions file."""
    table = read_predictions(path)
    return {target: correlations(part['mos'].to_numpy(), part['prediction'].to_numpy())
            for target, part in table.groupby('target', sort=False)}
