"""Packaging: entry points, metric entries, cheap idempotent import (fresh interpreters)."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('group', ['pyiqa.archs', 'pyiqa.datasets', 'pyiqa.models', 'pyiqa.losses'])
def test_entry_points_declared(group):
    names = {ep.value for ep in entry_points().select(group=group)}
    assert any(v.startswith('pyiqa_agiqa.plugin:') for v in names), names


def test_pyiqa_builders_find_plugin_without_import():
    code = (
        "import sys\n"
        "from pyiqa.archs import build_network\n"
        "from pyiqa.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY\n"
        "assert 'pyiqa_agiqa' not in sys.modules\n"
        "net = build_network({'type': 'IPCE', 'clip_model': 'AGIQA-Tiny-ViT', 'pretrained': False})\n"
        "print(type(net).__module__, DATASET_REGISTRY.get('AGIQADataset').__name__,"
        " MODEL_REGISTRY.get('AGIQAModel').__name__)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['pyiqa_agiqa.archs.ipce_arch', 'AGIQADataset', 'AGIQAModel']


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
    result = run_python(code)
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
