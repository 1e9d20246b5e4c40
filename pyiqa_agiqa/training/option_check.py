"""Checks of a whole option file before anything is built or trained.

pyiqa ignores unknown keys and reports a misspelled metric only at the first validation,
after training time is spent. :func:`check_options` reads every section (top level,
``network``, ``datasets`` with their ``views`` and ``augment``, ``train`` with its losses
and stages, ``val`` with its metrics, ``key_metric`` and ``select_on``, ``logger``,
``path``) and raises :class:`~pyiqa_agiqa.errors.OptionError` naming the key, the section
and the known keys (with a "did you mean" when one is close).
"""

from __future__ import annotations

import difflib
from typing import List

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
    if freq is not None and (not isinstance(freq, (int, float)) or isinstance(freq, bool) or freq < 1):
        raise OptionError(f'val.val_freq must be a number of iterations >= 1, got {freq!r}')
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise OptionError(f'val.val_epochs must be a number of epochs >= 1, got {epochs!r}')
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
    if train.get('stages'):
        try:
            parse_stages(train, targets)
        except ValueError as error:
            raise OptionError(str(error)) from None
    else:
        for key in ('optim', 'scheduler'):
            if not isinstance(train.get(key), dict) or 'type' not in train[key]:
                raise OptionError(f"train.{key} needs a 'type' (or give train.stages)")
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
        if block.get('load_reference') and not getattr(network_cls, 'takes_reference', False) \
                and (opt.get('train') or {}).get('use_ref', True):
            raise OptionError(
                f'{where}.load_reference: true gives the network the source image of image-to-image data, but '
                f'{network_cls.__name__} takes no reference image (none of IPCE, CIANet, CLIPAGIQA, DCMPL does: '
                'the published methods read the text prompt only). Drop load_reference, or set train.use_ref: '
                'false to load the source images without giving them to the network.')


def check_options(opt: dict) -> None:
    """Raise OptionError for the first problem found in a training option dict."""
    check_keys({k: v for k, v in opt.items() if k not in PARSER_KEYS}, TOP_LEVEL_KEYS, 'top level')
    for key in ('name', 'model_type', 'network', 'datasets'):
        if key not in opt:
            raise OptionError(f"the option file lacks the top-level key '{key}'")
    cls = network_class(opt)
    check_constructor_options(cls, opt['network'], 'network')
    targets = target_names(opt, cls)
    check_datasets(opt, cls)
    check_train(opt, targets)
    check_val(opt, targets)
    check_keys(opt.get('logger'), LOGGER_KEYS, 'logger')
    check_keys(opt.get('path'), PATH_KEYS, 'path')
    check_keys(opt.get('dist_params'), DIST_PARAM_KEYS, 'dist_params')
    save_format = (opt.get('logger') or {}).get('save_format', 'pth')
    if save_format not in SAVE_FORMATS:
        raise OptionError(f'logger.save_format must be one of {list(SAVE_FORMATS)}, got {save_format!r}')
