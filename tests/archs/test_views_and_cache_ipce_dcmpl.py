"""IPCE / DCMPL without wasted work: views cut by batched tensor operations (bitwise the views of
a per-patch loop), scores and gradients exactly those of the straightforward computation, each
text through the text tower once, cached class prompts never stale, view memory flat per image.
No timings: only values, call counts and tensor bytes."""

import pytest
import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pyiqa_agiqa.archs.dcmpl_arch import DCMPL
from pyiqa_agiqa.archs.ipce_arch import IPCE, IPCEViews, correspondence_texts, ipce_score
from pyiqa_agiqa.archs.backbone.precision import set_precision

from conftest import TINY, rounding

TINY_DCMPL = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False, test_stride=16)


# ----- independent references (the straightforward loops) -----
def loop_views(cfg: IPCEViews, images, train, generator=None):
    """IPCE views patch by patch: resize, grid, indices (same draws), slices, whole image last."""
    single = images.dim() == 3
    x = images[None] if single else images
    h, w = x.shape[-2:]
    if min(h, w) < cfg.min_side:
        x = cfg.resize(x)
        h, w = x.shape[-2:]
    stride = cfg.large_stride if max(h, w) >= cfg.large_side else cfg.stride
    p = cfg.patch_size
    n_rows, n_cols = (h - p) // stride + 1, (w - p) // stride + 1
    n = n_rows * n_cols
    if train:
        idx = torch.randint(0, n, (x.shape[0], cfg.n_train), generator=generator)
    else:
        idx = (torch.arange(cfg.n_test) * (n // cfg.n_test)).expand(x.shape[0], -1)
    out = []
    for i in range(x.shape[0]):
        views = []
        for k in idx[i].tolist():
            r, c = (k // n_cols) * stride, (k % n_cols) * stride
            views.append(x[i, :, r:r + p, c:c + p])
        views.append(F.interpolate(x[i:i + 1], size=(p, p), mode='bilinear', align_corners=False)[0])
        out.append(torch.stack(views))
    out = torch.stack(out)
    return out[0] if single else out


def ipce_reference(net, x, prompts, generator=None):
    """IPCE score as first written: loop views, all 5B texts (text tower first), CLIP normalisation
    in the backbone."""
    views = x if x.dim() == 5 else loop_views(net.views, x, net.training, generator)
    b, v = views.shape[:2]
    texts = [t for p in prompts for t in correspondence_texts(p)]
    txt = F.normalize(net.backbone.encode_text(texts), dim=-1).view(b, 5, -1)
    img = F.normalize(net.backbone.encode_image(views.flatten(0, 1)), dim=-1).view(b, v, -1)
    logits = net.backbone.logit_scale() * torch.einsum('bvd,bkd->bvk', img, txt)
    return ipce_score(logits[:, :-1], logits[:, -1])[:, None]


def dcmpl_reference(net, x):
    """DCMPL scores as first written: the whole patch grid (nn.Unfold), every chunk normalised,
    prompts and class texts recomputed; image tower before text tower."""
    if x.dim() == 5:
        patches = x.flatten(0, 1)
        b, v = x.shape[:2]
    elif net.training:
        patches, b, v = x, x.shape[0], 1
    else:
        p, s = net.patch_size, net.test_stride
        h, w = x.shape[-2:]
        if min(h, w) < p:
            scale = p / min(h, w)
            x = F.interpolate(x, size=(max(p, round(h * scale)), max(p, round(w * scale))), mode='bilinear',
                              align_corners=False)
        c = x.shape[1]
        cols = torch.nn.Unfold(kernel_size=p, stride=s)(x)  # B, C * P * P, L (row-major)
        patches = cols.view(x.shape[0], c, p, p, -1).permute(0, 4, 1, 2, 3).reshape(-1, c, p, p)
        b, v = x.shape[0], cols.shape[-1]

    def encode(visual):
        out = []
        for chunk in patches.split(max(1, net.test_chunk)):
            chunk = chunk.expand(-1, 3, -1, -1) if chunk.shape[1] == 1 else chunk
            chunk = (chunk - net.pixel_mean) / net.pixel_std
            out.append(net.backbone.encode_image_prompted(chunk, visual, normalize_input=False))
        return torch.cat(out)

    def two_way(img, txt):
        logits = net.backbone.logit_scale() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
        return logits.softmax(dim=-1)[:, 0]

    outputs = (net.output,) if net.output else (net.output_names if net.use_aux else ('quality',))
    scores = {}
    if 'quality' in outputs:
        text, visual = net.main_prompts()
        img = encode(visual)
        if net.image_adapter is not None:
            img = net.image_adapter(img)
        scores['quality'] = two_way(img, net.backbone.encode_text_prompted(net.tokens_quality, text))
    if 'alignment' in outputs:
        aux = net.prompt_learner_aux
        img = encode(list(aux.prompts_vis))
        scores['alignment'] = two_way(img, net.backbone.encode_text_prompted(net.tokens_alignment, aux.text()))
    scores = {k: s.view(b, v).mean(dim=1) for k, s in scores.items()}
    return scores[net.output][:, None] if net.output else scores


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    else:
        assert torch.equal(a, b)


# ----- tensor bytes -----
class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created (and still alive) while the mode is on."""

    def __init__(self):
        super().__init__()
        self.live, self.peak = {}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {StorageWeakRef(t.untyped_storage()).cdata for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref.cdata not in inputs:  # a new storage, not a view of an input
                    self.live.setdefault(ref.cdata, (ref, t.untyped_storage().nbytes()))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def peak_bytes(fn, *args, **kwargs):
    with torch.no_grad(), PeakTensorBytes() as mode:
        out = fn(*args, **kwargs)
    return mode.peak, out


# ----- IPCE views -----
VIEW_CASES = [  # (IPCEViews options, input shape)
    (dict(patch_size=32, min_side=64, stride=16), (3, 96, 96)),  # one image, square
    (dict(patch_size=32, min_side=64, stride=8), (2, 3, 80, 120)),  # non-square
    (dict(patch_size=32, min_side=64, stride=8), (3, 3, 48, 60)),  # resized up first
    (dict(patch_size=32, min_side=64, stride=8, large_stride=12, large_side=120), (2, 3, 130, 150)),  # large stride
    (dict(patch_size=32, min_side=64, stride=8, n_test=500), (2, 3, 64, 72)),  # fewer patches than n_test
    (dict(patch_size=32, min_side=64, stride=8), (2, 1, 64, 70)),  # grey
]


@pytest.mark.parametrize('options, shape', VIEW_CASES)
def test_views_equal_a_patch_by_patch_loop_bitwise(options, shape):
    cfg = IPCEViews(**options)
    images = torch.rand(shape)
    assert torch.equal(cfg(images, train=False), loop_views(cfg, images, False))
    fast = cfg(images, train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, loop_views(cfg, images, True, torch.Generator().manual_seed(3)))
    # the global RNG (the dataset's case): same draws, and the same number of them
    torch.manual_seed(7)
    fast, after = cfg(images, train=True), torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(fast, loop_views(cfg, images, True)) and torch.equal(after, torch.rand(3))


def test_views_of_a_strided_input_and_their_gradient():
    cfg = IPCEViews(patch_size=32, min_side=64, stride=8)
    base = torch.rand(2, 70, 90, 3)
    x = base.permute(0, 3, 1, 2)  # channels-last memory
    assert torch.equal(cfg(x, train=False), loop_views(cfg, x, False))
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    weights = torch.rand(2, 9, 3, 32, 32)
    (cfg(a, train=True, generator=torch.Generator().manual_seed(1)) * weights).sum().backward()
    (loop_views(cfg, b, True, torch.Generator().manual_seed(1)) * weights).sum().backward()
    # overlapping patches: each pixel's gradient sums the same positive terms (at most one per view) in
    # another order, so the two sums differ by at most (views - 1) * eps * the sum
    views = weights.shape[1]
    tolerance = rounding(torch.float32, float(b.grad.abs().max()), ops=views)
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=tolerance)


def test_view_cutting_memory_is_flat_per_image():
    cfg = IPCEViews(patch_size=32, min_side=64, stride=8)
    per_image = {}
    for b in (8, 32):
        images = torch.rand(b, 3, 96, 128)
        peak, views = peak_bytes(cfg, images, train=False)
        out = views.untyped_storage().nbytes()
        assert peak <= 1.15 * out, (b, peak, out)  # the output and a whole-image view, no copies of the output
        per_image[b] = peak / b
    assert per_image[32] <= 1.05 * per_image[8], per_image


# ----- IPCE network -----
@pytest.fixture(scope='module')
def ipce():
    torch.manual_seed(0)
    return IPCE(**TINY).eval()


@pytest.mark.parametrize('shape', [(3, 3, 64, 64), (2, 3, 48, 60), (2, 1, 70, 90)])
def test_ipce_scores_equal_the_straightforward_computation(ipce, shape):
    x = torch.rand(shape)
    prompts = ['a cat', 'a dog on a sofa', 'a cat'][:shape[0]]
    with torch.no_grad():
        assert_same(ipce(x, prompt=prompts), ipce_reference(ipce, x, prompts))
        views = loop_views(ipce.views, x, False)
        assert_same(ipce(views, prompt=prompts), ipce_reference(ipce, views, prompts))
        assert torch.equal(views, loop_views(ipce.views, x, False))  # given views are left as they are
        ipce.train()
        try:
            torch.manual_seed(4)
            fast = ipce(x, prompt=prompts)
            torch.manual_seed(4)
            assert_same(fast, ipce_reference(ipce, x, prompts))
        finally:
            ipce.eval()


def count_text_rows(net):
    """List that receives the number of texts of each text-tower call of ``net.backbone``."""
    rows, encode = [], net.backbone.encode_tokens

    def counting(tokens):
        rows.append(tokens.shape[0])
        return encode(tokens)
    net.backbone.encode_tokens = counting
    return rows


def test_ipce_encodes_each_distinct_prompt_once(ipce):
    rows = count_text_rows(ipce)
    try:
        with torch.no_grad():
            same = ipce(torch.rand(6, 3, 64, 64), prompt=['a red fox'] * 6)
            assert rows == [5]
            mixed = ipce(torch.rand(4, 3, 64, 64), prompt=['a', 'b', 'a', 'b'])
            assert rows == [5, 10]
    finally:
        del ipce.backbone.encode_tokens
    assert same.shape == (6, 1) and mixed.shape == (4, 1)


def test_ipce_gradients_equal_the_straightforward_computation():
    torch.manual_seed(0)
    net = IPCE(**TINY).train()
    x = torch.rand(2, 3, 64, 72)
    prompts = ['a cat', 'a cat']
    grads = []
    for forward in (lambda img: net(img, prompt=prompts), lambda img: ipce_reference(net, img, prompts)):
        net.zero_grad(set_to_none=True)
        img = x.clone().requires_grad_(True)
        torch.manual_seed(2)
        forward(img).sum().backward()
        grads.append({'image': img.grad, **{n: p.grad for n, p in net.named_parameters() if p.grad is not None}})
    fast, ref = grads
    assert fast.keys() == ref.keys() and len(fast) > 10
    for name in fast:
        if name == 'image':  # overlapping patches: the same terms summed in another order, within the
            # rounding of the backward pass at the gradient's magnitude (the terms have both signs)
            tolerance = rounding(torch.float32, float(ref[name].abs().max()))
            torch.testing.assert_close(fast[name], ref[name], rtol=0, atol=tolerance)
        else:
            assert torch.equal(fast[name], ref[name]), name


def test_ipce_forward_memory_is_flat_per_image(ipce):
    per_image = {}
    for b in (8, 32):
        peak, _ = peak_bytes(ipce, torch.rand(b, 3, 64, 80), prompt=['a cat'] * b)
        per_image[b] = peak / b
    assert per_image[32] <= 1.1 * per_image[8], per_image


# ----- DCMPL -----
def tiny_dcmpl(seed=0, **kw):
    torch.manual_seed(seed)
    return DCMPL(**dict(TINY_DCMPL, **kw))


@pytest.mark.parametrize('options', [{}, dict(test_chunk=5), dict(mpa=False, adapter=False, use_aux=False),
                                     dict(output='quality'), dict(output='alignment')])
def test_dcmpl_scores_equal_the_straightforward_computation(options):
    net = tiny_dcmpl(**options).eval()
    with torch.no_grad():
        for x in (torch.rand(3, 3, 64, 90), torch.rand(2, 3, 24, 40), torch.rand(2, 1, 48, 48),
                  torch.rand(2, 4, 3, 32, 32)):
            assert_same(net(x), dcmpl_reference(net, x))
            assert_same(net(x), dcmpl_reference(net, x))  # from the cache


def count_prompted_text_calls(net):
    calls, encode = [], net.backbone.encode_text_prompted

    def counting(tokens, prompts):
        calls.append(tokens.shape[0])
        return encode(tokens, prompts)
    net.backbone.encode_text_prompted = counting
    return calls


def test_dcmpl_class_prompts_are_computed_once_in_eval():
    net = tiny_dcmpl().eval()
    calls = count_prompted_text_calls(net)
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        first, second = net(x), net(x)
        net(torch.rand(1, 3, 64, 40))
    assert calls == [2, 2]  # quality and alignment, once
    assert_same(first, second)


def check_fresh(net, x, calls, recomputed=True):
    """net(x) equals the value computed without the cache (and the cache recomputed if asked)."""
    n = len(calls)
    with torch.no_grad():
        out = net(x)
        assert (len(calls) > n) == recomputed
        net._class_prompts.clear()
        assert_same(out, net(x))
    return out


def test_dcmpl_cache_is_never_stale():
    net = tiny_dcmpl().eval()
    calls = count_prompted_text_calls(net)
    x = torch.rand(2, 3, 48, 48)
    before = check_fresh(net, x, calls)
    check_fresh(net, x, calls, recomputed=False)

    # optimiser steps on the prompts (plain loop and foreach Adam), made in training mode
    for optim in (torch.optim.SGD(net.prompt_learner_tar.parameters(), lr=0.5),
                  torch.optim.Adam(net.mpa.parameters(), lr=0.1, foreach=True),
                  torch.optim.Adam(net.prompt_learner_aux.parameters(), lr=0.1, foreach=False)):
        net.train()
        out = net(torch.rand(2, 3, 32, 32))
        optim.zero_grad()
        (out['quality'].sum() + out['alignment'].sum()).backward()
        optim.step()
        net.eval()
        after = check_fresh(net, x, calls)
        assert not torch.equal(after['quality'], before['quality'])
        before = after

    # in-place change of the frozen text tower, load_state_dict, mode, dtype, device round trips
    with torch.no_grad():
        net.backbone.model.ln_final.weight.mul_(1.5)
    check_fresh(net, x, calls)
    net.load_state_dict(tiny_dcmpl(seed=3).state_dict())
    check_fresh(net, x, calls)
    net.train()
    with torch.no_grad():
        net(torch.rand(1, 3, 32, 32))
    net.eval()
    check_fresh(net, x, calls)
    set_precision(net, 'bf16')  # the CLIP towers in bfloat16
    assert net.backbone.dtype == torch.bfloat16
    check_fresh(net, x, calls)
    set_precision(net, 'fp32')
    check_fresh(net, x, calls)
    # round trips with no call between: new storages of the same sizes, maybe at the old addresses
    set_precision(net, 'bf16')
    set_precision(net, 'fp32')
    check_fresh(net, x, calls)
    net.half().float()
    check_fresh(net, x, calls)
    net.to(torch.float64).float()
    check_fresh(net, x, calls)


def test_dcmpl_training_gradients_equal_the_straightforward_computation():
    net = tiny_dcmpl().train()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        net.eval()(torch.rand(1, 3, 32, 32))  # a filled cache must not matter
        net.train()
    grads = []
    for forward in (net, lambda img: dcmpl_reference(net, img)):
        net.zero_grad(set_to_none=True)
        out = forward(x)
        (out['quality'].sum() + 0.1 * out['alignment'].sum()).backward()
        grads.append({n: p.grad for n, p in net.named_parameters() if p.grad is not None})
    fast, ref = grads
    assert fast.keys() == ref.keys() and len(fast) > 10
    for name in fast:
        assert torch.equal(fast[name], ref[name]), name


def test_dcmpl_eval_with_autograd_after_a_cached_call():
    """Eval mode with gradients (a metric used as a loss): the cached no-grad values are not used."""
    net = tiny_dcmpl().eval()
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        net(x)
    out = net(x)
    out['quality'].sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    dcmpl_reference(net, x)['quality'].sum().backward()
    ref = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert grads.keys() == ref.keys() and any(n.startswith('prompt_learner_tar.') for n in grads)
    for name in grads:
        assert torch.equal(grads[name], ref[name]), name


def test_dcmpl_eval_never_holds_the_whole_patch_grid():
    net = tiny_dcmpl(test_chunk=8).eval()
    x = torch.rand(4, 3, 128, 128)  # 7 x 7 patches of 32 px per image
    grid_bytes = 4 * 49 * 3 * 32 * 32 * 4
    with torch.no_grad():
        net(x)  # fill the class-prompt cache
    peak, out = peak_bytes(net, x)
    assert peak < 0.5 * grid_bytes, (peak, grid_bytes)
    per_image = {}
    for b in (2, 8):
        per_image[b] = peak_bytes(net, torch.rand(b, 3, 128, 128))[0] / b
    assert per_image[8] <= per_image[2]


def test_storage_guard_sees_replaced_storages():
    """weights_token compares addresses; a storage replaced by one at the same address (a dtype
    round trip) must still change the cache key."""
    from pyiqa_agiqa.archs.backbone.feature_cache import StorageGuard

    guard = StorageGuard()
    params = [torch.nn.Parameter(torch.zeros(1000)), torch.nn.Parameter(torch.zeros(10))]
    first = guard('k', params)
    assert guard('k', params) == first
    with torch.no_grad():
        params[0].add_(1)  # in place: the same storage (weights_token sees the version)
    assert guard('k', params) == first
    params[1].data = torch.ones(10)  # the old storage is freed; the new one may take its address
    second = guard('k', params)
    assert second != first and guard('k', params) == second
    other = guard('other', params)  # keys are tracked separately
    assert guard('k', params) == second and guard('other', params) == other


def test_dcmpl_with_a_filled_cache_can_be_copied_and_pickled():
    """deepcopy (an EMA copy) and pickling: the copy computes its own class prompts."""
    import copy
    import io

    net = tiny_dcmpl().eval()
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        out = net(x)
    twin = copy.deepcopy(net)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (twin, loaded):
        calls = count_prompted_text_calls(other)
        with torch.no_grad():
            assert_same(other(x), out)
            other.prompt_learner_aux.ctx.add_(1)  # an auxiliary TEXT prompt: alignment only
            changed = other(x)
        assert torch.equal(changed['quality'], out['quality'])
        assert not torch.equal(changed['alignment'], out['alignment'])
        assert calls == [2, 2, 2]
    with torch.no_grad():
        assert_same(net(x), out)  # the original is untouched
    del twin, loaded
