"""Training model for text-conditioned AGIQA networks, registered in pyiqa's MODEL_REGISTRY.

It is pyiqa's GeneralIQAModel with these additions:

1. the prompt of each image goes to the network: ``net(img, prompt=[...])``;
2. several outputs and labels: ``targets`` maps each network output to a label column of
   the dataset (``{score: mos_quality}``); a network returns a (B, 1) tensor (its single
   output) or a dict of (B,) / (B, 1) tensors;
3. a loss per output (``train.losses``: ``{score: {type: L1Loss}}``), built by pyiqa's
   ``build_loss``; pyiqa's ``mos_loss_opt`` still works for single-output networks;
4. checkpoint selection on the validation part: the ``net_best`` checkpoint is chosen by
   ``val.key_metric`` on the dataset whose phase is ``val`` (or the one named by
   ``val.select_on``); every other dataset (the test part) records its metrics AT that
   checkpoint, not its own best, so the reported test figures are never picked on test;
5. training stages (``train.stages``, see stages.py), each ending with a validation so that
   the next stage's ``reload_best`` always has the best checkpoint up to that point, and
   validation at epoch ends (``val.val_epochs: N``: every N epochs, whatever the number of
   iterations an epoch has); both work in pyiqa's own loop too;
6. runs that fail loudly: a non-finite loss or gradient stops training with
   :class:`NonFiniteLossError` (``train.nonfinite_skip: K`` skips up to K such steps
   instead), no checkpoint with non-finite weights is written, validation parts with
   constant labels or non-finite predictions are errors, constant predictions are named;
7. several processes (torchrun): DistributedDataParallel on CPUs or GPUs, validation on
   every process (each predicts its shard, the predictions are gathered), so selection,
   stage switches, best-checkpoint reloads and early stops happen on every process at the
   same iteration and all processes hold the same weights;
8. exact resume: :meth:`training_state` / :meth:`load_training_state` hold the network,
   ``net_best``, optimisers, schedulers, selection results, stage and counters;
9. mixed precision: ``train.precision: bf16`` (autocast) or ``fp16`` (autocast and a gradient
   scaler, whose overflowing steps it skips itself); weights and checkpoints stay fp32, and
   validation runs in fp32 (no selection on rounded scores);
10. weights as data: checkpoints are read with :mod:`pyiqa_agiqa.weights` (tensors only)
   and written as ``.pth`` (pyiqa's ``{'params': ...}``) or ``.safetensors``
   (``logger.save_format``).

Metric names: ``srcc``, ``plcc``, ... as named in ``val.metrics`` for one target;
``<output>_<metric>`` for several; ``srcc_plcc`` is the mean over targets of
(SRCC + PLCC) / 2 when both are configured (the published IPCE selection criterion).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel
from tqdm import tqdm

from pyiqa.archs import build_network
from pyiqa.losses import build_loss
from pyiqa.metrics import calculate_metric
from pyiqa.models.general_iqa_model import GeneralIQAModel
from pyiqa.utils import get_root_logger
from pyiqa.utils.registry import MODEL_REGISTRY

from ..errors import OptionError, TrainingError
from ..archs.backbone.precision import autocast
from . import distributed
from .option_check import check_options
from .state import StateStore
from ..weights.io import fit_state_dict, load_network_weights, nonfinite_entries, save_weights
from .stages import parse_stages


class ModelOptionError(OptionError):
    """An option of the model, train or val section is unknown or inconsistent."""


class NonFiniteLossError(TrainingError):
    """The loss or the gradients became NaN / infinite more often than allowed."""


@MODEL_REGISTRY.register()
class AGIQAModel(GeneralIQAModel):
    """pyiqa IQA model that feeds prompts and trains several outputs (see module doc)."""

    def __init__(self, opt):
        try:
            check_options(opt)
        except OptionError as error:
            raise ModelOptionError(str(error)) from None
        self._last_results = {}
        self._best_iter = None
        self._selection_history = []
        self._select_name = (opt.get('val') or {}).get('select_on')
        self._last_val_iter = None
        self._nonfinite_skipped = 0
        self._attached_val_loaders = None
        self._tb_logger = None
        self.current_iter = 0
        self.best_metric_results = {}
        super().__init__(opt)
        self._resolve_targets()

    def _resolve_targets(self):
        """Set ``output_names`` (from the network) and ``targets`` (output -> label column)."""
        if hasattr(self, 'targets'):
            return
        bare = self.get_bare_model(self.net)
        self.output_names = tuple(getattr(bare, 'output_names', ('score',)))
        self.targets = OrderedDict(self.opt.get('targets') or {self.output_names[0]: 'mos_quality'})

    # ----- devices and weights -----
    def model_to_device(self, net):
        """Move to the device and wrap for several processes (DDP on GPUs or CPUs) or GPUs (DP)."""
        net = net.to(self.device)
        if self.opt['dist']:
            ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(net, device_ids=ids,
                                           find_unused_parameters=self.opt.get('find_unused_parameters', False))
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """``path.pretrain_network``: tensors only (see :mod:`pyiqa_agiqa.weights`)."""
        get_root_logger().info(f'Loading {type(self.get_bare_model(net)).__name__} weights from {load_path}')
        load_network_weights(self.get_bare_model(net), load_path, strict, key=param_key)

    def save_network(self, net, net_label, current_iter=None, param_key='params'):
        """Write ``models/<label>[_<iter>].pth`` (or ``.safetensors``, ``logger.save_format``) on
        the first process, atomically; refuses weights with NaN or infinity."""
        state = self.get_bare_model(net).state_dict()
        bad = nonfinite_entries(state)
        if bad:
            raise TrainingError(f"refusing to save '{net_label}' at iteration {self.current_iter}: non-finite "
                                f'weights in {bad[:3]}')
        if distributed.rank() != 0:
            return
        suffix = '' if current_iter is None else f"_{'latest' if current_iter == -1 else current_iter}"
        extension = (self.opt.get('logger') or {}).get('save_format', 'pth')
        save_weights(state, os.path.join(self.opt['path']['models'], f'{net_label}{suffix}.{extension}'))

    # ----- training -----
    def init_training_settings(self):
        self.net.train()
        train_opt = self.opt['train']
        self._resolve_targets()
        self.net_best = build_network(self.opt['network']).to(self.device)
        self.cri_mos, self.cri_metric = None, None
        names = list(self.targets)
        if train_opt.get('losses'):
            losses = dict(train_opt['losses'])
        else:
            losses = {t: train_opt['mos_loss_opt'] for t in names}
        self.losses = torch.nn.ModuleDict({t: build_loss(dict(o)).to(self.device) for t, o in losses.items()})
        if train_opt.get('metric_loss_opt'):
            self.cri_metric = build_loss(dict(train_opt['metric_loss_opt'])).to(self.device)
        self.active_losses = list(self.losses)
        self._stopped, self._no_improvement = False, 0
        self.precision = train_opt.get('precision', 'fp32')
        self.grad_scaler = torch.amp.GradScaler(self.device.type) if self.precision == 'fp16' else None
        if train_opt.get('stages'):
            self.stages = parse_stages(train_opt, names)
            bare = self.get_bare_model(self.net)
            self._base_trainable = {n: p.requires_grad for n, p in bare.named_parameters()}
            self._enter_stage(0)
        else:
            self.stages, self.stage_index = None, 0
            self.setup_optimizers()
            self.setup_schedulers()

    # ----- stages (see stages.py) -----
    def _enter_stage(self, index: int, reload: bool = True):
        stage = self.stages[index]
        self.stage_index, self._stage_end_epoch = index, sum(s['epochs'] for s in self.stages[:index + 1])
        if reload and stage['reload_best'] and self._best_iter is not None:
            self.copy_model(self.net_best, self.net)
            get_root_logger().info(f"Stage '{stage['name']}' starts from net_best (iteration {self._best_iter})")
        elif reload and stage['reload_best']:
            raise TrainingError(f"stage '{stage['name']}' has reload_best but no validation produced a finite "
                                f'{self._key_metric_name()} before it; no checkpoint to start from')
        bare = self.get_bare_model(self.net)
        for name, param in bare.named_parameters():
            param.requires_grad = self._base_trainable[name] and not name.startswith(tuple(stage['freeze']))
        if isinstance(self.net, DistributedDataParallel):  # DDP registers the trainable parameters when built
            self.net = self.model_to_device(bare)
        self.opt['train']['optim'], self.opt['train']['scheduler'] = dict(stage['optim']), dict(stage['scheduler'])
        self.optimizers, self.schedulers = [], []
        self.setup_optimizers()
        self.setup_schedulers()
        del self.opt['train']['optim'], self.opt['train']['scheduler']
        self.active_losses = stage['losses']
        self._stopped, self._no_improvement = False, 0
        n_train = sum(p.numel() for p in bare.parameters() if p.requires_grad)
        get_root_logger().info(f"Stage {index + 1}/{len(self.stages)} '{stage['name']}': {stage['epochs']} epochs, "
                               f'{n_train:,d} trainable parameters, losses {self.active_losses}')

    @property
    def stopped(self) -> bool:
        """True after an early stop, until the next stage starts."""
        return self._stopped

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        # pyiqa's loop calls this after each epoch with (epoch index + 2): epochs done = current_iter - 1
        epochs_done = current_iter - 1
        val_epochs = (self.opt.get('val') or {}).get('val_epochs')
        if val_epochs and epochs_done % int(val_epochs) == 0:
            self.validate_once(f'end of epoch {epochs_done}')
        if self.stages and epochs_done == self._stage_end_epoch and self.stage_index + 1 < len(self.stages):
            self.validate_once(f"end of stage '{self.stages[self.stage_index]['name']}'")
            self._enter_stage(self.stage_index + 1)
            return
        super().update_learning_rate(current_iter, warmup_iter)

    def _note_selection_result(self, improved: bool):
        if not self.stages or self._stopped:
            return
        self._no_improvement = 0 if improved else self._no_improvement + 1
        patience = self.stages[self.stage_index]['early_stop']
        if patience and self._no_improvement >= patience:
            self._stopped = True
            get_root_logger().info(f"Early stop of stage '{self.stages[self.stage_index]['name']}': "
                                   f'{patience} validations without improvement of {self.key_metric}; '
                                   'its remaining iterations are skipped.')

    def feed_data(self, data):
        super().feed_data(data)
        self.prompts = list(data['prompt'])
        self.labels = {k: v.to(self.device).float() for k, v in data['labels'].items()}

    def net_forward(self, net):
        if self.use_ref:
            return net(self.img_input, self.ref_input, prompt=self.prompts)
        return net(self.img_input, prompt=self.prompts)

    def net_outputs(self, net) -> dict:
        """{output name: (B,) tensor} of one forward pass."""
        out = self.net_forward(net)
        if isinstance(out, dict):
            return {k: v.reshape(v.shape[0], -1)[:, 0] for k, v in out.items()}
        out = out.reshape(out.shape[0], -1)
        return {name: out[:, i] for i, name in enumerate(self.output_names[:out.shape[1]])}

    def target_label(self, output: str) -> torch.Tensor:
        column = self.targets[output]
        if column not in self.labels:
            raise ModelOptionError(f"targets maps output '{output}' to label '{column}', but the dataset gives "
                                   f'labels {list(self.labels)} (option mos_columns of the dataset)')
        return self.labels[column]

    def optimize_parameters(self, current_iter):
        self.current_iter = current_iter
        if self._stopped:
            return
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            outputs = {k: v.float() for k, v in self.net_outputs(self.net).items()}
        loss_dict, l_total = OrderedDict(), 0
        for name in self.active_losses:
            loss_dict[f'l_{name}'] = self.losses[name](outputs[name][:, None], self.target_label(name)[:, None])
            l_total = l_total + loss_dict[f'l_{name}']
        if self.cri_metric is not None:
            for name in self.active_losses:
                loss_dict[f'l_metric_{name}'] = self.cri_metric(outputs[name][:, None],
                                                                self.target_label(name)[:, None])
                l_total = l_total + loss_dict[f'l_metric_{name}']
        # one collective for the log and for a decision every process takes alike
        values = distributed.all_reduce_mean(torch.stack([l_total.detach()] + [v.detach() for v in loss_dict.values()]))
        self.log_dict = OrderedDict(zip(loss_dict, values[1:].tolist()))
        if not bool(torch.isfinite(values).all()):
            return self._skip_step('loss', ', '.join(f'{k}={v:.4g}' for k, v in self.log_dict.items()))
        if self.grad_scaler is not None:  # fp16: scaled loss; overflowing steps are the scaler's to skip
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            l_total.backward()
            bad = self._nonfinite_gradients()
            if bad:
                return self._skip_step('gradient', f'non-finite gradients of {bad[:3]}')
            self.optimizer.step()
        self.output_score = outputs[next(iter(self.targets))].detach()[:, None]

    def _nonfinite_gradients(self) -> list:
        named = [(n, p.grad) for n, p in self.get_bare_model(self.net).named_parameters() if p.grad is not None]
        if not named:
            return []
        norms = torch.stack(torch._foreach_norm([g for _, g in named]))
        if bool(torch.isfinite(norms).all()):
            return []
        return [n for (n, _), ok in zip(named, torch.isfinite(norms).tolist()) if not ok]

    def _skip_step(self, what: str, detail: str):
        self.optimizer.zero_grad(set_to_none=True)
        self._nonfinite_skipped += 1
        allowed = int(self.opt['train'].get('nonfinite_skip', 0))
        where = f'iteration {self.current_iter}' + (
            f", stage '{self.stages[self.stage_index]['name']}'" if self.stages else '')
        if self._nonfinite_skipped > allowed:
            raise NonFiniteLossError(
                f'non-finite {what} at {where} ({detail}); training stopped, the weights of that step were not '
                f'applied and no checkpoint was written after it ({self._nonfinite_skipped - 1} bad step(s) skipped '
                f'before, train.nonfinite_skip allows {allowed}). Lower the learning rate, check the labels, or '
                'set train.nonfinite_skip: K to skip up to K bad steps; --auto_resume continues from the last state.')
        get_root_logger().warning(f'non-finite {what} at {where} ({detail}): step skipped '
                                  f'({self._nonfinite_skipped} of {allowed} allowed by train.nonfinite_skip)')

    def test(self):
        # the bare network: a DDP wrapper would run collectives that the other processes do not join
        bare = self.get_bare_model(self.net)
        bare.eval()
        with torch.no_grad():  # in fp32 whatever train.precision: selection is not made on rounded scores
            self.outputs = {k: v.float() for k, v in self.net_outputs(bare).items()}
        bare.train()

    # ----- validation -----
    def compute_metrics(self, preds: dict, gts: dict) -> OrderedDict:
        """Configured metrics per target (+ ``srcc_plcc``); see the module doc for names."""
        metric_opts = self.opt['val'].get('metrics') or {}
        results = OrderedDict()
        many = len(self.targets) > 1
        for output in self.targets:
            for name, opt_ in metric_opts.items():
                results[f'{output}_{name}' if many else name] = float(
                    calculate_metric([preds[output], gts[output]], opt_))
        if many:
            for name in metric_opts:
                results[f'mean_{name}'] = float(np.mean([results[f'{o}_{name}'] for o in self.targets]))
        types = {o['type']: n for n, o in metric_opts.items()}
        if 'calculate_srcc' in types and 'calculate_plcc' in types:
            s, p = types['calculate_srcc'], types['calculate_plcc']
            results['srcc_plcc'] = float(np.mean([
                (results[f'{o}_{s}' if many else s] + results[f'{o}_{p}' if many else p]) / 2 for o in self.targets]))
        return results

    def predict(self, dataloader, use_pbar: bool = False):
        """Scores and labels of a whole loader: ({output: (N,)}, {output: (N,)}) numpy arrays in
        dataset order. A loader over one process's shard (``sampler.shard_indices``) is gathered
        from all processes."""
        preds = {o: [] for o in self.targets}
        gts = {o: [] for o in self.targets}
        for data in tqdm(dataloader, unit='batch', disable=not use_pbar or distributed.rank() != 0,
                         desc='validation'):
            self.feed_data(data)
            self.test()
            for o in self.targets:
                preds[o].append(self.outputs[o].float().cpu())
                gts[o].append(self.target_label(o).float().cpu())
        preds = {o: torch.cat(v).numpy() if v else np.zeros(0, np.float32) for o, v in preds.items()}
        gts = {o: torch.cat(v).numpy() if v else np.zeros(0, np.float32) for o, v in gts.items()}
        indices = getattr(dataloader.sampler, 'shard_indices', None)
        if indices is None or not distributed.is_distributed():
            return preds, gts
        shards = distributed.all_gather_object((list(indices), preds, gts))
        order = np.concatenate([np.asarray(i, dtype=np.int64) for i, _, _ in shards])
        inverse = np.argsort(order, kind='stable')
        return ({o: np.concatenate([p[o] for _, p, _ in shards])[inverse] for o in self.targets},
                {o: np.concatenate([g[o] for _, _, g in shards])[inverse] for o in self.targets})

    def _check_labels(self, name: str, output: str, labels: np.ndarray) -> None:
        """Labels that cannot rank anything (constant, or fewer than two) are an error."""
        if len(labels) < 2 or np.ptp(labels) == 0:
            shown = f'all {labels[0]:.4g}' if len(labels) else 'no rows'
            raise TrainingError(
                f"validation part '{name}' has constant labels for output '{output}' (column "
                f'{self.targets[output]}: {shown}, {len(labels)} rows): SRCC / PLCC are undefined on it. Use a split '
                'whose val / test parts have varied labels (more rows, or another split_scheme / split_index).')

    def _check_figures(self, name: str, preds: dict, gts: dict) -> None:
        """Errors for constant labels and for non-finite predictions; a warning for constant
        predictions (the correlations are then undefined)."""
        for output in self.targets:
            self._check_labels(name, output, gts[output])
            scores = preds[output]
            if not np.isfinite(scores).all():
                raise TrainingError(
                    f"the network predicts non-finite '{output}' scores for {int((~np.isfinite(scores)).sum())} of "
                    f"{len(scores)} images of '{name}' at iteration {self.current_iter}: the weights are broken "
                    '(lower the learning rate); no checkpoint is selected from them.')
            if np.ptp(scores) == 0:
                get_root_logger().warning(
                    f"constant predictions on '{name}' for output '{output}' (all {scores[0]:.4g}) at iteration "
                    f'{self.current_iter}: the correlation metrics are undefined (NaN) and this validation does '
                    'not count as an improvement')

    def check_val_labels(self, dataset) -> None:
        """Before training: the label columns of a validation dataset must vary (AGIQADataset)."""
        items, columns = getattr(dataset, 'paths_mos', None), getattr(dataset, 'mos_columns', None)
        if not items or not columns:
            return
        for output, column in self.targets.items():
            if column in columns:
                labels = np.array([item['labels'][columns.index(column)] for item in items])
                self._check_labels(dataset.opt.get('name'), output, labels)

    def _key_metric_name(self) -> str:
        return getattr(self, 'key_metric', None) or (self.opt.get('val') or {}).get('key_metric') or 'the key metric'

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """Validate on every process (pyiqa validates on the first one only)."""
        if self._stopped:
            return
        self.current_iter = max(self.current_iter, current_iter)
        self._last_val_iter = current_iter
        dataset = dataloader.dataset
        name = dataset.opt['name']
        preds, gts = self.predict(dataloader, self.opt['val'].get('pbar', False))
        self._check_figures(name, preds, gts)
        results = self.compute_metrics(preds, gts)
        self.metric_results = results
        self.key_metric = self.opt['val'].get('key_metric') or next(iter(results))
        if self._select_name is None:
            self._select_name = name
            if getattr(dataset, 'phase', 'val') != 'val':
                get_root_logger().warning(f"Checkpoints are selected on '{name}', whose phase is "
                                          f"'{dataset.phase}': add a val part to select on validation data.")
        self._last_results[name] = (current_iter, results)
        if name == self._select_name:
            value = results[self.key_metric]
            self._selection_history.append((current_iter, value))
            best = self.best_metric_results.get(name, {}).get(self.key_metric, {}).get('val')
            improved = math.isfinite(value) and (best is None or value >= best)
            if improved:
                self._best_iter = current_iter
                self._record(name, results, current_iter)
                for other, (it, res) in self._last_results.items():
                    if other != name and it == current_iter:
                        self._record(other, res, current_iter)
                self.copy_model(self.net, self.net_best)
                self.save_network(self.net_best, 'net_best')
        elif self._best_iter == current_iter:
            self._record(name, results, current_iter)
        self._log_validation_metric_values(current_iter, name, tb_logger)
        if name == self._select_name:
            self._note_selection_result(improved)

    nondist_validation = dist_validation = validation

    def _record(self, dataset_name, results, current_iter):
        self.best_metric_results[dataset_name] = {
            k: dict(better='higher', val=v, iter=current_iter) for k, v in results.items()}

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        best = self.best_metric_results.get(dataset_name, {})
        role = 'selection' if dataset_name == self._select_name else f'at best {self._select_name}'
        lines = [f'Validation {dataset_name} (iter {current_iter})']
        for metric, value in self.metric_results.items():
            kept = f"{best[metric]['val']:.4f} @ {best[metric]['iter']} iter" if metric in best else 'none yet'
            lines.append(f'\t # {metric}: {value:.4f}\t{role}: {kept}')
        get_root_logger().info('\n'.join(lines))
        if tb_logger:
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'val_metrics/{dataset_name}/{metric}', value, current_iter)

    # ----- validation loaders for stage ends -----
    def attach_val_loaders(self, loaders, tb_logger=None) -> None:
        """The loop's validation loaders (else they are built from the options when needed);
        their label columns are checked now, before any training."""
        self._attached_val_loaders, self._tb_logger = list(loaders), tb_logger
        for loader in self._attached_val_loaders:
            self.check_val_labels(loader.dataset)

    def val_loaders(self) -> list:
        if self._attached_val_loaders is None:
            from pyiqa.data import build_dataset

            from .loaders import build_eval_loader

            self._attached_val_loaders = [build_eval_loader(build_dataset(block), block, self.opt)
                                          for phase, block in self.opt['datasets'].items() if phase.startswith('val')]
        return self._attached_val_loaders

    def validate_once(self, why: str) -> None:
        """Validate every val part at the current iteration unless that iteration was just
        validated (epoch ends with ``val.val_epochs``, stage ends)."""
        if self.opt.get('val') and not self._stopped and self._last_val_iter != self.current_iter:
            get_root_logger().info(f'Validation at iteration {self.current_iter} ({why})')
            for loader in self.val_loaders():
                self.validation(loader, self.current_iter, self._tb_logger)

    def check_finished(self) -> None:
        """After training: a run with validation must have selected a finite checkpoint."""
        if self.opt.get('val') and self._best_iter is None:
            history = ', '.join(f'{v:.4g} @ {i}' for i, v in self._selection_history[-5:]) or 'no validation ran'
            raise TrainingError(f"no validation of '{self._select_name}' gave a finite {self._key_metric_name()} "
                                f'({history}), so no net_best was selected or written. Check the validation '
                                'labels and the learning rate.')

    # ----- resume -----
    def training_state(self) -> dict:
        """Everything but the loop position and the RNGs (see training/state.py)."""
        return dict(
            net=self.get_bare_model(self.net).state_dict(), net_best=self.net_best.state_dict(),
            optimizers=[o.state_dict() for o in self.optimizers], schedulers=[s.state_dict() for s in self.schedulers],
            stage_index=self.stage_index, stopped=self._stopped, no_improvement=self._no_improvement,
            best_iter=self._best_iter, best_metric_results=self.best_metric_results,
            last_results={k: [it, dict(r)] for k, (it, r) in self._last_results.items()},
            selection_history=[list(x) for x in self._selection_history], select_name=self._select_name,
            last_val_iter=self._last_val_iter, nonfinite_skipped=self._nonfinite_skipped,
            current_iter=self.current_iter,
            grad_scaler=self.grad_scaler.state_dict() if self.grad_scaler is not None else None)

    def load_training_state(self, state: dict, source: str = 'the training state') -> None:
        """Restore :meth:`training_state` (after the model was built from the same options);
        ``source`` names the state in errors."""
        hint = ('the run was started with other options (network, clip_model ...): resume it with the option '
                'file it started with, or start a new run under another name')
        fit_state_dict(self.net_best, state['net_best'], f'{source} (net_best)', hint=hint)
        if self.stages:
            self._enter_stage(state['stage_index'], reload=False)
        bare = self.get_bare_model(self.net)
        fit_state_dict(bare, state['net'], f'{source} (net)', hint=hint)
        if len(state['optimizers']) != len(self.optimizers) or len(state['schedulers']) != len(self.schedulers):
            raise TrainingError(f'{source} does not fit these options (optimizers / schedulers differ): '
                                'was the option file changed?')
        try:
            for optimizer, saved in zip(self.optimizers, state['optimizers']):
                optimizer.load_state_dict(saved)
            for scheduler, saved in zip(self.schedulers, state['schedulers']):
                scheduler.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as error:
            raise TrainingError(f'{source}: its optimiser / scheduler state does not fit these options '
                                f"({' '.join(str(error).split())}); {hint}") from None
        self._stopped, self._no_improvement = state['stopped'], state['no_improvement']
        self._best_iter, self.best_metric_results = state['best_iter'], state['best_metric_results']
        self._last_results = {k: (it, OrderedDict(r)) for k, (it, r) in state['last_results'].items()}
        self._selection_history = [tuple(x) for x in state['selection_history']]
        self._select_name, self._last_val_iter = state['select_name'], state['last_val_iter']
        self._nonfinite_skipped, self.current_iter = state['nonfinite_skipped'], state['current_iter']
        if self.grad_scaler is not None and state.get('grad_scaler'):
            self.grad_scaler.load_state_dict(state['grad_scaler'])
        self.key_metric = (self.opt.get('val') or {}).get('key_metric')

    def resume_training(self, resume_state):
        """pyiqa's resume hook (its own train.py): restores the whole state written by
        :meth:`save_training_state` (pyiqa's loop then replays the interrupted epoch)."""
        self.load_training_state(resume_state)

    def save_training_state(self, epoch, current_iter):
        """pyiqa's hook (its own train.py, at ``save_checkpoint_freq``): a full training state."""
        if current_iter == -1:
            return
        state = dict(self.training_state(), epoch=epoch, iter=current_iter, batches_done=-1)
        if distributed.rank() == 0:
            keep = (self.opt.get('logger') or {}).get('keep_states', 2)
            StateStore(self.opt['path']['training_states'], keep).save(state, current_iter)
