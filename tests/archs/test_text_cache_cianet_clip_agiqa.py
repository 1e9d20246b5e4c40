"""CIA-Net and CLIP-AGIQA do no wasted work, with unchanged scores and gradients.

- Fixed texts (CIA-Net's authenticity texts, CLIP-AGIQA's class prompts outside training) are
  encoded once and reused: the text tower does not run again on a second call.
- They are never stale: an optimiser step, ``load_state_dict``, ``.train()`` / ``.eval()``,
  ``.to(float64)``, ``set_precision`` or autocast give the value a fresh computation gives.
- A single-output CIA-Net computes only that output (no prompt encoding for authenticity, no
  CIA layer for consistency, no authenticity texts for quality / consistency).
- Scores and training gradients equal those of a reference that does all the work (the
  computation as it was before the caching, written out here).

The text tower is counted with a forward hook on ``ln_final``, which every text path of the
backbone (``encode_tokens``, ``encode_text_prompted``, open_clip's ``encode_text``) runs once
per call: each hook call is one run, its batch size the number of texts encoded.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import pyiqa
import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.archs.cianet_arch import CIANet, authenticity_texts
from pyiqa_agiqa.archs.clip_agiqa_arch import CLIPAGIQA
from pyiqa_agiqa.archs.backbone.precision import set_precision
from pyiqa_agiqa.prompt_args import PromptError

TINY = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False)
PROMPTS = ['a red circle on a blue background', 'a cat', 'two green squares', 'a tree at night']
N_AUTH = len(authenticity_texts())


class Runs:
    """Counts the calls of a module (forward hook); ``sizes``: the batch size of each."""

    def __init__(self, module):
        self.sizes = []
        self.handle = module.register_forward_hook(lambda m, args, out: self.sizes.append(args[0].shape[0]))

    @property
    def count(self):
        return len(self.sizes)

    def reset(self):
        self.sizes.clear()


def text_runs(net):
    return Runs(net.backbone.model.ln_final)


def record_texts(net):
    """Every list of texts handed to ``backbone.encode_text`` (an instance-level wrapper)."""
    seen = []
    original = net.backbone.encode_text

    def wrapper(texts, *args, **kwargs):
        seen.append(list(texts))
        return original(texts, *args, **kwargs)

    net.backbone.encode_text = wrapper
    return seen


def cianet(seed=2, **kwargs):
    torch.manual_seed(seed)  # seed 2: a quality head that is not dead (ReLU > 0) at init
    return CIANet(**TINY, **kwargs).eval()


def clip_agiqa(seed=0, **kwargs):
    torch.manual_seed(seed)
    return CLIPAGIQA(**TINY, **kwargs).eval()


def images(n=4, seed=0, size=(40, 48)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *size, generator=g)


# ----- references: all the work, as before the caching -----
def cianet_reference(net, x, prompts):
    """The three outputs, every embedding computed now (the code before the caching)."""
    b = net.backbone
    img = b.encode_image(net.preprocess(x))
    txt = b.encode_text(prompts)
    auth = b.encode_text(authenticity_texts())
    scale = b.logit_scale()
    img_n, txt_n, auth_n = (F.normalize(t, dim=-1) for t in (img, txt, auth))
    consistency = scale * (img_n * txt_n).sum(dim=-1)
    probs = (scale * img_n @ auth_n.t()).softmax(dim=-1)
    authenticity = (probs * net.levels.to(probs.dtype)).sum(dim=-1)
    t2i, i2t = net.cia_layer(img[None], txt[None])
    quality = net.head(torch.cat([t2i, i2t], dim=-1)[0])[:, 0]
    return {'quality': quality, 'authenticity': authenticity, 'consistency': consistency}


def agiqa_text_reference(net):
    return F.normalize(net.prompt_learner(net.backbone), dim=-1)


def agiqa_reference(net, x):
    """(B,) quality with the class prompts encoded now (the code before the caching)."""
    img = F.normalize(net.backbone.encode_image(net.preprocess(x)), dim=-1)
    txt = agiqa_text_reference(net).flatten().to(img.dtype)
    return net.head(torch.cat([img, txt.expand(img.shape[0], -1)], dim=1))[:, 0]


def cianet_output(net, name, x, prompts):
    net.output = name
    try:
        return net(x, prompt=prompts)
    finally:
        net.output = None


# ----- CIA-Net: same scores, only the work each output needs -----
@pytest.mark.parametrize('name', [None, 'quality', 'authenticity', 'consistency'])
def test_cianet_scores_equal_the_full_computation(name):
    net = cianet()
    x = images()
    with torch.no_grad():
        expected = cianet_reference(net, x, PROMPTS)
        for _ in range(2):  # the first call fills the cache, the second reads it
            out = cianet_output(net, name, x, PROMPTS)
            if name is None:
                assert list(out) == list(CIANet.output_names)
                assert all(torch.equal(out[k], expected[k]) for k in expected)
            else:
                assert out.shape == (4, 1) and torch.equal(out[:, 0], expected[name])


def test_cianet_authenticity_texts_are_encoded_once():
    net = cianet()
    runs, texts = text_runs(net), record_texts(net)
    x = images()
    with torch.no_grad():
        cianet_output(net, 'authenticity', x, PROMPTS)
        assert runs.sizes == [N_AUTH] and texts == [authenticity_texts()]
        for name in ('authenticity', 'authenticity', None):
            runs.reset()
            cianet_output(net, name, x, PROMPTS)
            assert runs.sizes == ([] if name else [len(PROMPTS)])  # the dict path encodes the prompts only
    assert authenticity_texts() not in texts[1:]


def test_cianet_authenticity_encodes_no_prompt_and_runs_no_cia_layer():
    net = cianet(output='authenticity')
    texts = record_texts(net)
    runs, cia, head = text_runs(net), Runs(net.cia_layer), Runs(net.head)
    with torch.no_grad():
        first = net(images(), prompt=PROMPTS)
        second = net(images(), prompt=PROMPTS)
    assert torch.equal(first, second)
    assert texts == [authenticity_texts()] and runs.sizes == [N_AUTH]  # never a prompt
    assert cia.count == head.count == 0
    # the prompt is still required and checked, as for the other CIA-Net outputs
    for prompt in (None, ['a cat', ''], 'one prompt for four images'):
        with pytest.raises(PromptError):
            net(images(), prompt=prompt)


@pytest.mark.parametrize('output, quality_runs', [('consistency', 0), ('quality', 1)])
def test_cianet_prompt_outputs_run_no_authenticity_texts_and_only_their_head(output, quality_runs):
    net = cianet(output=output)
    texts = record_texts(net)
    runs, cia, head = text_runs(net), Runs(net.cia_layer), Runs(net.head)
    with torch.no_grad():
        net(images(), prompt=PROMPTS)
    assert texts == [PROMPTS] and runs.sizes == [len(PROMPTS)]
    assert cia.count == head.count == quality_runs  # the CIA layer and head serve quality only


def test_cianet_each_distinct_prompt_is_encoded_once_per_batch():
    net = cianet()
    prompts = ['a cat', 'a dog', 'a cat', 'a cat', 'a dog', 'a tree']
    x = images(6)
    with torch.no_grad():
        expected = cianet_reference(net, x, prompts)
        net(x[:1], prompt=['warm-up'])  # fills the authenticity cache
        runs = text_runs(net)
        out = net(x, prompt=prompts)
    assert runs.sizes == [3]  # 'a cat', 'a dog', 'a tree'
    assert all(torch.equal(out[k], expected[k]) for k in expected)


def test_cianet_metrics_reuse_the_authenticity_texts(no_network):
    torch.manual_seed(2)
    metric = pyiqa.create_metric('cianet_authenticity', device='cpu', **TINY)
    runs = text_runs(metric.net)
    x = torch.rand(2, 3, 32, 32)
    first = metric(x, prompt=['a cat', 'a dog'])
    second = metric(x, prompt=['a tree', 'a house'])
    assert runs.sizes == [N_AUTH] and torch.equal(first, second)
    with torch.no_grad():
        assert torch.equal(first[:, 0], cianet_reference(metric.net, x, ['a cat', 'a dog'])['authenticity'])
    with pytest.raises(PromptError):
        metric(x)


# ----- CIA-Net: never stale -----
def _assert_cianet_fresh(net, x, atol=0.0):
    """Every single output and the dict equal a computation done now, and the cached texts
    equal freshly encoded ones."""
    with torch.no_grad():
        expected = cianet_reference(net, x, PROMPTS)
        auth = net.backbone.encode_text(authenticity_texts())
        assert torch.equal(net.authenticity_embeddings(), auth)
        for name in CIANet.output_names:
            got = cianet_output(net, name, x, PROMPTS)[:, 0].float()
            assert torch.allclose(got, expected[name].float(), atol=atol, rtol=0), name
        out = net(x, prompt=PROMPTS)
        assert all(torch.allclose(out[k].float(), expected[k].float(), atol=atol, rtol=0) for k in expected)
    return expected


def test_cianet_cache_follows_an_optimiser_step_on_the_text_tower():
    net = cianet()
    x = images()
    before = _assert_cianet_fresh(net, x)
    optim = torch.optim.SGD(net.backbone.text_parameters(), lr=0.5)
    for p in net.backbone.text_parameters():
        p.grad = torch.randn_like(p) * 0.05
    optim.step()  # in place, no forward in between: only the version counters say so
    runs = text_runs(net)
    after = _assert_cianet_fresh(net, x)
    assert N_AUTH in runs.sizes  # recomputed
    assert not torch.allclose(before['authenticity'], after['authenticity'])


def test_cianet_cache_follows_load_state_dict():
    net, other = cianet(seed=2), cianet(seed=5)
    x = images()
    before = _assert_cianet_fresh(net, x)
    net.load_state_dict(other.state_dict())
    after = _assert_cianet_fresh(net, x)
    with torch.no_grad():
        assert torch.equal(after['authenticity'], cianet_reference(other, x, PROMPTS)['authenticity'])
    assert not torch.allclose(before['authenticity'], after['authenticity'])


def test_cianet_cache_follows_train_eval_dtype_and_precision():
    net = cianet()
    x = images()
    _assert_cianet_fresh(net, x)
    runs = text_runs(net)
    net.train()
    with torch.no_grad():
        net.output = 'authenticity'
        net(x, prompt=PROMPTS)
        net.output = None
    assert runs.sizes == [N_AUTH]  # another mode, recomputed
    net.eval()
    runs.reset()
    _assert_cianet_fresh(net, x)
    assert N_AUTH in runs.sizes
    with torch.no_grad():
        fp32 = net.authenticity_embeddings()
        net.to(torch.float64)  # the towers in float64: the texts are encoded again, in float64
        runs.reset()
        assert torch.equal(net.authenticity_embeddings(), net.backbone.encode_text(authenticity_texts()))
        assert runs.sizes == [N_AUTH, N_AUTH] and not torch.equal(net.authenticity_embeddings(), fp32)
    net.to(torch.float32)
    _assert_cianet_fresh(net, x)
    set_precision(net, 'bf16')
    with torch.no_grad():
        bf16 = net.authenticity_embeddings()
        assert torch.equal(bf16, net.backbone.encode_text(authenticity_texts())) and not torch.equal(bf16, fp32)
        expected = cianet_reference(net, x, PROMPTS)
        for name in CIANet.output_names:
            assert torch.equal(cianet_output(net, name, x, PROMPTS)[:, 0].float(), expected[name].float())
    set_precision(net, 'fp32')
    _assert_cianet_fresh(net, x)


def test_cianet_cache_follows_autocast():
    net = cianet(output='authenticity')
    x = images()
    with torch.no_grad():
        plain = cianet_reference(net, x, PROMPTS)['authenticity']
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = cianet_reference(net, x, PROMPTS)['authenticity']
            assert torch.equal(net(x, prompt=PROMPTS)[:, 0], mixed)
        assert torch.equal(net(x, prompt=PROMPTS)[:, 0], plain)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert torch.equal(net(x, prompt=PROMPTS)[:, 0], mixed)
    assert not torch.equal(plain, mixed)


def test_values_are_kept_apart_by_grad_and_inference_mode():
    """A frozen network used with autograd (gradients w.r.t. the image) reuses no value from
    inference / no-grad mode, where kernels may differ and inference tensors cannot be saved."""
    for net, runs_per_call, call, reference in [
            (cianet(output='authenticity'), N_AUTH, lambda net, x: net(x, prompt=PROMPTS)[:, 0],
             lambda net, x: cianet_reference(net, x, PROMPTS)['authenticity']),
            (clip_agiqa(), 6, lambda net, x: net(x)['quality'], agiqa_reference)]:
        net.requires_grad_(False)
        runs, x = text_runs(net), images()
        for _ in range(2):
            with torch.inference_mode():
                call(net, x)
        assert runs.sizes == [runs_per_call]
        x.requires_grad_(True)
        for _ in range(2):
            out = call(net, x)
            out.sum().backward()
        assert x.grad.abs().sum() > 0 and runs.sizes == [runs_per_call] * 2
        assert torch.equal(out, reference(net, x))
        with torch.no_grad():
            runs.reset()
            assert torch.equal(call(net, x), reference(net, x))
        assert runs.sizes.count(runs_per_call) == 2  # recomputed once (+ once by the reference)


# ----- CIA-Net: training unchanged -----
def _cianet_loss(out):
    return out['quality'].pow(2).mean() + out['authenticity'].mean() + out['consistency'].mean()


def _assert_same_grads(net, ref):
    for (name, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize('stage', ['all', 'backbone_frozen'])
def test_cianet_training_gradients_are_unchanged(stage):
    net = cianet().train()
    if stage == 'backbone_frozen':  # stage 1 of the recipe
        for n, p in net.named_parameters():
            p.requires_grad_(not n.startswith('backbone.'))
    ref = copy.deepcopy(net)
    optims = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1) for m in (net, ref)]
    runs = text_runs(net)
    for step in range(3):
        x = images(seed=step)
        out, expected = net(x, prompt=PROMPTS), cianet_reference(ref, x, PROMPTS)
        assert all(torch.equal(out[k], expected[k]) for k in expected)
        for m, loss, optim in zip((net, ref), (_cianet_loss(out), _cianet_loss(expected)), optims):
            optim.zero_grad()
            loss.backward()
        _assert_same_grads(net, ref)
        for optim in optims:
            optim.step()
    if stage == 'all':  # stage 2: the authenticity texts are in the graph at every step
        assert runs.sizes == [len(PROMPTS), N_AUTH] * 3
        assert net.backbone.model.token_embedding.weight.grad.abs().sum() > 0
    else:  # the frozen text tower: the authenticity texts once, the prompts at every step
        assert runs.sizes == [len(PROMPTS), N_AUTH, len(PROMPTS), len(PROMPTS)]


def test_cianet_authenticity_loss_reaches_the_text_tower():
    net = cianet().train()
    net(images(), prompt=PROMPTS)  # with autograd: nothing is cached
    out = net(images(), prompt=PROMPTS)
    out['authenticity'].sum().backward()
    assert net.backbone.model.token_embedding.weight.grad.abs().sum() > 0
    assert net.backbone.model.ln_final.weight.grad.abs().sum() > 0


# ----- CLIP-AGIQA -----
def test_clip_agiqa_scores_equal_the_full_computation_and_texts_run_once():
    net = clip_agiqa()
    runs = text_runs(net)
    x = images()
    with torch.no_grad():
        expected = agiqa_reference(net, x)
        runs.reset()
        for _ in range(3):
            assert torch.equal(net(x)['quality'], expected)
        assert runs.sizes == [6]  # the six class prompts, once
        net.output = 'quality'
        assert torch.equal(net(x)[:, 0], expected) and runs.sizes == [6]
        assert torch.equal(net.text_features(), agiqa_text_reference(net))


def test_clip_agiqa_metric_runs_only_the_image_tower_after_the_first_batch(no_network):
    torch.manual_seed(0)
    metric = pyiqa.create_metric('clip_agiqa', device='cpu', **TINY)
    runs, visual = text_runs(metric.net), Runs(metric.net.backbone.model.visual)
    x = torch.rand(2, 3, 32, 32)
    scores = [metric(x) for _ in range(3)]
    assert runs.sizes == [6] and visual.count == 3
    assert all(torch.equal(s, scores[0]) for s in scores)
    with torch.no_grad():
        assert torch.equal(scores[0][:, 0], agiqa_reference(metric.net, x))


def _assert_agiqa_fresh(net, x, atol=0.0):
    with torch.no_grad():
        texts = agiqa_text_reference(net)
        assert torch.allclose(net.text_features().float(), texts.float(), atol=atol, rtol=0)
        assert torch.allclose(net(x)['quality'].float(), agiqa_reference(net, x).float(), atol=atol, rtol=0)
    return texts


def test_clip_agiqa_cache_follows_an_optimiser_step_on_the_context():
    net = clip_agiqa()
    x = images()
    before = _assert_agiqa_fresh(net, x)
    optim = torch.optim.SGD([net.prompt_learner.ctx], lr=1.0)
    net.prompt_learner.ctx.grad = torch.randn_like(net.prompt_learner.ctx)
    optim.step()
    after = _assert_agiqa_fresh(net, x)
    assert not torch.allclose(before, after)
    # a change of the frozen text tower counts too
    with torch.no_grad():
        for p in (net.backbone.model.ln_final.weight, net.backbone.model.text_projection):
            p.add_(torch.randn_like(p) * 0.1)
    assert not torch.allclose(after, _assert_agiqa_fresh(net, x))


def test_clip_agiqa_cache_follows_load_state_dict_mode_dtype_and_precision():
    net, other = clip_agiqa(seed=0), clip_agiqa(seed=7)
    x = images()
    before = _assert_agiqa_fresh(net, x)
    net.load_state_dict(other.state_dict())
    after = _assert_agiqa_fresh(net, x)
    assert not torch.allclose(before, after)
    with torch.no_grad():
        assert torch.equal(after, agiqa_text_reference(other))
    runs = text_runs(net)
    net.train()
    with torch.no_grad():
        net.text_features()
    net.eval()
    with torch.no_grad():
        net.text_features()
    assert runs.sizes == [6, 6]  # each mode change recomputes
    with torch.no_grad():
        fp32 = net.text_features()
        net.to(torch.float64)
        runs.reset()
        assert torch.equal(net.text_features(), agiqa_text_reference(net))
        assert runs.sizes == [6, 6] and not torch.equal(net.text_features(), fp32)
    net.to(torch.float32)
    _assert_agiqa_fresh(net, x)
    set_precision(net, 'bf16')
    with torch.no_grad():
        bf16 = net.text_features()
        assert torch.equal(bf16, agiqa_text_reference(net)) and not torch.equal(bf16, fp32)
        assert torch.equal(net(x)['quality'].float(), agiqa_reference(net, x).float())
    set_precision(net, 'fp32')
    _assert_agiqa_fresh(net, x)


def test_clip_agiqa_cache_follows_autocast():
    net = clip_agiqa()
    x = images()
    with torch.no_grad():
        plain = agiqa_reference(net, x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = agiqa_reference(net, x)
            assert torch.equal(net(x)['quality'], mixed)
        assert torch.equal(net(x)['quality'], plain)
    assert not torch.equal(plain, mixed)


def test_clip_agiqa_training_recomputes_texts_and_gradients_are_unchanged():
    net = clip_agiqa().train()
    ref = copy.deepcopy(net)
    optims = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
              for m in (net, ref)]
    runs = text_runs(net)
    for step in range(3):
        x, mos = images(seed=step, size=(64, 64)), torch.rand(4) * 5
        torch.manual_seed(10 + step)  # random resized crops and dropout alike for both
        pred = net(x)['quality']
        torch.manual_seed(10 + step)
        expected = agiqa_reference(ref, x)
        assert torch.equal(pred, expected)
        for loss, optim in zip(((pred - mos).pow(2).mean(), (expected - mos).pow(2).mean()), optims):
            optim.zero_grad()
            loss.backward()
        _assert_same_grads(net, ref)
        assert net.prompt_learner.ctx.grad.abs().sum() > 0
        for optim in optims:
            optim.step()
    assert runs.sizes == [6] * 3  # in the graph at every step, never cached
    # eval mode with autograd on (e.g. a saliency map): still in the graph, gradients reach ctx
    net.eval().zero_grad()
    net(images())['quality'].sum().backward()
    assert net.prompt_learner.ctx.grad.abs().sum() > 0 and runs.sizes == [6] * 4
