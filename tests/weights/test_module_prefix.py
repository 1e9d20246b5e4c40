"""The leading ``module.`` that DataParallel / DistributedDataParallel put before every key is
removed when weights are read (every format of weights/io.py) and when they are written; a
``module.`` inside a key is a real submodule's name and stays."""

from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file, save_file

from pyiqa_agiqa.weights.io import load_network_weights, load_state_dict, save_weights


class Net(torch.nn.Module):
    """Keys ``head.weight``, ``head.bias`` and ``inner.module.weight`` (a submodule named module)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 2)
        self.inner = torch.nn.Module()
        self.inner.module = torch.nn.Linear(2, 2, bias=False)


def wrapped_state():
    """A DataParallel state dict: every key of Net's with a leading ``module.``."""
    torch.manual_seed(0)
    state = torch.nn.DataParallel(Net()).state_dict()
    assert sorted(state) == ['module.head.bias', 'module.head.weight', 'module.inner.module.weight']
    return state


WRITERS = {
    'safetensors': lambda state, path: save_file(OrderedDict(state), path),
    'pyiqa .pth': lambda state, path: torch.save({'params': state}, path),
    'Lightning .ckpt': lambda state, path: torch.save({'state_dict': state, 'epoch': torch.tensor(3)}, path),
    'bare .pt': lambda state, path: torch.save(state, path),
}
SUFFIX = {'safetensors': '.safetensors', 'pyiqa .pth': '.pth', 'Lightning .ckpt': '.ckpt', 'bare .pt': '.pt'}


@pytest.mark.parametrize('layout', list(WRITERS))
def test_reading_removes_a_leading_module_prefix(tmp_path, layout):
    state = wrapped_state()
    path = tmp_path / f'ddp{SUFFIX[layout]}'
    WRITERS[layout](state, str(path))
    loaded = load_state_dict(path)
    assert sorted(loaded) == ['head.bias', 'head.weight', 'inner.module.weight']
    net = load_network_weights(Net(), path, strict=True)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[f'module.{key}']), key


@pytest.mark.parametrize('suffix', ['.safetensors', '.pth'])
def test_writing_removes_a_leading_module_prefix(tmp_path, suffix):
    state = wrapped_state()
    path = save_weights(state, tmp_path / f'w{suffix}')
    written = load_file(path) if suffix == '.safetensors' else torch.load(path, weights_only=True)['params']
    assert sorted(written) == ['head.bias', 'head.weight', 'inner.module.weight']
    assert torch.equal(written['inner.module.weight'], state['module.inner.module.weight'])
