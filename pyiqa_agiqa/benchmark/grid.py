"""The benchmark's grid: option files x split indices, every file checked before the first run.

Each (option file, split) is one :class:`Run`: the plugin's training loop on that split, its
experiment folder ``DIR/experiments/NAME_SplitNN`` (``NN`` = ``split_index``, from 1, as ``train-nsplits``), its
option file ``DIR/options/NAME_SplitNN.yml`` (the user's file with ``name`` and
``split_index`` set, relative data paths made absolute so that every worker and node reads the
same files).
"""

from __future__ import annotations

import os
import re
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from ..data.agiqa_dataset import resolve_meta_info_file
from ..data.tables import read_meta_info
from ..errors import OptionError
from ..export.experiment import dataset_key
from ..training.nsplits import split_run_name
from ..training.option_check import check_option_file, check_options
from ..training.pipeline import PYIQA_REQUIRED_KEYS

OPTIONS_DIR = 'options'


@dataclass(frozen=True)
class Run:
    """One training run of the grid."""

    run_id: str            # NAME_SplitNN: the experiment folder's name
    name: str              # the option file's ``name``
    option_file: str       # the user's option file (absolute path)
    split: int             # split index, 1-based (``split_index``)
    method: str            # network type (IPCE, CIANet, CLIPAGIQA, DCMPL)
    dataset: str           # dataset key (agiqa3k, ...) or the train block's name
    scheme: str            # split_scheme
    targets: Dict[str, str] = field(hash=False)  # network output -> label column
    epochs: str = ''       # total epochs (or iterations) as the option file gives them
    n_epochs: Optional[int] = None  # the epochs as a number (None: the file counts iterations)
    images: Dict[str, int] = field(default_factory=dict, hash=False)  # rows per part of the split
    select_block: str = ''  # the datasets block whose key metric selects net_best
    test_block: str = ''    # the datasets block whose predictions give the figures

    @property
    def selected_on_test(self) -> bool:
        """True when no val part exists: the checkpoint is then chosen on the test part."""
        return self.select_block == self.test_block


def read_option_file(path: str) -> dict:
    """The option file as a dict (YAML tags are refused: the file is data)."""
    if not os.path.isfile(path):
        raise OptionError(f"option file not found: '{path}'")
    try:
        opt = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise OptionError(f"option file '{path}' is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(opt, dict):
        raise OptionError(f"option file '{path}' must be a mapping of options")
    return opt


def _eval_blocks(opt: dict) -> List[str]:
    return [key for key in opt['datasets'] if key != 'train']


def selection_and_test(opt: dict) -> tuple:
    """(the block checkpoints are selected on, the block whose predictions are the figures):
    selection as AGIQAModel does it (``val.select_on`` or the first validation block), the
    test part the last other block (``override_phase: test``), else the selection block."""
    blocks = _eval_blocks(opt)
    if not blocks:
        raise OptionError('datasets needs a validation block (val or val_*) to select a checkpoint and test on')
    select_on = (opt.get('val') or {}).get('select_on')
    named = [k for k in blocks if opt['datasets'][k].get('name') == select_on]
    select = named[0] if named else blocks[0]
    others = [k for k in blocks if k != select]
    tests = [k for k in others if opt['datasets'][k].get('override_phase') == 'test'] or others
    return select, (tests[-1] if tests else select)


def _meta_info(opt: dict):
    block = opt['datasets']['train']
    path = resolve_meta_info_file(block.get('meta_info_file'))
    return read_meta_info(path)


def scheme_splits(opt: dict, meta=None) -> List[int]:
    """The split indices (1-based) the option file's scheme has in its meta-info."""
    meta = _meta_info(opt) if meta is None else meta
    scheme = opt['datasets']['train'].get('split_scheme', 'default')
    pattern = re.compile(rf'^{re.escape(str(scheme))}_split_(\d+)$')
    return sorted(int(m.group(1)) for m in map(pattern.match, meta.columns) if m)


def epoch_count(opt: dict) -> Optional[int]:
    """The run's epochs (``train.total_epoch`` or the sum of its stages), None when the option
    file counts iterations (``total_iter``) instead."""
    train = opt.get('train') or {}
    if train.get('total_epoch') is not None:
        return int(train['total_epoch'])
    if train.get('stages'):
        return sum(int(s.get('epochs', 0)) for s in train['stages'])
    return None


def _epochs(opt: dict) -> str:
    count = epoch_count(opt)
    return f'{count} epochs' if count is not None else f"{int(float(opt['train'].get('total_iter', 0)))} iterations"


def _images(opt: dict, meta, split: int) -> Dict[str, int]:
    scheme = opt['datasets']['train'].get('split_scheme', 'default')
    parts = meta[f'{scheme}_split_{split:02d}'].astype(str).str.strip()
    return {part: int((parts == part).sum()) for part in ('train', 'val', 'test')}


def _absolute(value, base: Path):
    """A relative path that exists under ``base`` made absolute; anything else unchanged."""
    if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
        candidate = base / value
        if candidate.exists():
            return str(candidate.resolve())
    return value


def _dataset_name(train: dict) -> str:
    """The package's dataset key (agiqa3k, ...), else the train block's name without ``_train``."""
    return dataset_key(train.get('meta_info_file')) or re.sub(r'_train$', '', str(train.get('name', 'dataset')))


def run_options(opt: dict, run: Run, base: Path) -> dict:
    """The option dict of one run (what ``DIR/options/RUN.yml`` holds)."""
    out = deepcopy(opt)
    out['name'] = run.run_id
    out.pop('save_final_results_path', None)
    for block in out['datasets'].values():
        block['split_index'] = run.split
        for key in ('meta_info_file', 'dataroot_target'):
            block[key] = _absolute(block.get(key), base)
    return out


def _check_file(path: str, opt: dict, images: bool) -> None:
    missing = [k for k in PYIQA_REQUIRED_KEYS if k not in opt]
    if missing:
        raise OptionError(f'lacks the top-level key(s) {missing}')
    check_option_file(opt)  # the name becomes experiments/NAME_SplitNN, options/, weights/, best/NAME, plots
    check_options(opt)
    for phase, block in opt['datasets'].items():
        root = block.get('dataroot_target')
        if images and root is not None and not os.path.isdir(os.path.expanduser(str(root))):
            raise OptionError(f"datasets.{phase}.dataroot_target '{root}' is not a folder: put the dataset's images "
                              'there (pyiqa-agiqa prepare, see docs/datasets.md) or point dataroot_target at them')


def plan_runs(option_files: Sequence[str], splits: Optional[Sequence[int]] = None, images: bool = True) -> List[Run]:
    """Every (option file, split) run; raises OptionError naming the file for the first file
    that is not valid (unknown key, missing data, a split its scheme does not have).
    ``images=False`` (``--plan``) needs the meta-info only, not the image folders."""
    runs, names = [], {}
    for path in option_files:
        path = os.path.abspath(path)
        opt = read_option_file(path)
        try:
            _check_file(path, opt, images)
            meta = _meta_info(opt)
            available = scheme_splits(opt, meta)
            select, test = selection_and_test(opt)
        except (OptionError, FileNotFoundError) as error:
            raise OptionError(f"{path}: {' '.join(str(error).split())}") from None
        scheme = opt['datasets']['train'].get('split_scheme', 'default')
        wanted = list(splits) if splits else available
        absent = [s for s in wanted if s not in available]
        if absent:
            raise OptionError(f"{path}: split scheme '{scheme}' has no split(s) {absent} (it has {available}); "
                              'choose --splits among them')
        if opt['name'] in names:
            raise OptionError(f"{path} and {names[opt['name']]} have the same name '{opt['name']}': their runs "
                              'would share experiment folders; give each option file its own name')
        names[opt['name']] = path
        train = opt['datasets']['train']
        targets = dict(opt.get('targets') or {'score': 'mos_quality'})
        for split in wanted:
            runs.append(Run(
                run_id=split_run_name(opt['name'], split), name=opt['name'], option_file=path, split=split,
                method=opt['network']['type'], dataset=_dataset_name(train),
                scheme=str(scheme), targets=targets, epochs=_epochs(opt), n_epochs=epoch_count(opt),
                images=_images(opt, meta, split),
                select_block=select, test_block=test))
    return runs


def write_run_options(out: Path, runs: Sequence[Run], base: Optional[Path] = None) -> None:
    """Write ``DIR/options/RUN.yml`` for every run. A file already there (an earlier,
    possibly finished, benchmark in DIR) must hold the same options: a finished run is
    never silently reused for changed options."""
    base = Path(base or os.getcwd())
    folder = out / OPTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for run in runs:
        options = run_options(read_option_file(run.option_file), run, base)
        path = folder / f'{run.run_id}.yml'
        if path.is_file():
            if yaml.safe_load(path.read_text()) != options:
                raise OptionError(f'{path} was written by an earlier benchmark in {out} from other options than '
                                  f'{run.option_file} gives now: use another --out (or delete that run\'s files '
                                  'to train it again)')
            continue
        path.write_text(yaml.safe_dump(options, sort_keys=False))


def run_options_path(out: Path, run_id: str) -> Path:
    return Path(out) / OPTIONS_DIR / f'{run_id}.yml'


def format_plan(runs: Sequence[Run]) -> str:
    """The grid as a table: one line per run, then the totals."""
    lines = [f'{len(runs)} runs', 'run\tmethod\tdataset\tsplit\tepochs\ttrain/val/test images\tselected on\ttest part']
    for r in runs:
        images = '/'.join(str(r.images.get(p, 0)) for p in ('train', 'val', 'test'))
        lines.append(f'{r.run_id}\t{r.method}\t{r.dataset}\t{r.scheme} {r.split}\t{r.epochs}\t{images}\t'
                     f"{r.select_block}{' (the test part: no val block)' if r.selected_on_test else ''}\t"
                     f'{r.test_block}')
    total = sum(r.images.get('train', 0) for r in runs)
    passes = sum(r.images.get('train', 0) * r.n_epochs for r in runs if r.n_epochs is not None)
    lines.append(f'total: {len(runs)} runs, {total} training images over all runs, {passes} training image passes '
                 '(images x epochs; early stopping can end a run sooner)')
    return '\n'.join(lines)
