"""The one place where pyiqa is adapted (``pyiqa_agiqa.metrics.pyiqa_adapter``): one installer,
a check of pyiqa's signatures that names the pyiqa version, and pyiqa's own metrics untouched."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pyiqa
import pytest
import torch
from pyiqa.models.inference_model import InferenceModel

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.metrics import pyiqa_adapter
from pyiqa_agiqa.metrics.pyiqa_adapter import PyiqaVersionError, check_signatures, install, installed

from conftest import REPO

PACKAGE = REPO / 'pyiqa_agiqa'
# pyiqa's metrics that build with no download: full-reference ones, and one no-reference one
PYIQA_METRICS = ['psnr', 'ssim', 'cw_ssim', 'fsim', 'vif', 'gmsd', 'nlpd', 'vsi', 'piqe']


def _pair():
    generator = torch.Generator().manual_seed(7)
    return torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)


SCORE_IN_A_FRESH_PROCESS = """
import json, sys
if sys.argv[2] == 'block':  # pyiqa's entry points then fail to import the plugin (a RuntimeWarning)
    sys.modules['pyiqa_agiqa'] = None
import torch, pyiqa
generator = torch.Generator().manual_seed(7)
x, y = torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)
out = {}
for name in json.loads(sys.argv[1]):
    metric = pyiqa.create_metric(name, device='cpu')
    out[name] = (metric(x, y) if metric.metric_mode == 'FR' else metric(x)).double().tolist()
loss = pyiqa.create_metric('psnr', as_loss=True, device='cpu')
x.requires_grad_(True)
loss(x, y).backward()
out['psnr_loss_grad'] = x.grad.double().flatten()[:64].tolist()
print('PLUGIN' if sys.modules.get('pyiqa_agiqa') is not None else 'NO PLUGIN')
print(json.dumps(out))
"""


def _scores_of_pyiqa(plugin: bool) -> dict:
    env = dict(os.environ, PYIQA_AGIQA_AUTOLOAD='1' if plugin else '0')
    result = subprocess.run([sys.executable, '-c', SCORE_IN_A_FRESH_PROCESS, json.dumps(PYIQA_METRICS),
                             'load' if plugin else 'block'],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    marker, scores = result.stdout.strip().splitlines()[-2:]
    assert marker == ('PLUGIN' if plugin else 'NO PLUGIN')
    return json.loads(scores)


def test_pyiqa_own_metrics_give_identical_outputs_with_the_plugin_loaded():
    """Bit for bit: scores of 9 of pyiqa's metrics and the gradient of psnr used as a loss, in a
    process where the plugin cannot be imported (hook off, the package blocked, so pyiqa's entry
    points fail) and in one where the hook loaded it."""
    without, with_plugin = _scores_of_pyiqa(plugin=False), _scores_of_pyiqa(plugin=True)
    assert set(without) == set(PYIQA_METRICS) | {'psnr_loss_grad'}
    assert with_plugin == without


def test_pyiqa_own_metric_calls_reach_pyiqa_with_the_same_arguments(monkeypatch):
    """The adapter's forward hands pyiqa's metrics to pyiqa's forward at once, arguments as given."""
    calls = []
    pyiqa_forward = InferenceModel.forward.__wrapped__

    def spy(self, target, ref=None, **kwargs):
        calls.append((self.metric_name, target, ref, kwargs))
        return pyiqa_forward(self, target, ref, **kwargs)

    adapted = pyiqa_adapter._adapted_forward(spy)
    metric = pyiqa.create_metric('psnr', device='cpu')
    x, y = _pair()
    assert torch.equal(adapted(metric, x, y), pyiqa_forward(metric, x, y))
    assert len(calls) == 1 and calls[0][0] == 'psnr' and calls[0][1] is x and calls[0][2] is y and calls[0][3] == {}


def test_one_installer_wraps_both_methods_once():
    assert installed()
    for name in ('__init__', 'forward'):
        method = getattr(InferenceModel, name)
        assert getattr(method, '_pyiqa_agiqa_adapter') is True
        assert method.__wrapped__.__module__ == 'pyiqa.models.inference_model'  # pyiqa's own, wrapped once
        assert not hasattr(method.__wrapped__, '__wrapped__')
    before = (InferenceModel.__init__, InferenceModel.forward)
    install()
    assert (InferenceModel.__init__, InferenceModel.forward) == before


def test_no_other_module_of_the_plugin_patches_pyiqa():
    """Only pyiqa_adapter assigns attributes of a pyiqa class (``X.attr = ...`` / ``setattr``)."""
    patching = []
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == 'InferenceModel'
                   for t in targets):
                patching.append(str(path.relative_to(REPO)))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'setattr'
                    and node.args and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in ('InferenceModel', 'model_class')):
                patching.append(str(path.relative_to(REPO)))
    assert sorted(set(patching)) == ['pyiqa_agiqa/metrics/pyiqa_adapter.py']


class _OtherPyiqa:
    """A stand-in for an InferenceModel of another pyiqa: forward takes ``reference``."""

    def __init__(self, metric_name, as_loss=False, loss_weight=None, loss_reduction='mean', device=None, seed=123,
                 check_input_range=True, **kwargs):
        self.metric_name = metric_name

    def forward(self, target, reference=None, **kwargs):
        return target


def test_another_pyiqa_signature_is_refused_with_the_versions_named():
    with pytest.raises(PyiqaVersionError) as caught:
        install(_OtherPyiqa)
    message = str(caught.value)
    assert '\n' not in message
    assert f'pyiqa {pyiqa.__version__}: InferenceModel.forward(self, target, reference=None, **kwargs)' in message
    assert 'forward(self, target, ref=None, **kwargs) of pyiqa 0.1.16' in message
    assert 'pip install "pyiqa==0.1.16"' in message
    assert not installed(_OtherPyiqa) and _OtherPyiqa.forward.__name__ == 'forward'
    assert not hasattr(_OtherPyiqa.__init__, '__wrapped__')  # nothing wrapped: the check comes first


def test_the_signatures_checked_are_those_of_the_installed_pyiqa():
    check_signatures()  # pyiqa 0.1.16's own (seen through the wrappers' __wrapped__)
    assert pyiqa.__version__ == pyiqa_adapter.PYIQA_VERSION


CHANGED_PYIQA = """
import warnings, pyiqa
from pyiqa.default_model_configs import DEFAULT_CONFIGS
from pyiqa.models.inference_model import InferenceModel
InferenceModel.forward = lambda self, target, reference=None: target   # as if another pyiqa
try:
    import pyiqa_agiqa
except Exception as error:
    print(type(error).__name__, '|', error)
print('ipce' in DEFAULT_CONFIGS)
"""


def test_a_pyiqa_it_cannot_adapt_adds_no_metric_and_says_why():
    """``import pyiqa_agiqa`` raises the one-line error first; no half-adapted metric is added."""
    env = dict(os.environ, PYIQA_AGIQA_AUTOLOAD='0')
    result = subprocess.run([sys.executable, '-c', CHANGED_PYIQA], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    error, registered = result.stdout.strip().splitlines()[-2:]
    assert error.startswith('PyiqaVersionError | pyiqa 0.1.16: InferenceModel.forward(self, target, reference=None)')
    assert registered == 'False'


def test_development_doc_names_the_adapter_and_the_upstream_hook():
    text = (REPO / 'docs' / 'development.md').read_text()
    section = text.split('## The one place where pyiqa is adapted', 1)[1].split('\n## ', 1)[0]
    assert 'pyiqa_agiqa/metrics/pyiqa_adapter.py' in section and 'PyiqaVersionError' in section
    assert 'upstream' in section.lower()
    assert Path(PACKAGE / 'metrics' / 'pyiqa_adapter.py').is_file()
