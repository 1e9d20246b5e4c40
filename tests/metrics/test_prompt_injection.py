"""Learnable / deep prompts written into open_clip's text and vision towers."""

import pytest
import torch

from pyiqa_agiqa.archs.backbone.clip import CLIPBackbone

from conftest import rounding


def same_up_to_rounding(a, b):
    """Two float32 runs of the text or image tower (other code paths or batches): each is within
    rounding() of the exact value at the features' magnitude, so they differ by at most twice that."""
    return torch.allclose(a, b, rtol=0, atol=2 * rounding(torch.float32, scale=float(b.abs().max())))


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return CLIPBackbone('AGIQA-Tiny-ViT', weights=None).eval()


def test_unprompted_paths_equal_open_clip(backbone):
    tokens = backbone.tokenize(['a photo of a cat', 'X X good photo.'])
    with torch.no_grad():
        assert same_up_to_rounding(backbone.encode_text_prompted(tokens, []), backbone.model.encode_text(tokens))


def test_text_prompt_at_input_equals_editing_the_embeddings(backbone):
    n_ctx, width = 4, backbone.model.transformer.width
    ctx = torch.randn(n_ctx, width)
    tokens = backbone.placeholder_tokens(n_ctx, ['good photo.', 'bad photo.'])
    with torch.no_grad():
        out = backbone.encode_text_prompted(tokens, [ctx])
        m = backbone.model
        x = m.token_embedding(tokens)
        x[:, 1:1 + n_ctx] = ctx
        x = m.transformer(x + m.positional_embedding, attn_mask=m.attn_mask)
        x = m.ln_final(x)[torch.arange(2), tokens.argmax(-1)] @ m.text_projection
    assert same_up_to_rounding(out, x)


def test_deep_text_prompts_change_the_output_and_get_gradients(backbone):
    n_ctx, width = 2, backbone.model.transformer.width
    prompts = [torch.randn(n_ctx, width, requires_grad=True) for _ in range(2)]
    tokens = backbone.placeholder_tokens(n_ctx, ['good photo.'])
    shallow = backbone.encode_text_prompted(tokens, prompts[:1])
    deep = backbone.encode_text_prompted(tokens, prompts)
    assert not torch.allclose(shallow, deep)
    deep.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompts)


def test_visual_prompts_are_appended_and_replaced_per_layer(backbone):
    width = backbone.model.visual.transformer.width
    images = torch.rand(3, 3, 32, 32)
    prompts = [torch.randn(2, width, requires_grad=True) for _ in range(2)]
    out = backbone.encode_image_prompted(images, prompts)
    assert out.shape == (3, backbone.embed_dim)
    with torch.no_grad():
        plain = backbone.encode_image(images)
        alone = backbone.encode_image_prompted(images[:1], prompts)
    assert not torch.allclose(out, plain)
    assert same_up_to_rounding(out[:1], alone)  # prompts never mix samples
    out.sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in prompts)


def test_prompt_errors(backbone):
    with pytest.raises(ValueError, match='input-level entry'):
        backbone.encode_image_prompted(torch.rand(1, 3, 32, 32), [None])
    with pytest.raises(ValueError, match='3 text prompt layers for a 2-layer'):
        backbone.encode_text_prompted(backbone.tokenize(['a']), [None] * 3)
