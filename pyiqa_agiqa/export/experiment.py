"""``pyiqa-agiqa export``: a trained experiment -> an exported-weights folder (see weights/card.py).

What is read from ``experiments/NAME`` (written by ``pyiqa-agiqa train``): the option file
copied there, ``results.json`` (figures at the selected checkpoint, selection, the iterations
completed, versions) and ``models/net_best.{safetensors,pth}`` (the val-selected weights). A
run that completed no training iteration is refused (its net_best would be the untrained
network).

A multi-split run (``train-nsplits``: folders ``NAME_Split01`` ... next to each other) is
exported by giving ``experiments/NAME``: every split goes to ``DIR/split_NN`` (or only the
one named with ``split=N``; splits are numbered from 1, as ``split_index`` and the
folders), and every card carries the mean ± std table over the splits that finished.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml

from ..data.prepare import DATASETS
from ..errors import OptionError
from .folder import new_card, write_exported
from ..weights.io import load_state_dict

SPLIT_FOLDER = re.compile(r'^(?P<name>.+)_Split(?P<index>\d{2})$')


def _option_file(folder: Path) -> Path:
    candidates = sorted(folder.glob('*.yml'))
    if not candidates:
        raise OptionError(f'{folder} holds no option file (*.yml): is it an experiment folder of pyiqa-agiqa train?')
    named = [p for p in candidates if p.stem == folder.name or SPLIT_FOLDER.sub(r'\g<name>', folder.name) == p.stem]
    return (named or candidates)[0]


def _best_weights(folder: Path) -> Path:
    for name in ('net_best.safetensors', 'net_best.pth'):
        if (folder / 'models' / name).is_file():
            return folder / 'models' / name
    raise OptionError(f'{folder}/models holds no net_best (.safetensors or .pth): the run selected no checkpoint '
                      '(did it finish?)')


def dataset_key(meta_info_file) -> Optional[str]:
    """The package's key of a dataset (agiqa3k, ...) from its meta-info file's name, or None."""
    stem = Path(str(meta_info_file)).stem.lower().replace('-', '_')
    return next((k for k in DATASETS if k == stem or stem.startswith(k)), None)


def _data_licence(key: Optional[str]) -> str:
    if key is None:
        return 'unknown dataset: see its source'
    import importlib

    info = getattr(importlib.import_module(f'pyiqa_agiqa.data.prepare.{key}'), 'DATASET_INFO', {})
    return f"{info.get('title', key)}: {info.get('licence', 'see its source')}"


def check_trained(folder: Path, record: dict) -> None:
    """A run that completed no training iteration (``iterations`` of results.json 0), or whose
    net_best was selected at iteration 0 (the weights before training), has nothing trained to
    export: its network would pass as fine-tuned."""
    done, selected = record.get('iterations'), record.get('selected_iter')
    if done == 0 or selected == 0:
        why = ('the run completed no training iteration (results.json: iterations 0)' if done == 0 else
               'its net_best was selected at iteration 0, before any training step (results.json: selected_iter 0)')
        raise OptionError(f'{folder} holds no trained weights: {why}, so exporting it would pass untrained weights '
                          'as fine-tuned; train it (train.total_epoch or total_iter >= 1) and export again')


def experiment_card(folder: Path, splits: Optional[dict] = None) -> tuple:
    """(state dict, card) of one experiment folder."""
    record_path = folder / 'results.json'
    if not record_path.is_file():
        raise OptionError(f'{folder} has no results.json: the run did not finish (or was trained before '
                          'pyiqa-agiqa 0.1 wrote it); finish it with pyiqa-agiqa train --auto_resume')
    record = json.loads(record_path.read_text())
    check_trained(folder, record)
    option_path = _option_file(folder)
    opt = yaml.safe_load(option_path.read_text())
    train_block = opt['datasets']['train']
    key = dataset_key(train_block.get('meta_info_file'))
    arch = opt['network']['type']
    results = {ds: {m: v['val'] for m, v in metrics.items()} for ds, metrics in record['results'].items()}
    training = dict(experiment=folder.name, dataset=key or train_block.get('name'),
                    meta_info_file=str(train_block.get('meta_info_file')),
                    split_scheme=record.get('split', {}).get('scheme', train_block.get('split_scheme')),
                    split_index=record.get('split', {}).get('index', train_block.get('split_index')),
                    selected_on=record.get('selected_on'), key_metric=record.get('key_metric'),
                    selected_iter=record.get('selected_iter'), targets=opt.get('targets'),
                    option_file=option_path.read_text())
    card = new_card(arch, opt['network'], record.get('outputs') or list((opt.get('targets') or {'score': 0})),
                    source=f'exported from experiment {folder.name} (pyiqa-agiqa train)', training=training,
                    results=results, licences=dict(data=_data_licence(key)))
    card['versions'] = dict(record.get('versions') or card['versions'], exported_with=card['versions'])
    if splits:
        card['splits'] = splits
    return load_state_dict(_best_weights(folder)), card


def split_folders(experiment: Path) -> Dict[int, Path]:
    """{split_index (1-based): folder} of a multi-split run named by its prefix folder."""
    parent, name = experiment.parent, experiment.name
    found = {}
    for path in parent.glob(f'{name}_Split*'):
        match = SPLIT_FOLDER.match(path.name)
        if match and match.group('name') == name and path.is_dir():
            found[int(match.group('index'))] = path
    return dict(sorted(found.items()))


def splits_table(folders: Dict[int, Path]) -> dict:
    """{dataset: {metric: {'mean', 'std', 'n'}}} over the finished splits (finite values)."""
    table: Dict[str, Dict[str, List[float]]] = {}
    for folder in folders.values():
        path = folder / 'results.json'
        if not path.is_file():
            continue
        for ds, metrics in json.loads(path.read_text())['results'].items():
            for metric, value in metrics.items():
                if math.isfinite(value['val']):
                    table.setdefault(ds, {}).setdefault(metric, []).append(value['val'])
    return {ds: {m: dict(mean=float(np.mean(v)), std=float(np.std(v)), n=len(v)) for m, v in metrics.items()}
            for ds, metrics in table.items()}


def export_experiment(experiment, output, split: Optional[int] = None, overwrite: bool = False) -> List[Path]:
    """Export one experiment folder, or the splits of a multi-split run; returns the folders."""
    experiment, output = Path(experiment), Path(output)
    if (experiment / 'results.json').is_file() or (experiment / 'models').is_dir():
        if split is not None:
            prefix = SPLIT_FOLDER.sub(r'\g<name>', experiment.name)
            raise OptionError(f'{experiment} is a single run; --split applies to a multi-split prefix (e.g. {prefix})')
        state, card = experiment_card(experiment)
        return [write_exported(output, state, card, overwrite)]
    folders = split_folders(experiment)
    if not folders:
        raise OptionError(f"'{experiment}' is neither an experiment folder nor the prefix of a multi-split run "
                          f'({experiment}_Split01, ...)')
    table = splits_table(folders)
    if split is not None:
        if split not in folders:
            raise OptionError(f'split {split} of {experiment.name} not found; splits there: {list(folders)}')
        state, card = experiment_card(folders[split], table)
        return [write_exported(output, state, card, overwrite)]
    written = []
    for index, folder in folders.items():
        if not (folder / 'results.json').is_file():
            warnings.warn(f'split {index} ({folder.name}) did not finish (no results.json): not exported')
            continue
        state, card = experiment_card(folder, table)
        written.append(write_exported(output / f'split_{index:02d}', state, card, overwrite))
    return written
