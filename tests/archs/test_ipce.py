"""IPCE: views, score formula (checked by an independent computation), prompts, inputs, loss."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import pyiqa
import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs.ipce_arch import IPCE, IPCEViews
from pyiqa_agiqa.prompt_args import PromptError

from conftest import TINY, rounding


def reference_patches(img, patch, stride):
    """Patch grid as the reference code builds it: unfold over H then W, row-major."""
    c = img.shape[0]
    grid = img[None].unfold(2, patch, stride).unfold(3, patch, stride)
    return grid.permute(2, 3, 0, 1, 4, 5).reshape(-1, c, patch, patch)


def test_test_views_of_a_512_image_follow_the_published_grid():
    img = torch.rand(3, 512, 512)
    views = IPCEViews()(img, train=False)
    assert views.shape == (16, 3, 224, 224)
    grid = reference_patches(img, 224, 32)
    assert len(grid) == 100
    for i in range(15):
        assert torch.equal(views[i], grid[6 * i])
    whole = torch.nn.functional.interpolate(img[None], size=(224, 224), mode='bilinear', align_corners=False)[0]
    assert torch.equal(views[15], whole)


def test_large_images_use_stride_48_and_small_ones_are_resized():
    views = IPCEViews()
    assert views.grid(1024, 600) == ((1024 - 224) // 48 + 1, (600 - 224) // 48 + 1, 48)
    assert views.resize(torch.rand(3, 300, 400)).shape == (3, 512, 682)
    assert views.resize(Image.new('RGB', (400, 300))).size == (682, 512)
    assert views.resize(torch.rand(3, 600, 700)).shape == (3, 600, 700)


def test_train_views_are_random_patches_of_the_grid():
    img = torch.rand(3, 96, 96)
    views = IPCEViews(patch_size=32, min_side=64, stride=16, n_train=8)
    grid = reference_patches(img, 32, 16)
    out = views(img, train=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (9, 3, 32, 32)
    for patch in out[:8]:
        assert any(torch.equal(patch, g) for g in grid)


@pytest.fixture(scope='module')
def tiny_ipce():
    torch.manual_seed(0)
    return IPCE(**TINY).eval()


def hand_score(net, img, prompt):
    """The IPCE score of one 48 x 60 image, written out with the backbone's encoders and NumPy
    (float64 after the encoders)."""
    resized = torch.nn.functional.interpolate(img, size=(64, 80), mode='bilinear', align_corners=False)
    grid = reference_patches(resized[0], 32, 8)
    step = len(grid) // 15
    views = torch.cat([grid[[step * i for i in range(15)]],
                       torch.nn.functional.interpolate(resized, size=(32, 32), mode='bilinear', align_corners=False)])
    texts = [f"a photo that {c} matches '{prompt}'" for c in ['badly', 'poorly', 'fairly', 'well', 'perfectly']]
    with torch.no_grad():
        img_f = net.backbone.encode_image(views).numpy().astype(np.float64)
        txt_f = net.backbone.encode_text(texts).numpy().astype(np.float64)
        scale = float(net.backbone.model.logit_scale.double().exp())
    img_f /= np.linalg.norm(img_f, axis=1, keepdims=True)
    txt_f /= np.linalg.norm(txt_f, axis=1, keepdims=True)
    logits = scale * img_f @ txt_f.T

    def softmax(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    p = (softmax(logits[:15].mean(axis=0)) + softmax(logits[15])) / 2
    q = sum((k + 1) * p[k] for k in range(5))
    return (q - 1) / 4 * 5


def test_score_matches_hand_computation(tiny_ipce):
    img = torch.rand(1, 3, 48, 60)  # shorter side below min_side 64: resized to 64 x 80
    prompt = "a red fox's den"
    score = tiny_ipce(img, prompt=prompt).item()
    assert score == pytest.approx(hand_score(tiny_ipce, img, prompt), abs=rounding(torch.float32, scale=5))


def test_float64_network_matches_float32_and_the_hand_computation(tiny_ipce):
    """``.double()`` computes in float64 end to end: the score agrees with the float32 network to
    float32 rounding and with the written-out formula to float64 rounding."""
    net64 = copy.deepcopy(tiny_ipce).double()
    img = torch.rand(1, 3, 48, 60, dtype=torch.float64)
    prompt = 'a lighthouse at dusk'
    with torch.no_grad():
        score64, score32 = net64(img, prompt=prompt), tiny_ipce(img.float(), prompt=prompt)
    assert score64.dtype == torch.float64 and score32.dtype == torch.float32
    assert score64.item() == pytest.approx(hand_score(net64, img, prompt), abs=rounding(torch.float64, scale=5))
    assert score32.item() == pytest.approx(score64.item(), abs=rounding(torch.float32, scale=5))


def test_extreme_probabilities_give_the_ends_of_the_range():
    from pyiqa_agiqa.archs.ipce_arch import ipce_score

    best = torch.tensor([[0., 0, 0, 0, 1e4]])
    worst = torch.tensor([[1e4, 0., 0, 0, 0]])
    # exp(-1e4) is 0 in float32: one-hot probabilities, (5 - 1) / 4 * 5 and (1 - 1) / 4 * 5 exactly
    assert ipce_score(best[:, None].repeat(1, 3, 1), best).item() == 5.0
    assert ipce_score(worst[:, None].repeat(1, 3, 1), worst).item() == 0.0


@pytest.mark.parametrize('prompt, size, message', [
    (None, 1, 'text-conditioned'),
    ('   ', 1, 'empty'),
    ('a cat', 2, 'one prompt \\(str\\) was given for a batch of 2'),
    (['a cat'], 2, 'got 1 prompts for 2 images'),
    (['a cat', 3], 2, 'prompt 1 is a int'),
])
def test_prompt_errors(tiny_ipce, prompt, size, message):
    with pytest.raises(PromptError, match=message):
        tiny_ipce(torch.rand(size, 3, 64, 64), prompt=prompt)


def test_batch_independence(tiny_ipce):
    images = torch.rand(3, 3, 64, 64)
    prompts = ['a cat', 'a dog on a sofa', 'a tree']
    with torch.no_grad():
        together = tiny_ipce(images, prompt=prompts)[:, 0]
        alone = torch.cat([tiny_ipce(images[i:i + 1], prompt=[prompts[i]])[:, 0] for i in range(3)])
    assert torch.allclose(together, alone, atol=2 * rounding(torch.float32, scale=5), rtol=0)  # other batches: two runs


def test_metric_accepts_tensor_path_and_pil(tmp_path):
    torch.manual_seed(0)
    metric = pyiqa.create_metric('ipce', device='cpu', **TINY)
    array = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    path = tmp_path / 'img.png'
    Image.fromarray(array).save(path)
    from_tensor = metric(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255, prompt='a cat')
    from_path = metric(str(path), prompt='a cat')
    from_pil = metric(Image.open(path), prompt='a cat')
    tolerance = 2 * rounding(torch.float32, scale=5)  # pixels read by pyiqa: two float32 runs on 0-5 scores
    assert torch.allclose(from_tensor, from_path, atol=tolerance, rtol=0)
    assert torch.allclose(from_tensor, from_pil, atol=tolerance, rtol=0)
    assert 0 <= from_tensor.item() <= 5


def test_as_loss_backpropagates_to_image_and_both_towers():
    torch.manual_seed(0)
    loss_fn = pyiqa.create_metric('ipce', as_loss=True, device='cpu', **TINY)
    img = torch.rand(2, 3, 64, 64, requires_grad=True)
    loss = loss_fn(img, prompt=['a cat', 'a dog'])
    assert loss.dim() == 0
    loss.backward()
    model = loss_fn.net.backbone.model
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert model.visual.conv1.weight.grad.abs().sum() > 0
    assert model.token_embedding.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad is None and not model.logit_scale.requires_grad


def test_published_architecture_vit_b32():
    torch.manual_seed(0)
    metric = pyiqa.create_metric('ipce', pretrained=False, device='cpu')
    net = metric.net
    visual, model = net.backbone.model.visual, net.backbone.model
    assert len(visual.transformer.resblocks) == 12 and visual.transformer.width == 768
    assert visual.conv1.kernel_size == (32, 32) and net.backbone.image_size == 224
    assert len(model.transformer.resblocks) == 12 and model.transformer.width == 512
    assert net.backbone.embed_dim == 512 and net.views.min_side == 512 and net.views.patch_size == 224
    trainable = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert trainable == ['backbone.model.logit_scale']
    score = metric(torch.rand(1, 3, 256, 256), prompt='a cat')
    assert 0 <= score.item() <= 5


@pytest.mark.slow
def test_published_architecture_vit_l14_for_aigiqa20k():
    net = pyiqa.create_metric('ipce_l14', pretrained=False, device='cpu').net
    visual, model = net.backbone.model.visual, net.backbone.model
    assert len(visual.transformer.resblocks) == 24 and visual.transformer.width == 1024
    assert visual.conv1.kernel_size == (14, 14)
    assert len(model.transformer.resblocks) == 12 and model.transformer.width == 768
    assert net.backbone.embed_dim == 768 and net.views.min_side == 768
    views = net.views(torch.rand(1, 3, 768, 768), train=False)
    assert views.shape == (1, 16, 3, 224, 224)
