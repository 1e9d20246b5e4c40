"""Packaging: entry points that name the plugin's classes lazily, metric entries, cheap idempotent
import, and what creating one of pyiqa's own metrics costs (fresh interpreters). The hook that
adds the metrics without an import is tested in tests/test_autoload.py."""

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

# what a process that creates one of pyiqa's own metrics may import of the plugin: the metric
# entries, the metric wrappers and the entry-point targets
LIGHT = {'pyiqa_agiqa', 'pyiqa_agiqa.errors', 'pyiqa_agiqa.metric_configs', 'pyiqa_agiqa.metrics',
         'pyiqa_agiqa.metrics.inputs', 'pyiqa_agiqa.metrics.readiness', 'pyiqa_agiqa.plugin', 'pyiqa_agiqa.prompt_args',
         'pyiqa_agiqa.version', 'pyiqa_agiqa_autoload'}


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter; ``env`` adds environment variables (e.g. the hook's off
    switch, for tests of what happens before the plugin is imported)."""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize('group', ['pyiqa.archs', 'pyiqa.datasets', 'pyiqa.models', 'pyiqa.losses'])
def test_entry_points_declared(group):
    names = {ep.value for ep in entry_points().select(group=group)}
    assert any(v.startswith('pyiqa_agiqa.plugin:') for v in names), names


def test_pyiqa_builders_find_plugin_without_import():
    code = (
        "import sys\n"
        "from pyiqa.archs import build_network\n"
        "from pyiqa.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY\n"
        "assert 'pyiqa_agiqa' not in sys.modules\n"
        "net = build_network({'type': 'IPCE', 'clip_model': 'AGIQA-Tiny-ViT', 'pretrained': False})\n"
        "print(type(net).__module__, DATASET_REGISTRY.get('AGIQADataset').__name__,"
        " MODEL_REGISTRY.get('AGIQAModel').__name__, LOSS_REGISTRY.get('PairwiseFidelityLoss').__name__)\n"
    )
    result = run_python(code, PYIQA_AGIQA_AUTOLOAD='0')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['pyiqa_agiqa.archs.ipce_arch', 'AGIQADataset', 'AGIQAModel',
                                     'PairwiseFidelityLoss']


def test_import_adds_metrics_in_place_idempotent_and_quiet():
    code = (
        "import pyiqa\n"
        "from pyiqa.default_model_configs import DEFAULT_CONFIGS\n"
        "before = id(DEFAULT_CONFIGS); n = len(DEFAULT_CONFIGS)\n"
        "assert 'ipce' not in pyiqa.list_models()\n"
        "import pyiqa_agiqa, sys\n"
        "assert 'open_clip' not in sys.modules, 'import must not build or load models'\n"
        "pyiqa_agiqa.register_metric_configs(); pyiqa_agiqa.register_metric_configs()\n"
        "from pyiqa.default_model_configs import DEFAULT_CONFIGS as again\n"
        "assert id(again) == before\n"
        "print(len(DEFAULT_CONFIGS) - n, *pyiqa.list_models(filter=list(pyiqa_agiqa.AGIQA_METRIC_CONFIGS)))\n"
    )
    result = run_python(code, PYIQA_AGIQA_AUTOLOAD='0')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['8', 'cianet', 'cianet_authenticity', 'cianet_consistency', 'clip_agiqa',
                                     'dcmpl', 'dcmpl_alignment', 'ipce', 'ipce_l14']
    assert 'INFO' not in result.stderr and 'WARNING' not in result.stderr


def test_create_metric_ipce_random_weights(no_network):
    import pyiqa
    import torch

    import pyiqa_agiqa  # noqa: F401

    metric = pyiqa.create_metric('ipce', pretrained=False, clip_model='AGIQA-Tiny-ViT', device='cpu')
    assert metric.lower_better is False and metric.score_range == '0, 5'
    score = metric(torch.rand(1, 3, 80, 96), prompt='a red circle')
    assert score.shape == (1, 1) and 0 <= float(score) <= 5


def test_name_clash_is_refused(monkeypatch):
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from pyiqa_agiqa.metric_configs import register_metric_configs

    monkeypatch.setitem(DEFAULT_CONFIGS, 'ipce', {'metric_opts': {'type': 'Other'}, 'metric_mode': 'NR'})
    with pytest.raises(RuntimeError, match="already defines a metric named 'ipce'"):
        register_metric_configs()


def test_creating_a_pyiqa_metric_imports_nothing_heavy_of_the_plugin():
    """pyiqa reads every plugin's entry points on its first registry lookup (PSNR's too): the
    plugin's targets only name its classes, so open_clip, timm's models and the plugin's
    architectures stay unimported, and the only modules outside pyiqa's own that the call
    imports are the plugin's light ones."""
    code = (
        "import json, sys, pyiqa\n"
        "before = set(sys.modules)\n"
        "pyiqa.create_metric('psnr', device='cpu')\n"
        "print(json.dumps([sorted(set(sys.modules) - before), sorted(sys.modules)]))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    new, loaded = json.loads(result.stdout.splitlines()[-1])
    heavy = [m for m in loaded if m.split('.')[0] == 'open_clip' or m.startswith(('timm.models', 'pyiqa_agiqa.archs'))]
    assert not heavy, heavy[:10]
    assert {m for m in new if not m.startswith('pyiqa.')} <= LIGHT
    assert {m for m in loaded if m.startswith('pyiqa_agiqa')} <= LIGHT


def test_entry_points_name_every_registered_class_and_load_after_an_import():
    """Each class the plugin registers is named in plugin.LAZY by where it is defined; loading
    the entry points after the classes were imported (names already taken) warns of nothing."""
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "import pyiqa_agiqa.archs, pyiqa_agiqa.data, pyiqa_agiqa.training.model, pyiqa_agiqa.losses\n"
        "from pyiqa.utils import registry\n"
        "from pyiqa_agiqa.plugin import LAZY\n"
        "found = {}\n"
        "for name in LAZY:  # iterating a registry loads its entry points\n"
        "    for key, obj in getattr(registry, name):\n"
        "        if obj.__module__.startswith('pyiqa_agiqa'):\n"
        "            found.setdefault(name, {})[key] = f'{obj.__module__}:{obj.__qualname__}'\n"
        "print(found == LAZY, found)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('True'), result.stdout
