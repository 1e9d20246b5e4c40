"""A metric scores only when the weights its output needs are there: outputs from trained parts
(CIA-Net's quality, CLIP-AGIQA, DCMPL) are refused without fine-tuned weights, before anything
is built; outputs that plain CLIP makes meaningful keep working; random weights, fine-tuned
weights and a deliberate ``allow_untrained`` are accepted; training is not affected."""


import pyiqa
import pytest
import torch

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs.backbone.clip import create_clip
from pyiqa_agiqa.cli import main
from pyiqa_agiqa.errors import WeightsRequiredError
from pyiqa_agiqa.weights.io import save_weights

TINY = dict(clip_model='AGIQA-Tiny-ViT')
IPCE_TINY = dict(TINY, min_side=64, stride=8, large_side=100000)
REFUSED = ['cianet', 'clip_agiqa', 'dcmpl', 'dcmpl_alignment']
MEANINGFUL = ['ipce', 'cianet_consistency', 'cianet_authenticity']


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """A local CLIP checkpoint (tiny architecture, random values): what a user passes as
    clip_pretrained offline; a real file, read as open_clip reads its own."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('clip') / 'open_clip_model.safetensors'
    save_weights(create_clip('AGIQA-Tiny-ViT', None).state_dict(), path)
    return str(path)


def options(name, **extra):
    return dict(IPCE_TINY if name.startswith('ipce') else TINY, **extra)


@pytest.mark.parametrize('name', REFUSED)
def test_untrained_outputs_are_refused_before_anything_is_built(name, clip_file, monkeypatch):
    import pyiqa_agiqa.archs.backbone.clip as backbone

    def never(*args, **kwargs):
        raise AssertionError('a CLIP model was built before the refusal')
    monkeypatch.setattr(backbone, 'create_clip', never)
    with pytest.raises(WeightsRequiredError) as refused:
        pyiqa.create_metric(name, device='cpu', clip_pretrained=clip_file, **options(name))
    message = str(refused.value)
    assert '\n' not in message and message.startswith(f'{name}: ')
    for way in ('pyiqa-agiqa train -opt options/', 'pyiqa-agiqa export', "convert the authors' checkpoint",
                'hf://', 'weights=SPEC', 'pretrained=False', 'allow_untrained=True'):
        assert way in message, way


@pytest.mark.parametrize('name', MEANINGFUL)
def test_outputs_that_plain_clip_makes_meaningful_keep_working(name, clip_file):
    metric = pyiqa.create_metric(name, device='cpu', clip_pretrained=clip_file, **options(name))
    assert metric(torch.rand(2, 3, 64, 64), prompt=['a cat', 'a dog']).shape == (2, 1)


@pytest.mark.parametrize('name', REFUSED)
def test_random_weights_fine_tuned_weights_and_allow_untrained_are_accepted(name, clip_file, tmp_path):
    random = pyiqa.create_metric(name, device='cpu', pretrained=False, **options(name))
    path = save_weights(random.net.state_dict(), tmp_path / 'fine_tuned.safetensors')
    tuned = pyiqa.create_metric(name, device='cpu', weights=str(path), **options(name))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(tuned(x, prompt=['a', 'b']), random(x, prompt=['a', 'b']))
    untrained = pyiqa.create_metric(name, device='cpu', clip_pretrained=clip_file, allow_untrained=True,
                                    **options(name))
    assert untrained(x, prompt=['a', 'b']).shape == (2, 1)


def test_training_from_plain_clip_weights_is_not_refused(clip_file):
    from pyiqa.archs import build_network

    net = build_network(dict(type='CIANet', clip_pretrained=clip_file, **TINY))  # what training builds
    assert net(torch.rand(1, 3, 32, 32), prompt='a cat')['quality'].shape == (1,)


def test_command_line_refuses_in_one_line_and_random_weights_still_score(tmp_path, clip_file, capsys, monkeypatch):
    from PIL import Image

    image = tmp_path / 'a.png'
    Image.new('RGB', (64, 64), (200, 30, 30)).save(image)
    common = ['-t', str(image), '--prompt', 'a red square', '--device', 'cpu', '-q', '--set',
              'clip_model=AGIQA-Tiny-ViT']
    built = []
    create_metric = pyiqa.create_metric
    monkeypatch.setattr(pyiqa, 'create_metric', lambda *a, **k: built.append(a) or create_metric(*a, **k))
    assert main(['score', 'cianet', '-o', str(tmp_path / 's.csv'), '--set', f'clip_pretrained={clip_file}']
                + common) == 2
    assert built == []  # refused before any model is built
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: cianet: the quality output of CIANet')
    assert not (tmp_path / 's.csv').exists()
    assert main(['score', 'cianet', '--random-weights'] + common) == 0
    assert main(['score', 'cianet', '--allow-untrained', '--set', f'clip_pretrained={clip_file}'] + common) == 0
    assert built == [('cianet',), ('cianet',)]  # the two scoring runs built their metric through create_metric


def test_ray_engine_refuses_on_the_driver_before_ray_starts(tmp_path, clip_file):
    ray = pytest.importorskip('ray')
    from pyiqa_agiqa.scoring.ray_engine import score_with_ray

    with pytest.raises(WeightsRequiredError, match='dcmpl: the quality output of DCMPL'):
        score_with_ray(['ipce', 'dcmpl'], str(tmp_path), str(tmp_path / 'dst'),
                       options=dict(clip_model='AGIQA-Tiny-ViT', clip_pretrained=clip_file))
    assert not ray.is_initialized()
