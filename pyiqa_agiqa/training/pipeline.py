"""The training loop of ``pyiqa-agiqa train``: pyiqa's options, datasets, model, logger and
schedule, in a loop that can be killed and resumed exactly and run on several processes.

Same option files and arguments as ``pyiqa/train.py`` (``-opt``, ``--launcher``,
``--auto_resume``, ``--debug``, ``--force_yml``), same iteration / epoch semantics
(validation every ``val.val_freq`` iterations, schedulers stepped once per epoch, network
files in ``experiments/NAME/models``). What differs from pyiqa's loop, and why:

- resume states at every epoch end (``logger.save_state_epochs``, default 1) and every
  ``logger.save_checkpoint_freq`` iterations, written atomically, the newest
  ``logger.keep_states`` (default 2) kept; ``--auto_resume`` / ``path.resume_state``
  restore everything (network, net_best, optimisers, schedulers, selection results,
  stage, counters, RNGs, position in the epoch), on CPUs or GPUs. pyiqa's loop needs CUDA to
  resume, restores only optimisers and schedulers and replays the interrupted epoch;
- the experiment folder is ``<root>/experiments/NAME`` for the first run and the resumed one
  alike (pyiqa looks for states under the current directory);
- items are drawn with per-item seeds (training/loaders.py), so an epoch's batches do not
  depend on workers, processes or interruptions;
- ``--launcher pytorch`` / ``slurm`` work on CPUs (gloo) as on GPUs (nccl);
- a stage that ends between two validations is validated at its end, and ``val.val_epochs``
  validates at epoch ends (the model does both, in pyiqa's loop too);
  an early-stopped stage's remaining epochs are skipped without reading data;
- the options are checked before anything is built, and the run fails with a non-zero exit
  when training breaks (see AGIQAModel) or no valid ``net_best`` was selected.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch
import yaml

from ..errors import OptionError, TrainingError
from . import distributed
from .loaders import build_eval_loader, build_train_loader
from .option_check import check_option_file, check_options, check_run_name
from ..weights.io import atomic_write, nonfinite_entries
from .console import Progress, hold_back_console, restore_console
from .state import StateStore, capture_rng, load_state, restore_rng, resume_path

RESULTS_FILE = 'results.json'
PYIQA_REQUIRED_KEYS = ('name', 'num_gpu', 'datasets', 'path')


DESCRIPTIONS = {
    'train': "pyiqa's training of one option file, resumable (the run's best weights under experiments/NAME)",
    'train-nsplits': "pyiqa's training of every split of the option file's split_num (one run per split, each "
                     'resumable), then the mean / std table over the splits',
}


def parse_arguments(argv: List[str], command: str = 'train') -> argparse.Namespace:
    """pyiqa's training arguments (``command``: ``train`` or ``train-nsplits``, for the help)."""
    parser = argparse.ArgumentParser(prog=f'pyiqa-agiqa {command}', description=DESCRIPTIONS[command])
    parser.add_argument('-opt', required=True, help='option YAML file')
    parser.add_argument('--launcher', choices=distributed.LAUNCHERS, default='none',
                        help='none (one process), pytorch (torchrun) or slurm')
    parser.add_argument('--auto_resume', action='store_true', help='continue from the newest training state')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None, help='override options, e.g. train:total_epoch=3')
    parser.add_argument('--root', default=None,
                        help='folder that holds experiments/ and tb_logger/ (default: the current directory); '
                             'give the same one to resume from another folder')
    return parser.parse_args(argv)


def _pyiqa_argv(args: argparse.Namespace) -> List[str]:
    """The arguments for pyiqa's option parser (one process: the group is already joined)."""
    argv = ['-opt', args.opt] + (['--auto_resume'] if args.auto_resume else []) + (['--debug'] if args.debug else [])
    return argv + (['--force_yml'] + list(args.force_yml) if args.force_yml else [])


@contextmanager
def _argv(argv: List[str]):
    saved = sys.argv
    sys.argv = ['pyiqa-agiqa'] + list(argv)
    try:
        yield
    finally:
        sys.argv = saved


def load_options(argv: List[str], root_path: str, command: str = 'train') -> dict:
    """Join the process group of ``--launcher`` (CPU or GPU) and parse the options with
    pyiqa's parser (seeds per rank, paths under ``root_path``)."""
    from pyiqa.utils.options import parse_options

    args = parse_arguments(argv, command)
    if not os.path.isfile(args.opt):
        raise OptionError(f"option file not found: '{args.opt}'")
    try:
        with open(args.opt) as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise OptionError(f"option file '{args.opt}' is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise OptionError(f"option file '{args.opt}' must be a mapping of options")
    missing = [k for k in PYIQA_REQUIRED_KEYS if k not in raw]
    if missing:
        raise OptionError(f"option file '{args.opt}' lacks the top-level key(s) {missing} (pyiqa's option parser "
                          f'needs {list(PYIQA_REQUIRED_KEYS)}; num_gpu: auto uses the GPUs there are)')
    try:
        check_option_file(raw)
    except OptionError as error:
        raise OptionError(f"option file '{args.opt}': {error}") from None
    distributed.init_distributed(args.launcher, raw.get('num_gpu', 'auto'), raw.get('dist_params'))
    root_path = os.path.abspath(os.path.expanduser(args.root)) if args.root else root_path
    with _argv(_pyiqa_argv(args)):
        opt, _ = parse_options(root_path, is_train=True)
    check_run_name(opt['name'], 'name (after --force_yml / --debug)')
    opt['dist'] = distributed.is_distributed()
    opt['root_path'] = root_path
    return opt, os.path.abspath(args.opt)


def _setup_logger(opt: dict, resumed: bool, quiet: bool = False) -> tuple:
    """(pyiqa's logger, the path of this run's log file or None, the console handlers held back
    with ``quiet``): pyiqa sets its file only once per process, so the file handler is replaced
    here for every run."""
    from pyiqa.utils import get_env_info, get_root_logger, get_time_str
    from pyiqa.utils.options import dict2str

    logger = get_root_logger(logger_name='pyiqa', log_level=logging.INFO)
    held = hold_back_console(logger) if quiet else []
    logger.setLevel(logging.INFO if distributed.rank() == 0 else logging.ERROR)
    for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(handler)
        handler.close()
    path = None
    if distributed.rank() == 0:
        path = os.path.join(opt['path']['log'], f"train_{opt['name']}_{get_time_str()}.log")
        handler = logging.FileHandler(path, 'w')
        handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s: %(message)s'))
        logger.addHandler(handler)
    logger.info(get_env_info())
    logger.info(dict2str(opt))
    return logger, path, held


def _prepare_folders(opt: dict, opt_file: str, resuming: bool) -> None:
    from pyiqa.utils import make_exp_dirs, mkdir_and_rename
    from pyiqa.utils.options import copy_opt_file

    if distributed.rank() == 0:
        if not resuming:
            make_exp_dirs(opt)
            if opt['logger'].get('use_tb_logger') and 'debug' not in opt['name']:
                os.makedirs(os.path.join(opt['root_path'], 'tb_logger_archived'), exist_ok=True)
                mkdir_and_rename(os.path.join(opt['root_path'], 'tb_logger', opt['name']))
        for key in ('models', 'training_states'):
            os.makedirs(opt['path'][key], exist_ok=True)
        copy_opt_file(opt_file, opt['path']['experiments_root'])
    distributed.barrier()


def _find_resume_state(opt: dict, store: StateStore):
    """(state, path) to resume from, or None. ``path.resume_state`` wins over --auto_resume."""
    explicit = resume_path(opt)
    if explicit:
        return load_state(explicit), explicit
    if not opt.get('auto_resume'):
        return None
    found = store.latest(warn=lambda message: print(f'warning: {message}', file=sys.stderr, flush=True))
    if found is None and distributed.rank() == 0:
        print(f"warning: --auto_resume found no training state in {store.folder}; starting '{opt['name']}' from "
              'the beginning (a run started in another folder is resumed with --root THAT_FOLDER)',
              file=sys.stderr, flush=True)
    return found


def _build_loaders(opt: dict, logger):
    from pyiqa.data import build_dataset

    train_set, val_loaders = None, []
    for phase, block in opt['datasets'].items():
        dataset = build_dataset(block)
        if phase == 'train':
            train_set, train_block = dataset, block
        else:
            val_loaders.append(build_eval_loader(dataset, block, opt))
            logger.info(f"Number of val images in {block['name']}: {len(dataset)}")
    train_loader, sampler = build_train_loader(train_set, train_block, opt)
    return train_set, train_loader, sampler, val_loaders


def _prefetcher(loader, opt: dict):
    from pyiqa.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher

    mode = opt['datasets']['train'].get('prefetch_mode')
    if mode in (None, 'cpu'):
        return CPUPrefetcher(loader)
    if mode == 'cuda':
        if opt['datasets']['train'].get('pin_memory') is not True:
            raise OptionError('datasets.train.prefetch_mode: cuda needs pin_memory: true')
        return CUDAPrefetcher(loader, opt)
    raise OptionError(f"datasets.train.prefetch_mode must be cpu or cuda, got '{mode}'")


class TrainingRun:
    """One training run (one split). ``run()`` returns pyiqa's best-metric table.

    ``progress=True`` shows a progress bar on the console instead of pyiqa's log lines (see
    :mod:`.console`); ``log_file`` is the path of the run's full log once it runs, ``model`` the
    trained AGIQAModel once it returned (its ``net_best`` holds the selected weights)."""

    def __init__(self, opt: dict, opt_file: str, progress: bool = False):
        self.opt, self.opt_file, self.progress = opt, opt_file, progress
        self.log_file: Optional[str] = None
        self.model = None
        logger_opt = opt.setdefault('logger', {})
        logger_opt.setdefault('print_freq', 100)
        logger_opt.setdefault('use_tb_logger', False)
        self.store = StateStore(opt['path']['training_states'], logger_opt.get('keep_states', 2))
        self.state_epochs = int(logger_opt.get('save_state_epochs', 1))
        self.checkpoint_freq = int(logger_opt.get('save_checkpoint_freq', 1e12))
        self.latest_freq = int(logger_opt.get('save_latest_freq', 1e12))

    def _save_state(self, model, epoch: int, batches_done: int, current_iter: int) -> None:
        rng = distributed.all_gather_object(capture_rng())
        state = dict(model.training_state(), epoch=epoch, batches_done=batches_done, iter=current_iter,
                     rng=rng, world_size=distributed.world_size())
        bad = nonfinite_entries(state['net'])
        if bad:
            raise TrainingError(f'non-finite weights in {bad[:3]} at iteration {current_iter}: no training state '
                                'is written from them')
        if distributed.rank() == 0:
            path = self.store.save(state, current_iter)
            self.logger.info(f'Saved training state {path} (epoch {epoch}, {batches_done} batches into it)')
        distributed.barrier()

    def _validate(self, model, val_loaders, current_iter, tb_logger) -> None:
        for loader in val_loaders:
            model.validation(loader, current_iter, tb_logger, False)

    def run(self):
        self._held = []
        try:
            return self._run()
        finally:
            restore_console(self._held)

    def _run(self):
        from pyiqa.models import build_model
        from pyiqa.train import init_tb_loggers
        from pyiqa.utils import MessageLogger

        import pyiqa_agiqa.training.model  # noqa: F401  (registers AGIQAModel)

        opt = self.opt
        check_options(opt)
        _configure_torch(opt)
        resume = _find_resume_state(opt, self.store)
        _prepare_folders(opt, self.opt_file, resume is not None)
        self.logger, self.log_file, self._held = _setup_logger(opt, resume is not None, quiet=self.progress)
        tb_logger = init_tb_loggers(opt)

        train_set, train_loader, sampler, val_loaders = _build_loaders(opt, self.logger)
        total_epochs, iters_per_epoch = _schedule(opt, train_set, len(train_loader), self.logger)
        model = self.model = build_model(opt)
        model.attach_val_loaders(val_loaders, tb_logger)
        start = _resume(model, resume, opt, self.logger)

        msg_logger = MessageLogger(opt, start.iteration, tb_logger)
        progress = Progress(opt['train']['total_iter'], start.iteration, f"training {opt['name']}",
                            self.progress and distributed.rank() == 0)
        run = RunContext(opt, model, train_loader, sampler, val_loaders, tb_logger, msg_logger, progress,
                         total_epochs, iters_per_epoch)
        try:
            self._loop(run, start)
        finally:
            progress.close()
        if tb_logger:
            tb_logger.close()
        if distributed.rank() == 0:
            write_results(opt, model)
        return model.best_metric_results

    def _loop(self, run: RunContext, start: Position) -> None:
        """Every epoch from ``start`` to the last, then the end of training."""
        feed = Feed.of(run)
        began = time.time()
        current_iter, skip = start.iteration, start.batches_done
        for epoch in range(start.epoch, run.total_epochs):
            if run.model.stopped:  # early-stopped stage: skip its remaining epochs without reading data
                current_iter += run.iters_per_epoch - skip
            else:
                current_iter = self._train_epoch(run, feed, epoch, skip, current_iter)
            skip = 0
            self._end_epoch(run, epoch, current_iter)
        self.logger.info(f'End of training. Time consumed: {datetime.timedelta(seconds=int(time.time() - began))}')
        self._finish(run, current_iter)

    def _train_epoch(self, run: RunContext, feed: Feed, epoch: int, skip: int, current_iter: int) -> int:
        """Train on the batches of ``epoch`` after its first ``skip``; returns the iteration
        reached (an early stop counts the rest of the epoch as done)."""
        model = run.model
        run.sampler.set_epoch(epoch, skip * run.train_loader.batch_size)
        feed.prefetcher.reset()
        batch = feed.prefetcher.next()
        done = skip
        while batch is not None:
            feed.data_timer.record()
            current_iter += 1
            done += 1
            model.feed_data(batch)
            model.optimize_parameters(current_iter)
            feed.iter_timer.record()
            self._after_iteration(run, feed, epoch, done, current_iter)
            if model.stopped:  # early stop: the rest of the epoch is skipped too
                return current_iter + run.iters_per_epoch - done
            feed.data_timer.start()
            feed.iter_timer.start()
            batch = feed.prefetcher.next()
        return current_iter

    def _after_iteration(self, run: RunContext, feed: Feed, epoch: int, done: int, current_iter: int) -> None:
        """The log line, validation, network files and resume state due at ``current_iter``
        (``done`` batches into ``epoch``), then the progress bar."""
        model, opt = run.model, run.opt
        if current_iter % opt['logger']['print_freq'] == 0:
            log_vars = dict(epoch=epoch, iter=current_iter, lrs=model.get_current_learning_rate(),
                            time=feed.iter_timer.get_avg_time(), data_time=feed.data_timer.get_avg_time())
            log_vars.update(model.get_current_log())
            run.msg_logger(log_vars)
        if feed.val_freq and current_iter % feed.val_freq == 0:
            self._validate(model, run.val_loaders, current_iter, run.tb_logger)
        if current_iter % self.checkpoint_freq == 0:
            model.save_network(model.net, 'net', current_iter)
            if done < run.iters_per_epoch:
                self._save_state(model, epoch, done, current_iter)
        if current_iter % self.latest_freq == 0:
            model.save_network(model.net, 'net', -1)
        run.progress.update(current_iter, model, epoch)

    def _end_epoch(self, run: RunContext, epoch: int, current_iter: int) -> None:
        """The scheduler step after ``epoch``, and the resume state due at its end."""
        model = run.model
        model.current_iter = current_iter
        model.update_learning_rate(epoch + 2, warmup_iter=run.opt['train'].get('warmup_iter', -1))
        run.progress.update(current_iter, model, epoch)
        if epoch + 1 < run.total_epochs and ((self.state_epochs and (epoch + 1) % self.state_epochs == 0)
                                             or current_iter % self.checkpoint_freq == 0):
            self._save_state(model, epoch + 1, 0, current_iter)

    def _finish(self, run: RunContext, current_iter: int) -> None:
        """The last network file, the end-of-training validation and the final resume state."""
        model = run.model
        model.save_network(model.net, 'net', -1)
        if run.opt.get('val'):
            model.validate_once('end of training')
        self._save_state(model, run.total_epochs, 0, current_iter)
        model.check_finished()


@dataclass
class RunContext:
    """What the loop of one run works with (built by ``TrainingRun._run``)."""
    opt: dict
    model: object  # AGIQAModel
    train_loader: object  # DataLoader of the training set
    sampler: object  # its ResumableSampler
    val_loaders: list
    tb_logger: object  # or None
    msg_logger: object  # pyiqa's MessageLogger
    progress: Progress
    total_epochs: int
    iters_per_epoch: int


@dataclass
class Position:
    """Where a run starts: ``epoch``, ``batches_done`` into it, ``iteration`` (all 0 for a new run)."""
    epoch: int = 0
    batches_done: int = 0
    iteration: int = 0


@dataclass
class Feed:
    """The loop's batch source and timers, and its validation interval (0: none by iteration)."""
    prefetcher: object
    data_timer: object
    iter_timer: object
    val_freq: int

    @classmethod
    def of(cls, run: RunContext) -> Feed:
        from pyiqa.utils import AvgTimer

        prefetcher = _prefetcher(run.train_loader, run.opt)
        val_freq = int(run.opt['val'].get('val_freq') or 0) if run.opt.get('val') else 0
        return cls(prefetcher, AvgTimer(), AvgTimer(), val_freq)


def _configure_torch(opt: dict) -> None:
    """Deterministic algorithms with ``deterministic: true``, else cuDNN's autotuner."""
    if opt.get('deterministic'):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _schedule(opt: dict, train_set, iters_per_epoch: int, logger) -> tuple:
    """(total epochs, iterations per epoch): ``train.total_epoch``, else ``train.total_iter``
    rounded up to whole epochs; ``opt['train']['total_iter']`` is set to the iterations run."""
    if iters_per_epoch == 0:
        raise OptionError(f"datasets.train: {len(train_set)} images give no full batch of "
                          f"{opt['datasets']['train']['batch_size_per_gpu']} per process")
    if opt['train'].get('total_epoch') is not None:
        total_epochs = int(opt['train']['total_epoch'])
    else:
        total_epochs = math.ceil(int(opt['train']['total_iter']) / iters_per_epoch)
    opt['train']['total_iter'] = total_iters = total_epochs * iters_per_epoch
    logger.info(f'Training statistics:\n\tNumber of train images: {len(train_set)}\n\tProcesses: '
                f"{opt['world_size']}\n\tIterations per epoch: {iters_per_epoch}\n\tTotal epochs: "
                f'{total_epochs}; iters: {total_iters}')
    return total_epochs, iters_per_epoch


def _resume(model, resume, opt: dict, logger) -> Position:
    """Load the resume state ``(state, path)`` (or None: a new run) into ``model`` and the RNGs;
    returns where the run goes on."""
    if resume is None:
        return Position()
    state, path = resume
    if state.get('batches_done', -1) < 0:
        raise TrainingError(f"{path} was written by pyiqa's own train.py, which does not record the position "
                            'in the epoch; resume it with python -m pyiqa.train --auto_resume')
    if state['world_size'] != opt['world_size']:
        raise TrainingError(f"{path} was written by a run with {state['world_size']} process(es); resume it "
                            f"with the same number of processes ({opt['world_size']} now): the data shards "
                            'and RNG states depend on it')
    model.load_training_state(state, source=path)
    restore_rng(state['rng'][distributed.rank()])
    start = Position(state['epoch'], state['batches_done'], state['iter'])
    logger.info(f'Resuming from {path}: epoch {start.epoch}, {start.batches_done} batches into it, iteration '
                f'{start.iteration}')
    return start


def write_results(opt: dict, model) -> str:
    """``experiments/NAME/results.json``: the figures at the selected checkpoint, where and by
    what they were selected (with the key metric of every validation of the selection part,
    ``selection_history``: [[iteration, value], ...]), the iterations the run completed
    (``iterations``: ``export`` refuses a run of none) and the versions that trained them (read
    by ``export`` and ``benchmark``)."""
    from ..version import versions

    path = os.path.join(opt['path']['experiments_root'], RESULTS_FILE)
    train = opt['datasets']['train']
    record = dict(name=opt['name'], results=model.best_metric_results, selected_iter=model._best_iter,
                  selected_on=model._select_name, key_metric=getattr(model, 'key_metric', None),
                  iterations=int(model.current_iter),
                  outputs=list(model.targets), versions=versions(),
                  selection_history=[[int(i), float(v)] for i, v in model._selection_history],
                  split=dict(scheme=train.get('split_scheme'), index=train.get('split_index')))
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
    return path


def train_pipeline(root_path: str, argv: List[str]):
    """Parse ``argv`` (pyiqa's training arguments) and run one training under ``root_path``."""
    return TrainingRun(*load_options(argv, root_path)).run()


def run_training(argv: List[str], root_path: Optional[str] = None):
    """``pyiqa-agiqa train ARGS``: experiments go to ``root_path/experiments/<name>`` (default:
    the current directory). Returns the best-metric table {dataset: {metric: {'val', 'iter'}}}."""
    return train_pipeline(os.path.abspath(root_path or os.getcwd()), argv)
