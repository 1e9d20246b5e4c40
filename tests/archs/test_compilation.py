"""torch.compile'd CLIP towers (``--compile``): the eager scores, the same state dict."""

import pytest
import pyiqa
import torch
from torch import nn

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs.backbone.compilation import compile_towers, is_compiled
from pyiqa_agiqa.metrics.factory import create_metrics

from conftest import rounding

TINY = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT')


@pytest.mark.slow
@pytest.mark.parametrize('name', ['ipce', 'dcmpl'])  # encode_image / encode_tokens, and the prompted blocks
def test_compiled_towers_give_the_eager_scores_and_keep_the_state_dict(name):
    torch.manual_seed(0)
    metric = pyiqa.create_metric(name, device='cpu', **TINY)
    images = torch.rand(2, 3, 96, 96)
    prompts = ['a red fox in the snow', 'a blue car parked in the rain at night']
    with torch.no_grad():
        eager = metric(images, prompt=prompts)
    keys = list(metric.net.state_dict())
    compile_towers(metric)
    assert is_compiled(metric.net.backbone.model.visual) and is_compiled(metric.net.backbone.model.transformer)
    with torch.no_grad():
        compiled = metric(images, prompt=prompts)
    # the compiled towers fuse and reorder: two float32 runs, each within rounding() of the exact score
    scale = float(metric.score_range.split(',')[1])  # ipce 5, dcmpl 1
    torch.testing.assert_close(compiled, eager, atol=2 * rounding(torch.float32, scale), rtol=0)
    assert list(metric.net.state_dict()) == keys


def test_the_scorer_option_compiles_lazily_and_bad_requests_are_named():
    metrics = create_metrics(['cianet'], 'cpu', dict(TINY), compile_mode='default')
    assert is_compiled(metrics['cianet'].net)  # compiled in place; the work happens on the first call
    assert not is_compiled(create_metrics(['cianet'], 'cpu', dict(TINY))['cianet'].net)
    with pytest.raises(ValueError, match='compile mode must be one of'):
        compile_towers(metrics['cianet'], mode='fastest')
    with pytest.raises(ValueError, match='holds no CLIP tower'):
        compile_towers(nn.Linear(2, 2))
