"""Shared fixtures: a tiny CLIP (random weights, no download) and a small demo dataset."""

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # tests never reach a hub, even where one is reachable

REPO = Path(__file__).resolve().parents[1]


def console_script(name: str = 'pyiqa-agiqa') -> str:
    """The installed console script of this interpreter's environment (next to sys.executable),
    so that the suite runs the same whether or not the environment is activated."""
    import shutil
    import sys

    folder = Path(sys.executable).parent
    found = shutil.which(name, path=str(folder))
    if found is None:
        raise FileNotFoundError(f'{name} is not installed next to {sys.executable}: pip install -e . first')
    return found


TINY = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False, min_side=64, stride=8, large_side=100000)
DEMO_VIEWS = dict(type='IPCEViews', patch_size=32, min_side=64, stride=16, large_stride=16,
                  large_side=100000, n_train=8, n_test=15)


def rounding(dtype, scale: float = 1.0, ops: int = 1000) -> float:
    """Tolerance of a computation in ``dtype`` against the exact result: with round-to-nearest,
    ``ops`` chained operations on values of magnitude ``scale`` are within ``ops * eps * scale``
    (a CLIP tower, a softmax and a head are under 1000 operations deep)."""
    import torch

    return ops * torch.finfo(dtype).eps * scale


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """(meta-info CSV, image folder) of a small generated dataset: 12 prompts x 3 images."""
    from pyiqa_agiqa.demo.synthetic import make_demo_dataset

    root = tmp_path_factory.mktemp('demo')
    csv = make_demo_dataset(root, n_prompts=12, images_per_prompt=3, image_size=64, seed=1, progress=False)
    return csv, root / 'images'


@pytest.fixture(scope='module')
def local_ray():
    """A local Ray instance of 2 CPUs for the tests of one module (the Ray engine's tests)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


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


def write_bomb_png(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` pixels (8-bit grey), with the data
    of its first rows only: PIL refuses it as a decompression bomb on opening, whatever follows."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    rows = zlib.compress(b'\x00' * (width + 1) * 16)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
                     + chunk(b'IDAT', rows) + chunk(b'IEND', b''))
    return path
