"""The shared CLIP backbone: weights resolution, offline failure, tokenisation, normalisation."""

import warnings

import pytest
import torch

from pyiqa_agiqa.archs.backbone.clip import CLIPBackbone, WeightsUnavailableError, create_clip, resolve_weights
from pyiqa_agiqa.prompt_args import warn_truncated

from conftest import rounding
from hub_helpers import offline_hub


def test_random_weights_need_no_file_and_no_network(no_network):
    backbone = CLIPBackbone('AGIQA-Tiny-ViT', weights=None)
    assert backbone.image_size == 32 and backbone.embed_dim == 64 and backbone.context_length == 77
    # exp(log(1/0.07)): log(1/0.07) ~ 2.7 rounded to float32, then exp
    assert torch.isclose(backbone.logit_scale(), torch.tensor(1 / 0.07), rtol=rounding(torch.float32, ops=4), atol=0)


def test_default_tag_offline_fails_fast_with_instructions(tmp_path, monkeypatch, no_network):
    offline_hub(monkeypatch)  # HF_HUB_OFFLINE=1, as huggingface_hub read it
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights('ViT-B-32-quickgelu', 'openai', cache_dir=str(tmp_path))
    message = str(info.value)
    assert "'openai'" in message and 'clip_pretrained=' in message and 'pretrained=False' in message


def test_default_metric_offline_fails_with_the_same_message(tmp_path, monkeypatch):
    import pyiqa

    import pyiqa_agiqa  # noqa: F401

    offline_hub(monkeypatch)  # HF_HUB_OFFLINE=1, as huggingface_hub read it
    with pytest.raises(WeightsUnavailableError, match='local'):
        pyiqa.create_metric('ipce', device='cpu', cache_dir=str(tmp_path))


def test_local_checkpoint_file_is_loaded(tmp_path, no_network):
    source = create_clip('AGIQA-Tiny-ViT', None)
    path = tmp_path / 'tiny.bin'
    torch.save(source.state_dict(), path)
    loaded = CLIPBackbone('AGIQA-Tiny-ViT', weights=str(path))
    for (name, a), b in zip(source.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_bad_weights_values_are_named():
    with pytest.raises(FileNotFoundError, match='missing.bin'):
        resolve_weights('AGIQA-Tiny-ViT', '/nowhere/missing.bin')
    with pytest.raises(ValueError, match="'laion9'.*ViT-B-32-quickgelu"):
        resolve_weights('ViT-B-32-quickgelu', 'laion9')
    with pytest.raises(ValueError, match='Unknown open_clip model'):
        create_clip('ViT-Q-99', None)


def test_tokenizer_truncates_long_texts_and_warns():
    backbone = CLIPBackbone('AGIQA-Tiny-ViT', weights=None)
    long_text = 'a very detailed painting of a castle ' * 30
    tokens = backbone.tokenize(['a cat', long_text])
    assert tokens.shape == (2, 77)
    eot = backbone.tokenizer.eot_token_id
    assert tokens[1, -1] == eot and (tokens[0] == eot).nonzero().item() == 3
    with pytest.warns(UserWarning, match='1 of 2 texts fill the 77-token context'):
        assert warn_truncated(['a cat', long_text], tokens) == 1
    with pytest.warns(UserWarning, match='TEST: 1 of 2 texts fill'):
        backbone.encode_text(['a cat', long_text], warn_as='TEST')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert warn_truncated(['a cat'], backbone.tokenize(['a cat'])) is None
        backbone.encode_text(['a cat'], warn_as='TEST')


def test_normalize_uses_clip_statistics_and_expands_grey():
    backbone = CLIPBackbone('AGIQA-Tiny-ViT', weights=None)
    grey = torch.rand(2, 1, 8, 8)
    out = backbone.normalize(grey)
    expected = (grey.repeat(1, 3, 1, 1) - torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)) \
        / torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    tolerance = rounding(torch.float32, scale=float(expected.abs().max()), ops=4)  # a subtraction, a division each
    assert out.shape == (2, 3, 8, 8) and torch.allclose(out, expected, atol=tolerance, rtol=0)


def test_fine_tuned_checkpoint_needs_no_clip_download(tmp_path, no_network, monkeypatch):
    """A whole-network checkpoint holds every CLIP weight: the default tag is not fetched."""
    import pyiqa

    import pyiqa_agiqa  # noqa: F401

    offline_hub(monkeypatch)  # HF_HUB_OFFLINE=1, as huggingface_hub read it
    torch.manual_seed(0)
    trained = pyiqa.create_metric('ipce', pretrained=False, clip_model='AGIQA-Tiny-ViT', device='cpu')
    path = tmp_path / 'net_best.pth'
    torch.save({'params': trained.net.state_dict()}, path)
    loaded = pyiqa.create_metric('ipce', clip_model='AGIQA-Tiny-ViT', device='cpu', pretrained_model_path=str(path),
                                 cache_dir=str(tmp_path / 'empty_cache'))
    image = torch.rand(1, 3, 64, 64)
    assert torch.equal(trained(image, prompt='a cat'), loaded(image, prompt='a cat'))
