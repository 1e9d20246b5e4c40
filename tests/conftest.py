"""Shared fixtures: a tiny CLIP (random weights, no download) and a small demo dataset."""

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # tests never reach a hub, even where one is reachable

REPO = Path(__file__).resolve().parents[1]
TINY = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False, min_side=64, stride=8, large_side=100000)
DEMO_VIEWS = dict(type='IPCEViews', patch_size=32, min_side=64, stride=16, large_stride=16,
                  large_side=100000, n_train=8, n_test=15)


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """(meta-info CSV, image folder) of a small generated dataset: 12 prompts x 3 images."""
    from pyiqa_agiqa.demo.synthetic import make_demo_dataset

    root = tmp_path_factory.mktemp('demo')
    csv = make_demo_dataset(root, n_prompts=12, images_per_prompt=3, image_size=64, seed=1, progress=False)
    return csv, root / 'images'


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


def dataset_opt(demo_data, phase='train', **extra):
    csv, images = demo_data
    opt = dict(name=f'demo_{phase}', type='AGIQADataset', meta_info_file=str(csv), dataroot_target=str(images),
               split_scheme='demo', split_index=1, phase=phase, views=dict(DEMO_VIEWS))
    opt.update(extra)
    return opt


def write_synthetic_images(root: Path, names, size: int = 24) -> None:
    """Small random RGB images at the relative paths ``names`` under ``root`` (a stand-in for a
    release's image folder; file types follow the extensions)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size + 8, 3)) * 255).astype('uint8')).save(path)


@pytest.fixture
def pyiqa_log():
    """Messages of pyiqa's logger (it does not propagate to the root logger, so caplog misses it)."""
    import logging

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger('pyiqa')
    level = logger.level  # INFO is dropped if an earlier create_metric initialised pyiqa's logger
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)
