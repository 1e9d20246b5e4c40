"""precision='bf16' / 'fp16' for metrics (weights cast once, float32 out, any float input) and
train.precision for training (autocast, fp32 weights and checkpoints)."""

import pyiqa
import pytest
import torch

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.errors import OptionError
from pyiqa_agiqa.archs.backbone.precision import set_precision
from pyiqa_agiqa.training.option_check import check_options
from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.training.state import StateStore
from pyiqa_agiqa.weights.io import load_state_dict

from conftest import rounding
from training_helpers import experiment, ipce_options, write_options

TINY = dict(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, large_side=100000)


@pytest.mark.parametrize('precision, dtype', [('bf16', torch.bfloat16), ('fp16', torch.float16)])
def test_low_precision_metric_casts_once_and_returns_float32(precision, dtype):
    torch.manual_seed(0)
    reference = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY)
    torch.manual_seed(0)
    low = pyiqa.create_metric('ipce', device='cpu', pretrained=False, precision=precision, **TINY)
    assert {p.dtype for p in low.net.backbone.model.parameters()} == {dtype}  # the CLIP towers
    assert low.net.backbone.mean.dtype == torch.float32  # the normalisation before them, the maths after them
    x = torch.rand(2, 3, 64, 80)
    a, b = reference(x, prompt=['a fox', 'a cat']), low(x, prompt=['a fox', 'a cat'])
    # the towers in the low dtype move the 0-5 score by about one of its roundings there (eps * 5: 0.039
    # for bf16, 0.0049 for fp16; seen 0.008 and 0.0002): a closeness, the errors of many operations mostly cancel
    assert b.dtype == torch.float32 and 0 < (a - b).abs().max() < rounding(dtype, scale=5, ops=1)
    ones = torch.ones(1, 3, 64, 64, dtype=torch.bfloat16)  # pyiqa's own check would refuse 1.0 in bf16
    assert torch.isfinite(low(ones, prompt='white')).all()


def test_set_precision_back_to_fp32_restores_the_reference():
    torch.manual_seed(0)
    net = pyiqa.create_metric('cianet', device='cpu', pretrained=False, clip_model='AGIQA-Tiny-ViT').net
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x, prompt=['a', 'b'])
        set_precision(net, 'bf16')
        set_precision(net, 'fp32')
        after = net(x, prompt=['a', 'b'])
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    # the bf16 round trip rounded the weights once (relative eps / 2): the quality moves by about eps on
    # its range (seen 0.003 on 0.006, against 0.0078)
    assert (before - after).abs().max() < rounding(torch.bfloat16, scale=float(before.abs().max()) + 1, ops=1)
    with pytest.raises(ValueError, match="precision must be one of \\['fp32', 'bf16', 'fp16'\\]"):
        set_precision(net, 'int8')


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_training_in_low_precision_keeps_fp32_weights(precision, demo_data, tmp_path):
    opt = ipce_options(demo_data, f'amp_{precision}', epochs=1)
    opt['train']['precision'] = precision
    results = run_training(['-opt', str(write_options(opt, tmp_path))], root_path=str(tmp_path))
    assert 'srcc_plcc' in results['demo_val']
    best = load_state_dict(experiment(tmp_path, f'amp_{precision}') / 'models' / 'net_best.pth')
    assert {v.dtype for v in best.values() if v.is_floating_point()} == {torch.float32}
    state, _ = StateStore(experiment(tmp_path, f'amp_{precision}') / 'training_states').latest()
    assert (state['grad_scaler'] is not None) == (precision == 'fp16')


def test_precision_options_are_checked(demo_data):
    opt = ipce_options(demo_data, 'p')
    opt['train']['precision'] = 'bf32'
    with pytest.raises(OptionError, match='train.precision must be one of'):
        check_options(opt)
    opt['train']['precision'] = 'bf16'
    opt['network']['precision'] = 'bf16'
    with pytest.raises(OptionError, match='to train in low precision set train.precision'):
        check_options(opt)


def test_set_precision_refuses_a_network_without_clip_towers():
    with pytest.raises(TypeError, match="networks with CLIP towers .* not Linear"):
        set_precision(torch.nn.Linear(2, 2), 'bf16')
