"""Weights are data: no path that loads weights runs code from the file, and fine-tuned
weights round-trip through .safetensors and the old .pth format alike."""

import os

import pyiqa
import pytest
import torch

import pyiqa_agiqa  # noqa: F401  (metric entries)
from pyiqa_agiqa.archs.backbone.clip import create_clip
from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.weights.io import (UnsafeWeightsError, WeightsFormatError, load_network_weights, load_state_dict,
                                    save_weights)

from conftest import rounding
from training_helpers import cli, experiment, ipce_options, write_options

TINY_IPCE = dict(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, large_side=100000)


class Payload:
    """Unpickling this object opens (creates) a file: the canary of code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


@pytest.fixture
def malicious(tmp_path):
    """(checkpoint path, marker path): a pyiqa-style checkpoint whose loading would create the marker."""
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'params': {'backbone.model.logit_scale': Payload(marker)}}, path)
    return path, marker


def images(tmp_path, n=2):
    from PIL import Image
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for i in range(n):
        Image.new('RGB', (72, 64), (40 * i, 90, 160)).save(folder / f'{i}.png')
    return folder


def test_create_metric_refuses_a_pickle_payload(malicious):
    path, marker = malicious
    with pytest.raises(UnsafeWeightsError, match='pickled objects other than tensors.*convert-pickle --trust-pickle'):
        pyiqa.create_metric('ipce', device='cpu', clip_pretrained=None, pretrained_model_path=str(path), **TINY_IPCE)
    assert not marker.exists()


def test_score_command_refuses_a_pickle_payload_in_one_line(malicious, tmp_path):
    path, marker = malicious
    result = cli(['score', 'ipce', '-t', images(tmp_path), '--prompt', 'a cat', '--weights', path,
                  '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'clip_pretrained=null', '--set', 'min_side=64',
                  '--device', 'cpu', '-q'], cwd=tmp_path, check=False)
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.startswith('error: ') and result.stderr.count('\n') == 1, result.stderr
    assert 'Traceback' not in result.stderr and 'evil.pth' in result.stderr


def test_training_refuses_a_payload_as_pretrain_network_or_resume_state(malicious, demo_data, tmp_path):
    path, marker = malicious
    for key in ('pretrain_network', 'resume_state'):
        opt = ipce_options(demo_data, f'evil_{key}', epochs=1)
        opt['path'][key] = str(path)
        result = cli(['train', '-opt', write_options(opt, tmp_path / key)], cwd=tmp_path, check=False)
        assert result.returncode == 2 and 'pickled objects other than tensors' in result.stderr, result.stderr
        assert not marker.exists()


def test_clip_files_are_read_as_tensors_only(malicious, tmp_path):
    path, marker = malicious
    with pytest.raises(UnsafeWeightsError):
        create_clip('AGIQA-Tiny-ViT', str(path))
    scripted = tmp_path / 'ViT-B-32.pt'  # the format of OpenAI's clip package
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(UnsafeWeightsError, match='TorchScript archive'):
        create_clip('AGIQA-Tiny-ViT', str(scripted))
    assert not marker.exists()


def test_safetensors_and_pth_weights_give_the_same_scores(tmp_path):
    torch.manual_seed(0)
    trained = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY_IPCE).net
    with torch.no_grad():  # weights no fresh network has
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    old = tmp_path / 'net_best.pth'
    torch.save({'params': trained.state_dict()}, old)  # what pyiqa's training writes
    new = save_weights(trained, tmp_path / 'weights.safetensors')
    x = torch.rand(2, 3, 64, 72)
    expected = trained.eval()(x, prompt=['a', 'b']).detach()
    scores = [pyiqa.create_metric('ipce', device='cpu', clip_pretrained=None, pretrained_model_path=str(path),
                                  **TINY_IPCE)(x, prompt=['a', 'b']) for path in (old, new)]
    assert torch.equal(scores[0], scores[1])
    tolerance = 2 * rounding(torch.float32, scale=5)  # the metric and the bare network: two float32 runs, 0-5 scores
    torch.testing.assert_close(scores[0], expected, rtol=0, atol=tolerance)
    fresh = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY_IPCE)(x, prompt=['a', 'b'])
    assert (fresh - expected).abs().max() > 10 * tolerance  # the comparison above is not trivially true
    with pytest.raises(WeightsFormatError, match="does not fit IPCE: 0 missing key.*1 unexpected key"):
        state = dict(load_state_dict(new), extra=torch.zeros(1))
        save_weights(state, tmp_path / 'extra.safetensors')
        load_network_weights(trained, tmp_path / 'extra.safetensors')
    with pytest.raises(ValueError, match='non-finite'):
        save_weights({'w': torch.tensor([float('nan')])}, tmp_path / 'nan.safetensors')


def test_convert_weights_needs_trust_and_makes_a_loadable_file(tmp_path):
    torch.manual_seed(1)
    net = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY_IPCE).net
    whole = tmp_path / 'whole_model.pth'
    torch.save(net, whole)  # a pickled module: needs code to load
    with pytest.raises(UnsafeWeightsError):
        load_state_dict(whole)
    out = tmp_path / 'converted.safetensors'
    refused = cli(['convert-pickle', whole, '-o', out], cwd=tmp_path, check=False)
    assert refused.returncode == 2 and '--trust-pickle' in refused.stderr and not out.exists()
    cli(['convert-pickle', '--trust-pickle', whole, '-o', out], cwd=tmp_path)
    x = torch.rand(1, 3, 64, 64)
    metric = pyiqa.create_metric('ipce', device='cpu', clip_pretrained=None, pretrained_model_path=str(out),
                                 **TINY_IPCE)
    torch.testing.assert_close(metric(x, prompt='a'), net.eval()(x, prompt='a').detach(), rtol=0,
                               atol=2 * rounding(torch.float32, scale=5))  # two float32 runs, 0-5 scores


def test_training_can_write_safetensors(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'st', epochs=1)
    opt['logger']['save_format'] = 'safetensors'
    run_training(['-opt', str(write_options(opt, tmp_path))], root_path=str(tmp_path))
    models = experiment(tmp_path, 'st') / 'models'
    assert sorted(p.name for p in models.iterdir()) == ['net_best.safetensors', 'net_latest.safetensors']
    net = pyiqa.create_metric('ipce', device='cpu', pretrained=False, clip_model='AGIQA-Tiny-RN').net
    load_network_weights(net, models / 'net_best.safetensors')
    assert os.path.getsize(models / 'net_best.safetensors') > 0
