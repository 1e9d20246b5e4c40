"""Training stages run inside one pyiqa training (option ``train.stages``).

A stage is a number of epochs with its own optimiser, schedule, frozen parameters and active
losses, e.g. CIA-Net's frozen-backbone stage followed by full fine-tuning::

    train:
      total_epoch: 110              # must equal the sum of the stage epochs
      stages:
        - name: frozen_clip
          epochs: 10
          freeze: [backbone.]       # parameter-name prefixes frozen during the stage
          losses: [quality]         # target outputs whose loss is active (default: all)
          optim: {type: AdamW, lr: !!float 1e-4, weight_decay: !!float 1e-3}
                                    # no scheduler: constant learning rate
        - name: finetune
          epochs: 100
          reload_best: true         # start from the best (val-selected) checkpoint so far
          early_stop: 20            # end the stage after 20 validations without improvement
          optim: {type: AdamW, lr: !!float 5e-6, weight_decay: !!float 1e-3}
          scheduler: {type: MultiStepLR, milestones: [60], gamma: 0.1}   # in epochs of the stage

Schedulers are stepped once per epoch (pyiqa's loop does so). A parameter that the network
itself keeps frozen stays frozen in every stage. After an early stop the remaining epochs of
the stage only iterate the data loader (pyiqa's loop cannot be shortened from the model).
"""

from __future__ import annotations

from typing import List

STAGE_KEYS = {'name', 'epochs', 'freeze', 'losses', 'optim', 'scheduler', 'reload_best', 'early_stop'}
CONSTANT_SCHEDULER = {'type': 'ConstantLR', 'factor': 1.0, 'total_iters': 0}


def parse_stages(train_opt: dict, targets: List[str]) -> List[dict]:
    """Validated stages with defaults filled in; raises ValueError naming the problem."""
    stages = train_opt.get('stages')
    if not isinstance(stages, list) or not stages:
        raise ValueError('train.stages must be a non-empty list of stages')
    if 'optim' in train_opt or 'scheduler' in train_opt:
        raise ValueError('with train.stages, give optim / scheduler inside each stage, not in train')
    parsed = []
    for i, stage in enumerate(stages):
        where = f"train.stages[{i}] ({stage.get('name', 'unnamed')})"
        unknown = sorted(set(stage) - STAGE_KEYS)
        if unknown:
            raise ValueError(f'{where}: unknown option(s) {unknown}; known: {sorted(STAGE_KEYS)}')
        if not isinstance(stage.get('epochs'), int) or stage['epochs'] < 1:
            raise ValueError(f'{where}: epochs must be a positive int')
        if not isinstance(stage.get('optim'), dict) or 'type' not in stage['optim']:
            raise ValueError(f"{where}: optim is required, with a 'type' (e.g. AdamW) and lr")
        early = stage.get('early_stop')
        if early is not None and (not isinstance(early, int) or isinstance(early, bool) or early < 1):
            raise ValueError(f'{where}: early_stop must be a whole number of validations >= 1 (or absent), '
                             f'got {early!r}')
        losses = stage.get('losses') or list(targets)
        if not set(losses) <= set(targets):
            raise ValueError(f'{where}: losses {losses} must be target outputs {list(targets)}')
        parsed.append(dict(name=stage.get('name', f'stage{i + 1}'), epochs=stage['epochs'],
                           freeze=list(stage.get('freeze') or []), losses=list(losses), optim=dict(stage['optim']),
                           scheduler=dict(stage.get('scheduler') or CONSTANT_SCHEDULER),
                           reload_best=bool(stage.get('reload_best', False)), early_stop=stage.get('early_stop')))
    total = sum(s['epochs'] for s in parsed)
    if train_opt.get('total_epoch') != total:
        raise ValueError(f"train.total_epoch ({train_opt.get('total_epoch')}) must equal the sum of the stage "
                         f'epochs ({total})')
    return parsed
