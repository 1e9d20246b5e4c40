"""Checks of a whole option file before anything is built or trained.

pyiqa ignores unknown keys and reports a misspelled metric only at the first validation,
after training time is spent. :func:`check_options` reads every section (top level,
``network``, ``datasets`` with their ``views`` and ``augment``, ``train`` with its losses
and stages, ``val`` with its metrics, ``key_metric`` and ``select_on``, ``logger``,
``path``) and raises :class:`~pyiqa_agiqa.errors.OptionError` naming the key, the section
and the known keys (with a "did you mean" when one is close). Numbers that cannot train
(``total_epoch: -1``, ``batch_size_per_gpu: 0``, ``lr: .nan``, a zero ``print_freq`` ...)
are refused too, naming the key and its section.

The run's ``name`` becomes the folder ``experiments/NAME`` (and ``tb_logger/NAME``), which
pyiqa renames away when it exists: :func:`check_run_name` admits one folder name only, so
that no option file reaches a folder outside ``experiments/``. :func:`check_option_file`
checks what only the file itself shows, before pyiqa's parser reads it (the name's type,
``manual_seed``, ``num_gpu``, and the ``path`` keys that the parser sets itself).
"""

from __future__ import annotations

import difflib
import math
from typing import List, Optional

from ..archs import network_class
from ..errors import OptionError
from ..options import check_constructor_options, check_keys, registry_entry

TOP_LEVEL_KEYS = {
    # pyiqa's own
    'name', 'model_type', 'num_gpu', 'manual_seed', 'datasets', 'network', 'path', 'train', 'val', 'logger',
    'dist_params', 'find_unused_parameters', 'scale', 'split_num', 'save_final_results_path',
    # the plugin's
    'targets', 'deterministic',
}
PARSER_KEYS = {'dist', 'rank', 'world_size', 'auto_resume', 'is_train', 'root_path'}  # set by pyiqa's parser
TRAIN_KEYS = {'optim', 'scheduler', 'total_iter', 'total_epoch', 'warmup_iter', 'losses', 'mos_loss_opt',
              'metric_loss_opt', 'use_ref', 'stages', 'nonfinite_skip', 'precision'}
VAL_KEYS = {'val_freq', 'val_epochs', 'save_img', 'pbar', 'key_metric', 'metrics', 'select_on'}
LOGGER_KEYS = {'print_freq', 'save_checkpoint_freq', 'save_latest_freq', 'use_tb_logger', 'wandb', 'log_imgs_freq',
               'save_state_epochs', 'keep_states', 'save_format'}
PATH_KEYS = {'pretrain_network', 'strict_load', 'param_key_g', 'resume_state', 'experiments_root', 'models',
             'training_states', 'log', 'visualization', 'results_root'}
DIST_PARAM_KEYS = {'backend', 'port', 'timeout_s'}
SAVE_FORMATS = ('pth', 'safetensors')
# path keys pyiqa's parser sets from the root folder and the name (a value in the file would be
# silently replaced, or, for results_root, created wherever it points)
PARSER_PATH_KEYS = ('experiments_root', 'models', 'training_states', 'log', 'visualization', 'results_root')
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')  # pyiqa's own, besides torch's


def check_run_name(name, where: str = 'name') -> None:
    """A run name is one folder name: it becomes ``experiments/NAME``, which pyiqa renames to
    ``NAME_archived_<time>`` when it exists, so a name with a separator, ``.`` / ``..``, an
    absolute path or an empty one would move or write folders outside ``experiments/``."""
    if not isinstance(name, str):
        raise OptionError(f'{where} must be a text (the run\'s folder name under experiments/), got {name!r}: '
                          f"quote it, e.g. name: '{name}'")
    bad = ('it is empty' if not name.strip() else
           'it holds a NUL character' if '\0' in name else
           "it holds a path separator ('/' or '\\')" if '/' in name or '\\' in name else
           f"'{name}' is not a folder name" if name in ('.', '..') else '')
    if bad:
        safe = '_'.join(part for part in name.replace('\\', '/').replace('\0', '').split('/')
                        if part not in ('', '.', '..')) or 'my_run'
        raise OptionError(f'{where} {name!r} is not a run name: {bad}. The name becomes the folder '
                          f"experiments/NAME, so it must be one folder name (no '/' or '\\', not '.' or '..', not "
                          f"empty); e.g. name: {safe} (pyiqa-agiqa train --root DIR puts experiments/ under DIR)")


def _describe(integer: bool, low, low_open: bool, high, high_open: bool) -> str:
    kind = 'a whole number' if integer else 'a finite number'
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    return f"{kind} {' and '.join(bounds)}".strip()


def check_number(value, where: str, meaning: str = '', integer: bool = False, low=None, low_open: bool = False,
                 high=None, high_open: bool = False) -> None:
    """``value`` must be a finite int / float (integral with ``integer``) within the bounds,
    else an OptionError naming ``where`` (``section.key``) and what the key means."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        what = f' ({meaning})' if meaning else ''
        raise OptionError(f'{where} must be {_describe(integer, low, low_open, high, high_open)}{what}, '
                          f'got {value!r}')


def _finite_numbers(section: dict, where: str) -> None:
    """Every number of ``section`` (and of its lists) must be finite."""
    for key, value in section.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                raise OptionError(f'{where}.{key} must be finite, got {value!r}')


def check_optimizer(optim: dict, where: str) -> None:
    """A torch.optim type, a learning rate > 0 (``lr`` and pyiqa's ``lr_<module>``), weight
    decays >= 0, ``betas`` in [0, 1), ``eps`` > 0, ``momentum`` >= 0; every number finite."""
    import torch

    kind = optim.get('type')
    classes = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
               and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer']
    if kind not in classes:
        close = difflib.get_close_matches(str(kind), classes, n=3, cutoff=0.6)
        hint = f'; did you mean {close}?' if close else f'; one of torch.optim\'s: {sorted(classes)}'
        raise OptionError(f"{where}.type: unknown optimizer {kind!r}{hint}")
    check_constructor_options(getattr(torch.optim, kind),
                              {k: v for k, v in optim.items() if not k.startswith(('lr_', 'weight_decay_'))}, where,
                              skip=('type',))
    for key, value in optim.items():
        if key == 'lr' or key.startswith('lr_'):
            check_number(value, f'{where}.{key}', 'the learning rate', low=0, low_open=True)
        elif key.startswith('weight_decay'):
            check_number(value, f'{where}.{key}', 'the weight decay', low=0)
        elif key == 'eps':
            check_number(value, f'{where}.{key}', low=0, low_open=True)
        elif key in ('momentum', 'dampening'):
            check_number(value, f'{where}.{key}', low=0)
        elif key == 'betas':
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise OptionError(f'{where}.betas must be two numbers in [0, 1), e.g. [0.9, 0.999], got {value!r}')
            for i, beta in enumerate(value):
                check_number(beta, f'{where}.betas[{i}]', low=0, high=1, high_open=True)
    if 'lr' not in optim and not any(k.startswith('lr_') for k in optim):
        raise OptionError(f'{where} needs lr (the learning rate, a number > 0)')
    _finite_numbers(optim, where)


def check_scheduler(scheduler: dict, where: str) -> None:
    """One of pyiqa's schedulers or torch.optim.lr_scheduler's; every number finite, ``gamma``
    > 0, ``T_max`` / ``step_size`` whole numbers >= 1, ``eta_min`` >= 0."""
    import torch

    kind = scheduler.get('type')
    module = torch.optim.lr_scheduler
    known = list(SCHEDULERS) + [n for n in dir(module) if isinstance(getattr(module, n), type)
                                and issubclass(getattr(module, n), module.LRScheduler) and not n.startswith('_')
                                and n != 'LRScheduler']
    if kind not in known:
        close = difflib.get_close_matches(str(kind), known, n=3, cutoff=0.6)
        hint = f'; did you mean {close}?' if close else f'; one of {sorted(set(known))}'
        raise OptionError(f'{where}.type: unknown scheduler {kind!r}{hint}')
    for key in ('gamma', 'max_lr'):
        if key in scheduler:
            check_number(scheduler[key], f'{where}.{key}', low=0, low_open=True)
    for key in ('T_max', 'step_size', 'T_0'):
        if key in scheduler:
            check_number(scheduler[key], f'{where}.{key}', integer=True, low=1)
    if 'eta_min' in scheduler:
        check_number(scheduler['eta_min'], f'{where}.eta_min', 'the lowest learning rate', low=0)
    _finite_numbers(scheduler, where)


def check_option_file(raw: dict, path: Optional[str] = None) -> None:
    """What only the option file shows, before pyiqa's parser reads it: the run name (its
    type too: pyiqa joins it into paths), ``manual_seed`` and ``num_gpu`` (used by the parser),
    and the ``path`` keys the parser sets itself from ``--root`` and the name."""
    check_run_name(raw.get('name'))
    seed = raw.get('manual_seed')
    if seed is not None:
        check_number(seed, 'manual_seed', 'the random seed', integer=True, low=0, high=2**31 - 1)
    gpus = raw.get('num_gpu')
    if gpus != 'auto':
        check_number(gpus, 'num_gpu', "GPUs to use; 'auto': the GPUs there are", integer=True, low=0)
    paths = raw.get('path') or {}
    if isinstance(paths, dict):
        given = [k for k in PARSER_PATH_KEYS if paths.get(k) is not None]
        if given:
            raise OptionError(f'path.{given[0]} cannot be set in an option file: a run\'s folders are '
                              'ROOT/experiments/NAME (with models/, training_states/ ...), set from the name and '
                              f'--root (pyiqa would ignore path.{given[0]}, or create it wherever it points); drop '
                              f'it and give pyiqa-agiqa train --root DIR')


def target_names(opt: dict, cls) -> List[str]:
    """The outputs trained / validated: keys of ``targets`` or the network's first output."""
    outputs = tuple(getattr(cls, 'output_names', ('score',)))
    targets = opt.get('targets') or {outputs[0]: 'mos_quality'}
    if not isinstance(targets, dict):
        raise OptionError('targets must map network outputs to label columns, e.g. {score: mos_quality}')
    unknown = [t for t in targets if t not in outputs]
    if unknown:
        raise OptionError(f'targets name outputs {unknown} that {cls.__name__} does not have '
                          f'(its outputs: {list(outputs)})')
    return list(targets)


def metric_names(val_opt: dict, targets: List[str]) -> List[str]:
    """Names of the validation figures the model computes (see AGIQAModel.compute_metrics)."""
    metrics = val_opt.get('metrics') or {}
    many = len(targets) > 1
    names = [f'{t}_{m}' if many else m for t in targets for m in metrics]
    if many:
        names += [f'mean_{m}' for m in metrics]
    types = {o.get('type') for o in metrics.values() if isinstance(o, dict)}
    if {'calculate_srcc', 'calculate_plcc'} <= types:
        names.append('srcc_plcc')
    return names


def check_val(opt: dict, targets: List[str]) -> None:
    from pyiqa.metrics import METRIC_REGISTRY

    val = opt.get('val')
    if val is None:
        return
    check_keys(val, VAL_KEYS, 'val')
    metrics = val.get('metrics')
    if not isinstance(metrics, dict) or not metrics:
        raise OptionError('val.metrics must name at least one metric, e.g. {srcc: {type: calculate_srcc}}')
    for name, metric in metrics.items():
        where = f'val.metrics.{name}'
        if not isinstance(metric, dict) or 'type' not in metric:
            raise OptionError(f"{where} needs a 'type' such as calculate_srcc")
        check_constructor_options(registry_entry(METRIC_REGISTRY, metric['type'], 'metric type', where),
                                  {k: v for k, v in metric.items()}, where, skip=('type', 'x', 'y'))
    names = metric_names(val, targets)
    key = val.get('key_metric')
    if key is not None and key not in names:
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise OptionError(f"val.key_metric '{key}' is not one of the computed figures {names}{hint}")
    freq, epochs = val.get('val_freq'), val.get('val_epochs')
    if freq is None and epochs is None:
        raise OptionError('val needs val_freq (validate every N iterations) or val_epochs (every N epochs)')
    if freq is not None:
        check_number(freq, 'val.val_freq', 'validate every N iterations', integer=True, low=1)
    if epochs is not None:
        check_number(epochs, 'val.val_epochs', 'validate every N epochs', integer=True, low=1)
    select_on = val.get('select_on')
    val_names = [b.get('name') for p, b in (opt.get('datasets') or {}).items() if str(p).startswith('val')]
    if select_on is not None and select_on not in val_names:
        raise OptionError(f"val.select_on '{select_on}' is not the name of a val dataset block ({val_names})")


def check_train(opt: dict, targets: List[str]) -> None:
    from pyiqa.losses import LOSS_REGISTRY

    from .stages import parse_stages

    train = opt.get('train')
    if not isinstance(train, dict):
        raise OptionError('a training option file needs a train section (optim, scheduler, losses, total_epoch ...)')
    check_keys(train, TRAIN_KEYS, 'train')
    losses = dict(train.get('losses') or {})
    if losses:
        missing, extra = [t for t in targets if t not in losses], [t for t in losses if t not in targets]
        if missing or extra:
            raise OptionError(f'train.losses must name exactly the target outputs {targets}; missing {missing}, '
                              f'not a target {extra}')
    elif not train.get('mos_loss_opt'):
        raise OptionError('train needs losses (one per target output) or mos_loss_opt')
    named = [(f'train.losses.{k}', v) for k, v in losses.items()]
    named += [(f'train.{k}', train[k]) for k in ('mos_loss_opt', 'metric_loss_opt') if train.get(k)]
    for where, loss in named:
        if not isinstance(loss, dict) or 'type' not in loss:
            raise OptionError(f"{where} needs a 'type' (a pyiqa loss such as L1Loss)")
        check_constructor_options(registry_entry(LOSS_REGISTRY, loss['type'], 'loss', where), loss, where)
        if 'loss_weight' in loss:
            check_number(loss['loss_weight'], f'{where}.loss_weight', low=0)
        _finite_numbers(loss, where)
    check_length(train)
    if train.get('stages'):
        try:
            stages = parse_stages(train, targets)
        except ValueError as error:
            raise OptionError(str(error)) from None
        for i, (given, stage) in enumerate(zip(train['stages'], stages)):
            check_optimizer(stage['optim'], f'train.stages[{i}].optim')
            if given.get('scheduler'):
                check_scheduler(stage['scheduler'], f'train.stages[{i}].scheduler')
    else:
        for key in ('optim', 'scheduler'):
            if not isinstance(train.get(key), dict) or 'type' not in train[key]:
                raise OptionError(f"train.{key} needs a 'type' (or give train.stages)")
        check_optimizer(train['optim'], 'train.optim')
        check_scheduler(train['scheduler'], 'train.scheduler')
    from ..archs.backbone.precision import DTYPES
    if train.get('precision', 'fp32') not in DTYPES:
        raise OptionError(f"train.precision must be one of {list(DTYPES)} (fp32: the reference; bf16 / fp16: "
                          f"autocast with fp32 weights), got {train.get('precision')!r}")
    if (opt.get('network') or {}).get('precision', 'fp32') != 'fp32':
        raise OptionError('network.precision casts the weights (for scoring); to train in low precision set '
                          'train.precision: bf16 (or fp16), which keeps fp32 weights and uses autocast')
    skip = train.get('nonfinite_skip', 0)
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise OptionError(f'train.nonfinite_skip must be an int >= 0 (steps with a non-finite loss that may be '
                          f'skipped before the run stops), got {skip!r}')


def check_length(train: dict) -> None:
    """``total_epoch`` / ``total_iter``: at least one whole epoch or iteration to train, and
    ``warmup_iter`` -1 (none) or a count."""
    epochs, iters = train.get('total_epoch'), train.get('total_iter')
    if epochs is None and iters is None:
        raise OptionError('train needs total_epoch (epochs to train) or total_iter (iterations to train)')
    if epochs is not None:
        check_number(epochs, 'train.total_epoch', 'the epochs to train', integer=True, low=1)
    else:
        check_number(iters, 'train.total_iter', 'the iterations to train', integer=True, low=1)
    if train.get('warmup_iter') is not None:
        check_number(train['warmup_iter'], 'train.warmup_iter', 'warm-up length; -1: none', integer=True, low=-1)


LOADER_NUMBERS = (  # (key, meaning, lowest value) of pyiqa's loader keys of a dataset block
    ('batch_size_per_gpu', 'images per batch and process', 1), ('num_worker_per_gpu', 'loader processes', 0),
    ('dataset_enlarge_ratio', 'times the dataset is repeated per epoch', 1),
    ('num_prefetch_queue', 'batches prefetched', 1))


def check_loader(block: dict, where: str, train: bool) -> None:
    """pyiqa's loader keys of one dataset block (``batch_size_per_gpu`` is needed for training)."""
    if train and block.get('batch_size_per_gpu') is None:
        raise OptionError(f'{where} needs batch_size_per_gpu (images per batch and process, >= 1)')
    for key, meaning, low in LOADER_NUMBERS:
        if block.get(key) is not None:
            check_number(block[key], f'{where}.{key}', meaning, integer=True, low=low)
    mode = block.get('prefetch_mode')
    if train and mode not in (None, 'cpu', 'cuda'):
        raise OptionError(f"{where}.prefetch_mode must be cpu or cuda, got {mode!r}")
    if train and mode == 'cuda' and block.get('pin_memory') is not True:
        raise OptionError(f'{where}.prefetch_mode: cuda needs pin_memory: true')


def check_datasets(opt: dict, network_cls) -> None:
    from pyiqa.data import _lazy_import_dataset
    from pyiqa.utils.registry import DATASET_REGISTRY

    import pyiqa_agiqa.data  # noqa: F401  (registers AGIQADataset)

    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or 'train' not in datasets:
        raise OptionError('section datasets needs a train block (and val blocks named val, val_*)')
    for phase, block in datasets.items():
        where = f'datasets.{phase}'
        if phase != 'train' and not str(phase).startswith('val'):
            raise OptionError(f"{where}: dataset blocks are named train, val or val_<anything> (pyiqa's phases)")
        if not isinstance(block, dict) or 'type' not in block:
            raise OptionError(f"{where} needs a 'type' (e.g. AGIQADataset)")
        cls = registry_entry(DATASET_REGISTRY, block['type'], 'dataset type', f'{where}.type', _lazy_import_dataset)
        check = getattr(cls, 'check_options', None)
        if check is not None:
            check(block, where)
        check_loader(block, where, phase == 'train')
        if block.get('load_reference') and not getattr(network_cls, 'takes_reference', False) \
                and (opt.get('train') or {}).get('use_ref', True):
            raise OptionError(
                f'{where}.load_reference: true gives the network the source image of image-to-image data, but '
                f'{network_cls.__name__} takes no reference image (none of IPCE, CIANet, CLIPAGIQA, DCMPL does: '
                'the published methods read the text prompt only). Drop load_reference, or set train.use_ref: '
                'false to load the source images without giving them to the network.')


def check_logger(logger: Optional[dict]) -> None:
    """Frequencies of the log and the checkpoints: whole numbers >= 1 (``save_state_epochs``
    0: no state at epoch ends), ``keep_states`` >= 1."""
    check_keys(logger, LOGGER_KEYS, 'logger')
    logger = logger or {}
    for key, meaning, low in (('print_freq', 'log every N iterations', 1),
                              ('save_checkpoint_freq', 'a checkpoint and a state every N iterations', 1),
                              ('save_latest_freq', 'net_latest every N iterations', 1),
                              ('log_imgs_freq', 'images logged every N iterations', 1),
                              ('save_state_epochs', 'a state every N epochs; 0: none', 0),
                              ('keep_states', 'the newest states kept', 1)):
        if logger.get(key) is not None:
            check_number(logger[key], f'logger.{key}', meaning, integer=True, low=low)
    save_format = logger.get('save_format', 'pth')
    if save_format not in SAVE_FORMATS:
        raise OptionError(f'logger.save_format must be one of {list(SAVE_FORMATS)}, got {save_format!r}')


def check_options(opt: dict) -> None:
    """Raise OptionError for the first problem found in a training option dict."""
    check_keys({k: v for k, v in opt.items() if k not in PARSER_KEYS}, TOP_LEVEL_KEYS, 'top level')
    for key in ('name', 'model_type', 'network', 'datasets'):
        if key not in opt:
            raise OptionError(f"the option file lacks the top-level key '{key}'")
    check_run_name(opt['name'])
    cls = network_class(opt)
    check_constructor_options(cls, opt['network'], 'network')
    targets = target_names(opt, cls)
    check_datasets(opt, cls)
    check_train(opt, targets)
    check_val(opt, targets)
    check_logger(opt.get('logger'))
    check_keys(opt.get('path'), PATH_KEYS, 'path')
    check_keys(opt.get('dist_params'), DIST_PARAM_KEYS, 'dist_params')
