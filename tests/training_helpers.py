"""Option files and runners shared by the training tests (tiny networks on the demo data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from pyiqa_agiqa.demo.run import demo_options

TINY_VIT = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False)


def ipce_options(demo_data, name: str, epochs: int = 3, batch: int = 4) -> dict:
    """Tiny IPCE (ResNet tower) on the demo data: 27 training images -> 6 iterations per epoch
    at batch 4, random views cut per item, one validation per epoch."""
    csv, images = demo_data
    opt = json.loads(json.dumps(demo_options(csv, images, epochs)))  # the YAML anchors share blocks: unshare
    opt['name'] = name
    opt['datasets']['train']['batch_size_per_gpu'] = batch
    opt['val']['val_freq'] = 27 // batch
    opt['val']['pbar'] = False
    opt['logger'].update(print_freq=1, use_tb_logger=False)
    return opt


def cianet_options(demo_data, name: str, stage_epochs=(2, 3), early_stop=None, batch: int = 4) -> dict:
    """Tiny CIA-Net (ViT tower) with the published two stages (frozen CLIP, then all), quality +
    consistency targets, validation every ``val_freq`` iterations."""
    csv, images = demo_data
    block = dict(type='AGIQADataset', meta_info_file=str(csv), dataroot_target=str(images), split_scheme='demo',
                 split_index=1, mos_columns=['mos_quality', 'mos_correspondence'], num_worker_per_gpu=0,
                 batch_size_per_gpu=batch, augment={'resize': 32})
    stages = [dict(name='head', epochs=stage_epochs[0], freeze=['backbone.'], losses=['quality'],
                   optim=dict(type='AdamW', lr=1e-3, weight_decay=1e-3)),
              dict(name='finetune', epochs=stage_epochs[1], reload_best=True, early_stop=early_stop,
                   optim=dict(type='AdamW', lr=1e-4, weight_decay=1e-3),
                   scheduler=dict(type='MultiStepLR', milestones=[2], gamma=0.1))]
    return dict(
        name=name, model_type='AGIQAModel', num_gpu=0, manual_seed=5,
        targets=dict(quality='mos_quality', consistency='mos_correspondence'),
        datasets=dict(train=dict(block, name='demo_train', augment={'resize': 32, 'hflip': True}),
                      val=dict(block, name='demo_val'),
                      val_test=dict(block, name='demo_test', override_phase='test')),
        network=dict(type='CIANet', **TINY_VIT),
        path=dict(pretrain_network=None, strict_load=True, resume_state=None),
        train=dict(total_epoch=sum(stage_epochs), stages=stages,
                   losses=dict(quality=dict(type='MSELoss', loss_weight=1.0),
                               consistency=dict(type='PairwiseFidelityLoss', loss_weight=1.0))),
        val=dict(val_freq=27 // batch, save_img=False, pbar=False, key_metric='mean_srcc',
                 metrics=dict(srcc=dict(type='calculate_srcc'), plcc=dict(type='calculate_plcc'))),
        logger=dict(print_freq=1, save_checkpoint_freq=1e9, save_latest_freq=1e9, use_tb_logger=False))


def write_options(opt: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{opt['name']}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def cli(args, cwd, check: bool = True, timeout: int = 600, **popen) -> subprocess.CompletedProcess:
    """Run ``pyiqa-agiqa ARGS`` in a fresh interpreter."""
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli'] + [str(a) for a in args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout, **popen)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def experiment(root: Path, name: str) -> Path:
    return Path(root) / 'experiments' / name


def load_weights(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['params']


def assert_same_state(a: dict, b: dict) -> None:
    """Bitwise equal state dicts."""
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'
