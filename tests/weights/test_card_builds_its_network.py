"""An exported folder builds the network it was trained with: its card records every network
option (``archs/base.py``'s explicit lists) and ``create_metric(name, weights=FOLDER)`` builds
with them, from Python, named entries, ``hf://``, the command line and the Ray engine; an
explicit option that contradicts the card is a one-line error; version-1 cards still load."""

import inspect
import json
import os
import subprocess
import sys

import pyiqa
import pytest
import torch
from PIL import Image

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs import CIANet, CLIPAGIQA, DCMPL, IPCE
from pyiqa_agiqa.archs.base import COMMON_OPTIONS
from pyiqa_agiqa.export.folder import new_card, write_exported
from pyiqa_agiqa.weights.card import CardMismatchError, read_card
from pyiqa_agiqa.weights.specs import NAMED_WEIGHTS, register_weights

from conftest import REPO
from hub_helpers import folder_files, offline_hub, write_hub_cache

# an IPCE built with options none of which is the default or a metric's
IPCE_OPTIONS = dict(clip_model='AGIQA-Tiny-RN', min_side=64, patch_size=32, stride=16, large_stride=24,
                    large_side=100000, n_train_patches=3, n_test_patches=5)
PROMPTS = ['a red fox in the snow', 'a lighthouse at dusk']


def _perturbed(net):
    """``net`` with every parameter moved off its initial value (so loading is visible)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))
    return net.eval()


def _export(net, folder, outputs):
    given = {k: v for k, v in net.options.items()}
    card = new_card(type(net).__name__, given, outputs, source='test: random weights')
    return write_exported(folder, net.state_dict(), card)


@pytest.fixture(scope='module')
def ipce_folder(tmp_path_factory):
    torch.manual_seed(0)
    net = _perturbed(IPCE(pretrained=False, **IPCE_OPTIONS))
    folder = _export(net, tmp_path_factory.mktemp('ipce') / 'ipce_custom', ['score'])
    return net, folder


def _images(n=2, size=(80, 96)):
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('cls', [IPCE, CIANet, CLIPAGIQA, DCMPL])
def test_every_constructor_option_is_classified_once(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters if p != 'self']
    lists = [COMMON_OPTIONS, cls.network_options, cls.runtime_options]
    assert {p: sum(p in options for options in lists) for p in params} == {p: 1 for p in params}
    assert set(COMMON_OPTIONS) | set(cls.network_options) | set(cls.runtime_options) == set(params)


def test_the_card_records_every_network_option(ipce_folder):
    _, folder = ipce_folder
    card = read_card(folder)
    assert card['format_version'] == 2
    assert card['network'] == IPCE_OPTIONS  # every one of IPCE.network_options, none of the others
    assert list(card['network']) == list(IPCE.network_options)


def test_a_card_records_the_defaults_too():
    card = new_card('CIANet', {'clip_model': 'AGIQA-Tiny-ViT', 'output': 'quality', 'precision': 'bf16'}, ['quality'],
                    source='test')
    assert card['network'] == {'clip_model': 'AGIQA-Tiny-ViT', 'n_head': 8, 'head_hidden': 256}


def test_create_metric_with_the_folder_alone_builds_the_trained_network(ipce_folder):
    net, folder = ipce_folder
    metric = pyiqa.create_metric('ipce', weights=str(folder), device='cpu')
    assert metric.net.options == IPCE_OPTIONS
    assert (metric.net.views.patch_size, metric.net.views.n_test, metric.net.views.min_side) == (32, 5, 64)
    x = _images()
    with torch.no_grad():
        assert torch.equal(metric(x, prompt=PROMPTS), net(x, PROMPTS))


def test_an_option_given_as_on_the_card_is_accepted(ipce_folder):
    _, folder = ipce_folder
    metric = pyiqa.create_metric('ipce', weights=str(folder), device='cpu', min_side=64, clip_model='AGIQA-Tiny-RN')
    assert metric.net.options == IPCE_OPTIONS


@pytest.mark.parametrize('key, value', [('min_side', 96), ('patch_size', None), ('clip_model', 'AGIQA-Tiny-ViT')])
def test_an_option_that_contradicts_the_card_is_one_line_naming_both_values(ipce_folder, key, value):
    _, folder = ipce_folder
    with pytest.raises(CardMismatchError) as caught:
        pyiqa.create_metric('ipce', weights=str(folder), device='cpu', **{key: value})
    message = str(caught.value)
    assert '\n' not in message
    assert f'was trained with {key}={IPCE_OPTIONS[key]!r}, but {key}={value!r} was asked for' in message
    assert f'drop {key}' in message


def test_a_metric_of_another_architecture_is_refused_before_building(ipce_folder):
    _, folder = ipce_folder
    with pytest.raises(CardMismatchError, match=r"holds IPCE weights \(IPCE\), not CIANet: use one of the "):
        pyiqa.create_metric('cianet', weights=str(folder), device='cpu')


def test_a_named_entry_builds_the_trained_network(ipce_folder):
    net, folder = ipce_folder
    register_weights('test-card-ipce', str(folder))
    try:
        metric = pyiqa.create_metric('ipce', weights='test-card-ipce', device='cpu')
    finally:
        NAMED_WEIGHTS.pop('test-card-ipce')
    assert metric.net.options == IPCE_OPTIONS


def test_an_hf_reference_builds_the_trained_network(ipce_folder, tmp_path, monkeypatch):
    """Through huggingface_hub itself, offline, from its cache."""
    net, folder = ipce_folder
    commit = 'a' * 40
    write_hub_cache(tmp_path / 'hub', 'agiqa/test-weights', commit, folder_files(folder, 'ipce_custom'))
    offline_hub(monkeypatch, tmp_path / 'hub')
    metric = pyiqa.create_metric('ipce', weights=f'hf://agiqa/test-weights@{commit}/ipce_custom', device='cpu')
    assert metric.net.options == IPCE_OPTIONS
    x = _images()
    with torch.no_grad():
        assert torch.equal(metric(x, prompt=PROMPTS), net(x, PROMPTS))


def _score_command(folder, image, *extra):
    cmd = [sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '-t', str(image), '--prompt', PROMPTS[0],
           '--weights', str(folder), '-q', *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=dict(os.environ, HF_HUB_OFFLINE='1'))


def test_the_command_line_builds_the_trained_network_and_names_a_contradiction(ipce_folder, tmp_path):
    net, folder = ipce_folder
    image = tmp_path / 'fox.png'
    Image.fromarray((_images(1)[0].permute(1, 2, 0).numpy() * 255).astype('uint8')).save(image)
    result = _score_command(folder, image)
    assert result.returncode == 0, result.stderr[-2000:]
    metric = pyiqa.create_metric('ipce', weights=str(folder), device='cpu')
    with torch.no_grad():
        expected = float(metric(str(image), prompt=PROMPTS[0]))
    printed = float(result.stdout.strip().split()[-1])
    assert abs(printed - expected) <= 1e-4 * max(1.0, abs(expected))  # printed with 4+ decimals
    result = _score_command(folder, image, '--set', 'min_side=96')
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'min_side=64' in lines[0] \
        and 'min_side=96' in lines[0], result.stderr


def test_a_version_1_card_still_loads(ipce_folder, tmp_path):
    """Written before every option was recorded: only the options its option file set."""
    net, folder = ipce_folder
    old = tmp_path / 'old'
    old.mkdir()
    for file in folder.iterdir():
        (old / file.name).write_bytes(file.read_bytes())
    card = json.loads((old / 'card.json').read_text())
    card['format_version'] = 1
    set_in_the_option_file = ('clip_model', 'min_side', 'patch_size', 'stride', 'large_stride', 'large_side',
                              'n_test_patches')  # not n_train_patches
    card['network'] = {k: IPCE_OPTIONS[k] for k in set_in_the_option_file}
    (old / 'card.json').write_text(json.dumps(card))
    metric = pyiqa.create_metric('ipce', weights=str(old), device='cpu')
    assert metric.net.options == dict(IPCE_OPTIONS, n_train_patches=8)  # the default, as before
    x = _images()
    with torch.no_grad():
        assert torch.equal(metric(x, prompt=PROMPTS), net(x, PROMPTS))  # n_train_patches: training only
