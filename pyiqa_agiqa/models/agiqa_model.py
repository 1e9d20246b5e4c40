"""Training model for text-conditioned AGIQA networks, registered in pyiqa's MODEL_REGISTRY.

It is pyiqa's GeneralIQAModel with four additions:

1. the prompt of each image goes to the network: ``net(img, prompt=[...])``;
2. several outputs and labels: ``targets`` maps each network output to a label column of
   the dataset (``{score: mos_quality}``); a network returns a (B, 1) tensor (its single
   output) or a dict of (B,) / (B, 1) tensors;
3. a loss per output (``train.losses``: ``{score: {type: L1Loss}}``), built by pyiqa's
   ``build_loss``; pyiqa's ``mos_loss_opt`` still works for single-output networks;
4. checkpoint selection on the validation part: the ``net_best`` checkpoint is chosen by
   ``val.key_metric`` on the dataset whose phase is ``val`` (or the one named by
   ``val.select_on``); every other dataset (the test part) records its metrics AT that
   checkpoint, not its own best, so the reported test figures are never picked on test.

Metric names: ``srcc``, ``plcc``, ... as named in ``val.metrics`` for one target;
``<output>_<metric>`` for several; ``srcc_plcc`` is the mean over targets of
(SRCC + PLCC) / 2 when both are configured (the published IPCE selection criterion).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from tqdm import tqdm

from pyiqa.archs import build_network
from pyiqa.losses import build_loss
from pyiqa.metrics import calculate_metric
from pyiqa.models.general_iqa_model import GeneralIQAModel
from pyiqa.utils import get_root_logger
from pyiqa.utils.registry import MODEL_REGISTRY

from .stages import parse_stages

TRAIN_KEYS = {'optim', 'scheduler', 'total_iter', 'total_epoch', 'warmup_iter', 'losses', 'mos_loss_opt',
              'metric_loss_opt', 'use_ref', 'stages'}
VAL_KEYS = {'val_freq', 'save_img', 'pbar', 'key_metric', 'metrics', 'select_on'}


class ModelOptionError(ValueError):
    """An option of the model, train or val section is unknown or inconsistent."""


def _check_keys(section: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(section or {}) - allowed)
    if unknown:
        raise ModelOptionError(f'unknown option(s) {unknown} in section {where}; known: {sorted(allowed)}')


@MODEL_REGISTRY.register()
class AGIQAModel(GeneralIQAModel):
    """pyiqa IQA model that feeds prompts and trains several outputs (see module doc)."""

    def __init__(self, opt):
        _check_keys(opt.get('train'), TRAIN_KEYS, 'train')
        _check_keys(opt.get('val'), VAL_KEYS, 'val')
        self._last_results = {}
        self._best_iter = None
        self._select_name = (opt.get('val') or {}).get('select_on')
        super().__init__(opt)
        self._resolve_targets()

    def _resolve_targets(self):
        """Set ``output_names`` (from the network) and ``targets`` (output -> label column)."""
        if hasattr(self, 'targets'):
            return
        bare = self.get_bare_model(self.net)
        self.output_names = tuple(getattr(bare, 'output_names', ('score',)))
        self.targets = OrderedDict(self.opt.get('targets') or {self.output_names[0]: 'mos_quality'})
        unknown = [k for k in self.targets if k not in self.output_names]
        if unknown:
            raise ModelOptionError(f'targets name outputs {unknown} that {type(bare).__name__} does not have '
                                   f'(its outputs: {list(self.output_names)})')

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
            missing = [t for t in names if t not in losses]
            extra = [t for t in losses if t not in names]
            if missing or extra:
                raise ModelOptionError(f'train.losses must name exactly the target outputs {names}; '
                                       f'missing {missing}, not a target {extra}')
        elif train_opt.get('mos_loss_opt'):
            losses = {t: train_opt['mos_loss_opt'] for t in names}
        else:
            raise ModelOptionError('train needs losses (per output) or mos_loss_opt')
        self.losses = torch.nn.ModuleDict({t: build_loss(dict(o)).to(self.device) for t, o in losses.items()})
        if train_opt.get('metric_loss_opt'):
            self.cri_metric = build_loss(dict(train_opt['metric_loss_opt'])).to(self.device)
        self.active_losses = list(self.losses)
        self._stopped = False
        if train_opt.get('stages'):
            try:
                self.stages = parse_stages(train_opt, names)
            except ValueError as error:
                raise ModelOptionError(str(error)) from None
            bare = self.get_bare_model(self.net)
            self._base_trainable = {n: p.requires_grad for n, p in bare.named_parameters()}
            self._enter_stage(0)
        else:
            self.stages = None
            self.setup_optimizers()
            self.setup_schedulers()

    # ----- stages (see stages.py) -----
    def _enter_stage(self, index: int):
        stage = self.stages[index]
        self.stage_index, self._stage_end_epoch = index, sum(s['epochs'] for s in self.stages[:index + 1])
        if stage['reload_best'] and self._best_iter is not None:
            self.copy_model(self.net_best, self.net)
        elif stage['reload_best']:
            get_root_logger().warning(f"Stage '{stage['name']}': no validation yet, nothing to reload")
        for name, param in self.get_bare_model(self.net).named_parameters():
            param.requires_grad = self._base_trainable[name] and not name.startswith(tuple(stage['freeze']))
        self.opt['train']['optim'], self.opt['train']['scheduler'] = dict(stage['optim']), dict(stage['scheduler'])
        self.optimizers, self.schedulers = [], []
        self.setup_optimizers()
        self.setup_schedulers()
        del self.opt['train']['optim'], self.opt['train']['scheduler']
        self.active_losses = stage['losses']
        self._stopped, self._no_improvement = False, 0
        n_train = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        get_root_logger().info(f"Stage {index + 1}/{len(self.stages)} '{stage['name']}': {stage['epochs']} epochs, "
                               f'{n_train:,d} trainable parameters, losses {self.active_losses}')

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        # pyiqa's loop calls this after each epoch with (epoch index + 2): epochs done = current_iter - 1
        epochs_done = current_iter - 1
        if self.stages and epochs_done == self._stage_end_epoch and self.stage_index + 1 < len(self.stages):
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
        if self._stopped:
            return
        self.optimizer.zero_grad()
        outputs = self.net_outputs(self.net)
        loss_dict, l_total = OrderedDict(), 0
        for name in self.active_losses:
            loss_fn = self.losses[name]
            loss = loss_fn(outputs[name][:, None], self.target_label(name)[:, None])
            loss_dict[f'l_{name}'] = loss
            l_total = l_total + loss
        if self.cri_metric is not None:
            for name in self.active_losses:
                loss = self.cri_metric(outputs[name][:, None], self.target_label(name)[:, None])
                loss_dict[f'l_metric_{name}'] = loss
                l_total = l_total + loss
        l_total.backward()
        self.optimizer.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.output_score = outputs[next(iter(self.targets))].detach()[:, None]

    def test(self):
        self.net.eval()
        with torch.no_grad():
            self.outputs = self.net_outputs(self.net)
        self.net.train()

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
        """Scores and labels of a whole loader: ({output: (N,)}, {output: (N,)}) numpy arrays."""
        preds = {o: [] for o in self.targets}
        gts = {o: [] for o in self.targets}
        for data in tqdm(dataloader, unit='batch', disable=not use_pbar, desc='validation'):
            self.feed_data(data)
            self.test()
            for o in self.targets:
                preds[o].append(self.outputs[o].float().cpu())
                gts[o].append(self.target_label(o).cpu())
        return ({o: torch.cat(v).numpy() for o, v in preds.items()},
                {o: torch.cat(v).numpy() for o, v in gts.items()})

    def _record(self, dataset_name, results, current_iter):
        self.best_metric_results[dataset_name] = {
            k: dict(better='higher', val=v, iter=current_iter) for k, v in results.items()}

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        if getattr(self, '_stopped', False):
            return
        dataset = dataloader.dataset
        name = dataset.opt['name']
        results = self.compute_metrics(*self.predict(dataloader, self.opt['val'].get('pbar', False)))
        self.metric_results = results
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = {}
        if name not in self.best_metric_results:
            self._record(name, {k: float('-inf') for k in results}, -1)
        self.key_metric = self.opt['val'].get('key_metric') or next(iter(results))
        if self.key_metric not in results:
            raise ModelOptionError(f"val.key_metric '{self.key_metric}' is not computed; metrics: {list(results)}")
        if self._select_name is None:
            self._select_name = name
            if getattr(dataset, 'phase', 'val') != 'val':
                get_root_logger().warning(f"Checkpoints are selected on '{name}', whose phase is "
                                          f"'{dataset.phase}': add a val part to select on validation data.")
        self._last_results[name] = (current_iter, results)
        if name == self._select_name:
            improved = results[self.key_metric] >= self.best_metric_results[name][self.key_metric]['val']
            if np.isnan(results[self.key_metric]):
                get_root_logger().warning(f'{self.key_metric} on {name} is NaN (constant predictions?): '
                                          'not counted as an improvement')
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

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        best = self.best_metric_results[dataset_name]
        role = 'selection' if dataset_name == self._select_name else f'at best {self._select_name}'
        lines = [f'Validation {dataset_name} (iter {current_iter})']
        for metric, value in self.metric_results.items():
            lines.append(f'\t # {metric}: {value:.4f}\t{role}: {best[metric]["val"]:.4f} @ {best[metric]["iter"]} iter')
        get_root_logger().info('\n'.join(lines))
        if tb_logger:
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'val_metrics/{dataset_name}/{metric}', value, current_iter)
