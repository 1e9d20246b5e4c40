"""Run by ``torchrun`` in test_distributed_training.py: ``pyiqa-agiqa train`` (through the CLI's
``main``) or pyiqa's own training pipeline, with recorders around the training model, so the
test can compare what every process saw and held. Usage:
``torchrun ... dist_probe.py OUT_DIR train -opt FILE --launcher pytorch`` (the plugin's command)
or ``torchrun ... dist_probe.py OUT_DIR pyiqa-route -opt FILE --launcher pytorch`` (pyiqa's).

Each process writes ``OUT_DIR/rank<r>.json`` with:
- ``batches``: (iteration, image paths, prompts) of every training batch it read;
- ``events``: validations (iteration, dataset, figures, weights digest), stage starts and
  early stops (iteration, digest);
- ``check``: at the end, the predictions of net_best gathered from the shards compared with
  one process predicting the whole validation set alone (rank 0).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.training.model import AGIQAModel
from pyiqa_agiqa.training import distributed

OUT = Path(sys.argv[1])
RECORD = {'batches': [], 'events': [], 'check': {}}


def digest(net) -> str:
    h = hashlib.sha256()
    for key, value in sorted(AGIQAModel.get_bare_model(None, net).state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def wrap(name, after):
    original = getattr(AGIQAModel, name)

    def wrapper(self, *args, **kwargs):
        before = getattr(self, '_stopped', False)
        result = original(self, *args, **kwargs)
        after(self, before, *args)
        return result
    setattr(AGIQAModel, name, wrapper)


def on_optimize(self, before, current_iter):
    RECORD['batches'].append((current_iter, list(self._paths), list(self.prompts)))


def on_validation(self, before, loader, current_iter, *rest):
    if not before:
        RECORD['events'].append(('val', current_iter, loader.dataset.opt['name'], dict(self.metric_results),
                                 digest(self.net)))
    if self._stopped and not before:
        RECORD['events'].append(('early_stop', current_iter, digest(self.net)))


def on_stage(self, before, index, *rest):
    RECORD['events'].append(('stage', index, self.current_iter, digest(self.net)))


def on_finished(self, before):
    for loader in self.val_loaders():
        self.net_best_backup = self.net
        self.net = self.net_best
        gathered, _ = self.predict(loader)
        if distributed.rank() == 0:
            full = DataLoader(loader.dataset, batch_size=loader.batch_size)
            alone, _ = self.predict(full)  # a plain loader: no shard, no gathering
            name = loader.dataset.opt['name']
            RECORD['check'][name] = {o: float(np.abs(gathered[o] - alone[o]).max()) for o in gathered}
            RECORD['check'][name + '_n'] = len(next(iter(gathered.values())))
            scale = float(AGIQAModel.get_bare_model(None, self.net).backbone.logit_scale())
            ranges = {'quality': float(np.abs(alone['quality']).max()) + 1, 'authenticity': 5 * scale,
                      'consistency': scale}  # the magnitudes of the outputs' rounding (tests/archs/test_cianet.py)
            RECORD['check'][name + '_range'] = {o: ranges[o] for o in gathered}
        self.net = self.net_best_backup


original_feed = AGIQAModel.feed_data


def feed(self, data):
    original_feed(self, data)
    self._paths = list(data['img_path'])


AGIQAModel.feed_data = feed
wrap('optimize_parameters', on_optimize)
wrap('validation', on_validation)
wrap('_enter_stage', on_stage)
wrap('check_finished', on_finished)


def pyiqa_route(argv) -> int:
    """pyiqa's own ``train.py`` with ``--launcher pytorch``. pyiqa's init_dist hard-codes CUDA
    (``torch.cuda.set_device``, nccl); on this CPU machine it is replaced by the same call
    with gloo, which is all that differs from a GPU run of pyiqa's route."""
    import torch.distributed as dist
    from pyiqa.train import train_pipeline
    from pyiqa.utils import dist_util

    dist_util._init_dist_pytorch = lambda backend, **kwargs: dist.init_process_group('gloo')
    sys.argv = ['train.py'] + argv
    train_pipeline(str(OUT.parent))
    return 0


torch.set_num_threads(1)
code = pyiqa_route(sys.argv[3:]) if sys.argv[2] == 'pyiqa-route' else main(sys.argv[2:])
OUT.mkdir(parents=True, exist_ok=True)
(OUT / f"rank{os.environ['RANK']}.json").write_text(json.dumps(dict(RECORD, code=code)))
sys.exit(code)
