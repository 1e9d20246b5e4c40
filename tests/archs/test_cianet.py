"""CIA-Net: outputs and ranges, formulas checked by independent computations (consistency,
authenticity, the length-one CIA layer), batch independence, the pairwise fidelity loss, metric
entries, the published architecture, and training with the shipped option files."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import pyiqa
import pyiqa_agiqa  # noqa: F401
import pyiqa_agiqa.archs.cianet_arch  # noqa: F401  (registers CIANet before archs/__init__ does)
import pyiqa_agiqa.losses  # noqa: F401  (registers PairwiseFidelityLoss)
from pyiqa_agiqa.archs.cianet_arch import CIANet, QuickGELU, authenticity_texts
from pyiqa_agiqa.losses import PairwiseFidelityLoss
from pyiqa_agiqa.prompt_args import PromptError

from conftest import REPO, dataset_opt, rounding

TINY_CIA = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False)
PROMPTS = ['a red circle on a blue background', 'a cat', 'two green squares', 'a tree at night']


@pytest.fixture(scope='module')
def tiny_net():
    torch.manual_seed(2)  # a seed whose quality head is not dead (ReLU output > 0) at init
    return CIANet(**TINY_CIA).eval()


# ----- outputs, parameters -----
def test_outputs_shapes_and_ranges(tiny_net):
    torch.manual_seed(0)
    with torch.no_grad():
        out = tiny_net(torch.rand(4, 3, 40, 56), prompt=PROMPTS)
    assert list(out) == ['quality', 'authenticity', 'consistency'] == list(CIANet.output_names)
    assert all(v.shape == (4,) for v in out.values())
    scale = tiny_net.backbone.logit_scale().item()
    # open_clip's random init exp(log(1/0.07)): log(1/0.07) ~ 2.7 rounded to float32, then exp
    assert scale == pytest.approx(1 / 0.07, rel=rounding(torch.float32, ops=4))
    assert (out['quality'] >= 0).all() and (out['quality'] > 0).any()
    assert ((out['authenticity'] >= 1) & (out['authenticity'] <= 5)).all()
    # |cosine| <= 1 up to the rounding of two normalisations and a dot product over embed_dim entries
    d = tiny_net.backbone.embed_dim
    assert (out['consistency'].abs() <= scale + rounding(torch.float32, scale, ops=3 * d)).all()


@pytest.mark.parametrize('name', ['quality', 'authenticity', 'consistency'])
def test_output_selection_returns_b_by_1(tiny_net, name):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        full = tiny_net(x, prompt=PROMPTS[:2])
        try:
            tiny_net.output = name
            selected = tiny_net(x, prompt=PROMPTS[:2])
        finally:
            tiny_net.output = None
    assert selected.shape == (2, 1) and torch.equal(selected[:, 0], full[name])


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="output must be None or one of"):
        CIANet(output='score', **TINY_CIA)


def test_trainable_parameters_and_where_gradients_go():
    torch.manual_seed(2)
    net = CIANet(**TINY_CIA).train()
    names = [n for n, _ in net.named_parameters()]
    assert all(n.split('.')[0] in ('backbone', 'cia_layer', 'head') for n in names)
    assert all(p.requires_grad for p in net.parameters())  # logit scale included (stage 2)
    assert 'backbone.model.logit_scale' in names
    # stage 1 freezes the prefix `backbone.`: the CIA layer and the head remain
    for n, p in net.named_parameters():
        p.requires_grad_(not n.startswith('backbone.'))
    trainable = {n.split('.')[0] for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {'cia_layer', 'head'}
    for p in net.parameters():
        p.requires_grad_(True)
    out = net(torch.rand(4, 3, 32, 32), prompt=PROMPTS)
    out['consistency'].sum().backward(retain_graph=True)
    assert net.backbone.model.logit_scale.grad is not None and net.backbone.model.logit_scale.grad != 0
    assert all(p.grad is None for p in net.cia_layer.parameters())  # consistency bypasses the CIA layer
    net.zero_grad()
    out['quality'].sum().backward()
    assert net.head.fc1[0].weight.grad.abs().sum() > 0
    assert net.cia_layer.self_attention11.attn.in_proj_weight.grad.abs().sum() > 0
    assert net.backbone.model.visual.conv1.weight.grad.abs().sum() > 0
    assert net.backbone.model.token_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('prompt, size, message', [
    (None, 1, 'text-conditioned'),
    ('a cat', 2, 'one prompt \\(str\\) was given for a batch of 2'),
    (['a cat', ''], 2, 'empty'),
])
def test_prompt_errors(tiny_net, prompt, size, message):
    with pytest.raises(PromptError, match=message):
        tiny_net(torch.rand(size, 3, 32, 32), prompt=prompt)


# ----- formulas, computed independently -----
def test_preprocessing_resizes_the_shorter_side_then_crops_the_centre(tiny_net):
    x = torch.rand(2, 3, 40, 56)
    expected = F.interpolate(x, size=(32, 44), mode='bilinear', antialias=True, align_corners=False)[..., 6:38]
    taps = rounding(torch.float32, ops=16)  # bilinear (antialiased) on [0, 1] pixels: a few taps per axis
    assert torch.allclose(tiny_net.preprocess(x), expected, atol=taps, rtol=0)
    small = torch.rand(1, 3, 20, 20)  # below the input size: upsampled
    assert torch.allclose(tiny_net.preprocess(small),
                          F.interpolate(small, size=(32, 32), mode='bilinear', antialias=True), atol=taps, rtol=0)
    square = torch.rand(1, 3, 32, 32)
    assert tiny_net.preprocess(square) is square


def hand_consistency_authenticity(net, x, prompts):
    """Consistency and authenticity of 48 x 32 images x, written out with open_clip's encoders
    and NumPy (float64 after the encoders)."""
    with torch.no_grad():
        crop = F.interpolate(x, size=(48, 32), mode='bilinear')  # already 32 wide: resize is a no-op
        crop = crop[:, :, 8:40, :]
        img = net.backbone.model.encode_image((crop - net.backbone.mean) / net.backbone.std)
        txt = net.backbone.model.encode_text(net.backbone.tokenize(prompts))
        auth = net.backbone.model.encode_text(net.backbone.tokenize(
            [f'The authenticity of the image is {d}' for d in ['bad', 'poor', 'fair', 'good', 'excellent']]))
        scale = float(np.exp(net.backbone.model.logit_scale.double().item()))
    img, txt, auth = (t.numpy().astype(np.float64) for t in (img, txt, auth))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    auth /= np.linalg.norm(auth, axis=1, keepdims=True)
    consistency = scale * (img * txt).sum(axis=1)
    logits = scale * img @ auth.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return consistency, probs @ np.arange(1, 6)


def test_consistency_and_authenticity_match_hand_computation(tiny_net):
    torch.manual_seed(1)
    x = torch.rand(3, 3, 48, 32)
    prompts = PROMPTS[:3]
    with torch.no_grad():
        out = tiny_net(x, prompt=prompts)
    consistency, authenticity = hand_consistency_authenticity(tiny_net, x, prompts)
    assert authenticity_texts()[4] == 'The authenticity of the image is excellent'
    scale = float(tiny_net.backbone.logit_scale().detach())
    np.testing.assert_allclose(out['consistency'].numpy(), consistency, atol=rounding(torch.float32, scale))
    np.testing.assert_allclose(out['authenticity'].numpy(), authenticity, atol=rounding(torch.float32, 5 * scale))


def _ln(x, m):
    return F.layer_norm(x, (x.shape[-1],), m.weight, m.bias, m.eps)


def _single_key_attention(kv, mha):
    """Attention with one key: softmax = 1, so the output is out_proj(v_proj(kv))."""
    d = kv.shape[-1]
    v = kv @ mha.in_proj_weight[2 * d:].T + mha.in_proj_bias[2 * d:]
    return v @ mha.out_proj.weight.T + mha.out_proj.bias


def _mlp(x, m):
    h = x @ m.c_fc.weight.T + m.c_fc.bias
    h = h * torch.sigmoid(1.702 * h)
    return h @ m.c_proj.weight.T + m.c_proj.bias


def _self_block(x, b):
    x = x + _single_key_attention(_ln(x, b.ln_1), b.attn)
    return x + _mlp(_ln(x, b.ln_2), b.mlp)


def _cross_block(kv, b):  # the query does not matter with a single key
    v = kv + _single_key_attention(_ln(kv, b.ln_2), b.attn)
    return v + _mlp(_ln(v, b.ln_3), b.mlp)


def test_cia_layer_with_length_one_sequences_matches_hand_computation(tiny_net):
    torch.manual_seed(3)
    d = tiny_net.backbone.embed_dim
    img, txt = torch.randn(5, d) * 3, torch.randn(5, d) * 3
    cia = tiny_net.cia_layer
    with torch.no_grad():
        quality = tiny_net.quality_from_embeddings(img, txt)
        t2i, i2t = cia(img[None], txt[None])
        i1, t1 = _self_block(img, cia.self_attention11), _self_block(txt, cia.self_attention21)
        t2i_hand = _self_block(_cross_block(i1, cia.cross_attention1), cia.self_attention12)
        i2t_hand = _self_block(_cross_block(t1, cia.cross_attention2), cia.self_attention22)
        head = tiny_net.head
        h = torch.relu(torch.cat([t2i_hand, i2t_hand], dim=1) @ head.fc1[0].weight.T + head.fc1[0].bias)
        q_hand = torch.relu(h @ head.fc2[0].weight.T + head.fc2[0].bias)[:, 0]
        # consequence of length one: the text->image branch ignores the text, and vice versa
        t2i_other, i2t_other = cia(img[None], torch.randn(1, 5, d))
    assert t2i.shape == (1, 5, d)
    # two float32 computations of the layer (open_clip's and the written-out one), each within
    # rounding() of the exact value at the magnitude of the branch outputs
    branch = 2 * rounding(torch.float32, scale=float(torch.cat([t2i_hand, i2t_hand]).abs().max()))
    assert torch.allclose(t2i[0], t2i_hand, atol=branch, rtol=0)
    assert torch.allclose(i2t[0], i2t_hand, atol=branch, rtol=0)
    assert torch.allclose(quality, q_hand, atol=branch, rtol=0)  # the head works on the branch outputs
    # a single key: the softmax is exactly 1, so the branch sees nothing of the text, bit for bit
    assert torch.equal(t2i_other, t2i) and not torch.allclose(i2t_other, i2t)


def hand_quality(net, img, txt):
    """Quality from (B, D) embeddings through the written-out CIA layer and head."""
    cia, head = net.cia_layer, net.head
    i1, t1 = _self_block(img, cia.self_attention11), _self_block(txt, cia.self_attention21)
    t2i = _self_block(_cross_block(i1, cia.cross_attention1), cia.self_attention12)
    i2t = _self_block(_cross_block(t1, cia.cross_attention2), cia.self_attention22)
    h = torch.relu(torch.cat([t2i, i2t], dim=1) @ head.fc1[0].weight.T + head.fc1[0].bias)
    return torch.relu(h @ head.fc2[0].weight.T + head.fc2[0].bias)[:, 0]


def test_float64_network_matches_float32_and_the_hand_computation(tiny_net):
    """``.double()`` computes in float64 end to end (the CIA layer and head included): every output
    agrees with the float32 network to float32 rounding and with the written-out formulas to
    float64 rounding."""
    net64 = copy.deepcopy(tiny_net).double()
    torch.manual_seed(1)
    x = torch.rand(3, 3, 48, 32, dtype=torch.float64)
    prompts = PROMPTS[:3]
    with torch.no_grad():
        out64, out32 = net64(x, prompt=prompts), tiny_net(x.float(), prompt=prompts)
        quality = hand_quality(net64, net64.image_embeddings(x), net64.prompt_embeddings(prompts))
    consistency, authenticity = hand_consistency_authenticity(net64, x, prompts)
    scale = float(net64.backbone.logit_scale().detach())
    ranges = {'quality': float(out64['quality'].abs().max()) + 1, 'authenticity': 5 * scale, 'consistency': scale}
    for name in CIANet.output_names:
        assert out64[name].dtype == torch.float64
        np.testing.assert_allclose(out32[name].double().numpy(), out64[name].numpy(),
                                   atol=rounding(torch.float32, ranges[name]))
    assert (out64['quality'] > 0).all()  # the seed's head is alive: the comparison is not of zeros
    np.testing.assert_allclose(out64['quality'].numpy(), quality.numpy(),
                               atol=rounding(torch.float64, ranges['quality']))
    np.testing.assert_allclose(out64['consistency'].numpy(), consistency, atol=rounding(torch.float64, scale))
    np.testing.assert_allclose(out64['authenticity'].numpy(), authenticity, atol=rounding(torch.float64, 5 * scale))


def test_batch_independence(tiny_net):
    torch.manual_seed(4)
    images = torch.rand(4, 3, 32, 40)
    with torch.no_grad():
        together = tiny_net(images, prompt=PROMPTS)
        alone = [tiny_net(images[i:i + 1], prompt=[PROMPTS[i]]) for i in range(4)]
        swapped = tiny_net(torch.cat([images[:1], torch.rand(3, 3, 32, 40)]), prompt=[PROMPTS[0], 'x', 'y', 'z'])
    scale = float(tiny_net.backbone.logit_scale())
    ranges = {'quality': float(together['quality'].abs().max()) + 1, 'authenticity': 5 * scale, 'consistency': scale}
    for name in CIANet.output_names:  # other batches: two float32 runs, each within rounding() of the exact value
        tolerance = 2 * rounding(torch.float32, ranges[name])
        assert torch.allclose(together[name], torch.cat([a[name] for a in alone]), atol=tolerance, rtol=0)
        assert torch.allclose(together[name][0], swapped[name][0], atol=tolerance, rtol=0)


# ----- pairwise fidelity loss -----
def test_fidelity_loss_matches_hand_computation_on_three_items():
    pred = torch.tensor([[0.3], [-0.2], [0.5]], requires_grad=True)
    mos = torch.tensor([[2.0], [1.0], [2.0]])

    def phi(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    def fid(p, g):
        return 1 - math.sqrt(p * g + 1e-8) - math.sqrt((1 - p) * (1 - g) + 1e-8)

    # pairs i < j: (0, 1) mos 2 > 1 -> g = 1; (0, 2) equal -> 0.5; (1, 2) 1 < 2 -> 0
    hand = (fid(phi(0.5), 1.0) + fid(phi(-0.2), 0.5) + fid(phi(-0.7), 0.0)) / 3
    loss = PairwiseFidelityLoss(loss_weight=2.0)(pred, mos)
    # a handful of float32 operations per pair on values <= 1, then a weight of 2
    tolerance = rounding(torch.float32, scale=2, ops=16)
    assert loss.item() == pytest.approx(2 * hand, abs=tolerance)
    loss.backward()
    assert pred.grad.abs().sum() > 0
    # a perfect, well separated ranking costs about nothing (1 - sqrt(1 + 1e-8) - sqrt(1e-8), about
    # -1e-4: the 1e-8 keeps the square roots differentiable); the reverse ranking about 1 - 2e-4
    mos3 = torch.tensor([[3.], [2.], [1.]])
    good = PairwiseFidelityLoss()(torch.tensor([[10.], [0.], [-10.]]), mos3)
    bad = PairwiseFidelityLoss()(torch.tensor([[-10.], [0.], [10.]]), mos3)
    good_hand = (2 * fid(phi(10.0), 1.0) + fid(phi(20.0), 1.0)) / 3
    bad_hand = (2 * fid(phi(-10.0), 1.0) + fid(phi(-20.0), 1.0)) / 3
    assert good_hand == pytest.approx(-1e-4, rel=1e-3) and bad_hand == pytest.approx(1 - 2e-4, rel=1e-6)
    assert good.item() == pytest.approx(good_hand, abs=rounding(torch.float32, ops=16))
    assert bad.item() == pytest.approx(bad_hand, abs=rounding(torch.float32, ops=16))


def test_fidelity_loss_edge_cases_and_registration():
    from pyiqa.losses import build_loss

    loss = build_loss({'type': 'PairwiseFidelityLoss', 'loss_weight': 1.0})
    assert isinstance(loss, PairwiseFidelityLoss)
    one = torch.tensor([[0.7]], requires_grad=True)
    value = loss(one, torch.tensor([[3.0]]))
    assert value.item() == 0.0
    value.backward()  # no pair: zero loss, still differentiable
    with pytest.raises(NotImplementedError):
        loss(torch.rand(3, 1), torch.rand(3, 1), weight=torch.ones(3, 1))
    with pytest.raises(ValueError, match='must be \\(B,\\) or \\(B, 1\\)'):
        loss(torch.rand(3, 2), torch.rand(3, 2))


# ----- metric entries, published architecture -----
def test_create_metric_for_the_three_outputs(no_network):
    torch.manual_seed(2)
    x = torch.rand(1, 3, 50, 70)
    metrics = {name: pyiqa.create_metric(name, device='cpu', **TINY_CIA)
               for name in ('cianet', 'cianet_authenticity', 'cianet_consistency')}
    scores = {name: m(x, prompt='a red circle') for name, m in metrics.items()}
    assert all(s.shape == (1, 1) for s in scores.values())
    assert scores['cianet'].item() >= 0
    assert 1 <= scores['cianet_authenticity'].item() <= 5
    assert abs(scores['cianet_consistency'].item()) <= 100
    assert metrics['cianet_consistency'].score_range == '-100, 100'
    assert all(m.lower_better is False for m in metrics.values())


def test_published_architecture_vit_b32():
    torch.manual_seed(0)
    net = CIANet(pretrained=False).eval()
    visual, model = net.backbone.model.visual, net.backbone.model
    assert len(model.transformer.resblocks) == 12 and model.transformer.width == 512
    assert len(visual.transformer.resblocks) == 12 and visual.conv1.kernel_size == (32, 32)
    assert net.backbone.image_size == 224 and net.backbone.embed_dim == 512
    blocks = [net.cia_layer.self_attention11, net.cia_layer.self_attention21, net.cia_layer.cross_attention1,
              net.cia_layer.cross_attention2, net.cia_layer.self_attention12, net.cia_layer.self_attention22]
    for b in blocks:
        assert b.attn.embed_dim == 512 and b.attn.num_heads == 8 and b.attn.batch_first is False
        assert b.attn.in_proj_weight.shape == (1536, 512) and b.mlp.c_fc.weight.shape == (2048, 512)
        assert b.mlp.c_proj.weight.shape == (512, 2048) and isinstance(b.mlp.gelu, QuickGELU)
    self_block = 4 * 512 * 512 + 4 * 512 + 2 * 2 * 512 + 512 * 2048 + 2048 + 2048 * 512 + 512
    assert sum(p.numel() for p in net.cia_layer.parameters()) == 6 * self_block + 2 * 2 * 512
    assert net.head.fc1[0].weight.shape == (256, 1024) and net.head.fc2[0].weight.shape == (1, 256)
    assert isinstance(net.head.fc2[1], torch.nn.ReLU)
    with torch.no_grad():
        out = net(torch.rand(1, 3, 300, 240), prompt='a cat')
    assert out['quality'].item() >= 0 and 1 <= out['authenticity'].item() <= 5
    d = net.backbone.embed_dim  # |cosine| <= 1 up to two normalisations and a dot product over d entries
    assert abs(out['consistency'].item()) <= 1 / 0.07 + rounding(torch.float32, 1 / 0.07, ops=3 * d + 4)


# ----- training -----
def _demo_batch(demo_data, n=8):
    from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset

    opt = dataset_opt(demo_data, 'train', views=None, augment={'resize': 32, 'center_crop': 32})
    return next(iter(torch.utils.data.DataLoader(AGIQADataset(opt), batch_size=n, shuffle=False)))


def test_direct_optimisation_lowers_the_loss(demo_data):
    torch.manual_seed(2)
    net = CIANet(**TINY_CIA).train()
    batch = _demo_batch(demo_data)
    assert batch['img'].shape == (8, 3, 32, 32)
    mse, fidelity = pyiqa.losses.MSELoss(), PairwiseFidelityLoss()
    optim = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    losses = []
    for _ in range(8):
        out = net(batch['img'], prompt=list(batch['prompt']))
        loss = (mse(out['quality'][:, None], batch['labels']['mos_quality'][:, None])
                + fidelity(out['consistency'][:, None], batch['labels']['mos_correspondence'][:, None]))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.5 * losses[0], losses


def _option_file(name):
    return yaml.safe_load((REPO / 'options' / name).read_text())


def test_option_files_hold_the_published_recipe():
    for name, targets in [('cianet_agiqa3k.yml', ['quality', 'consistency']),
                          ('cianet_aigciqa2023.yml', ['quality', 'authenticity', 'consistency']),
                          ('cianet_pku_i2iqa.yml', ['quality', 'authenticity', 'consistency'])]:
        opt = _option_file(name)
        assert opt['manual_seed'] == 2222 and opt['network']['type'] == 'CIANet'
        assert opt['network']['clip_model'] == 'ViT-B-32-quickgelu'
        assert list(opt['targets']) == targets
        assert opt['train']['losses']['quality']['type'] == 'MSELoss'
        assert all(opt['train']['losses'][t]['type'] == 'PairwiseFidelityLoss' for t in targets[1:])
        stage1, stage2 = opt['train']['stages']
        assert stage1['epochs'] == 10 and stage1['freeze'] == ['backbone.'] and stage1['losses'] == ['quality']
        assert stage1['optim'] == {'type': 'AdamW', 'lr': 1e-4, 'weight_decay': 1e-3} and 'scheduler' not in stage1
        assert stage2['epochs'] == 100 and not stage2['freeze'] and stage2['reload_best'] is True
        assert stage2['optim'] == {'type': 'AdamW', 'lr': 5e-6, 'weight_decay': 1e-3}
        assert stage2['scheduler'] == {'type': 'MultiStepLR', 'milestones': [60], 'gamma': 0.1}
        assert stage2['early_stop'] == 20 and opt['train']['total_epoch'] == 110
        assert opt['val']['key_metric'] == 'mean_srcc'
        for phase, block in opt['datasets'].items():
            assert block['batch_size_per_gpu'] == 32 and block['split_scheme'] == 'default'
            assert list(block['augment']) == (['resize', 'center_crop', 'hflip'] if phase == 'train'
                                              else ['resize', 'center_crop'])
            assert 'views' not in block and block.get('mos_divisor', 1) == 1


def _tiny_overrides(opt, demo_data, name):
    csv, images = demo_data
    for block in opt['datasets'].values():
        block.update(meta_info_file=str(csv), dataroot_target=str(images), split_scheme='demo',
                     mos_columns=['mos_quality', 'mos_correspondence'], num_worker_per_gpu=0,
                     pin_memory=False, batch_size_per_gpu=9)
        block['augment'] = dict(block['augment'], resize=32, center_crop=32)
    opt['network'].update(TINY_CIA)
    opt.update(name=name, split_num=None, save_final_results_path=None, manual_seed=2)
    opt['val']['val_freq'] = 3  # one epoch: 27 training images / 9
    opt['val']['pbar'] = False
    opt['logger'].update(use_tb_logger=False, print_freq=1)
    return opt


def test_agiqa3k_options_train_without_stages(demo_data, tmp_path, monkeypatch):
    """The AGIQA-3K option file on demo data with a tiny CLIP; `train.stages` is replaced by a
    plain optim / scheduler / total_epoch (the stage runner is tested below)."""
    from pyiqa_agiqa.training.model import AGIQAModel
    from pyiqa_agiqa.training.pipeline import run_training

    logged = []
    original = AGIQAModel.optimize_parameters

    def recording(self, current_iter):
        original(self, current_iter)
        logged.append({k: float(v) for k, v in self.log_dict.items()})

    monkeypatch.setattr(AGIQAModel, 'optimize_parameters', recording)

    opt = _tiny_overrides(_option_file('cianet_agiqa3k.yml'), demo_data, 'cianet_plain')
    train = opt['train']
    train.pop('stages')
    train.update(optim={'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3},
                 scheduler={'type': 'MultiStepLR', 'milestones': [1], 'gamma': 0.1}, total_epoch=2)
    path = tmp_path / 'cianet_plain.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    results = run_training(['-opt', str(path)], root_path=str(tmp_path))
    assert set(results) == {'agiqa3k_val', 'agiqa3k_test'}
    assert {'quality_srcc', 'consistency_srcc'} <= set(results['agiqa3k_val'])
    folder = tmp_path / 'experiments' / 'cianet_plain'
    saved = torch.load(folder / 'models' / 'net_best.pth', weights_only=True)['params']
    assert 'cia_layer.cross_attention1.attn.in_proj_weight' in saved and 'head.fc2.0.weight' in saved
    assert len(logged) == 6 and set(logged[0]) == {'l_quality', 'l_consistency'}
    epoch_loss = [np.mean([d['l_quality'] + d['l_consistency'] for d in logged[i:i + 3]]) for i in (0, 3)]
    assert epoch_loss[1] < epoch_loss[0], epoch_loss


def test_agiqa3k_options_run_with_their_stages(demo_data, tmp_path):
    """The unmodified stage structure of the AGIQA-3K option file, with tiny data, model and
    epochs (1 + 2); the head stage freezes CLIP, the second starts from the best of the first."""
    from pyiqa_agiqa.training.pipeline import run_training

    opt = _tiny_overrides(_option_file('cianet_agiqa3k.yml'), demo_data, 'cianet_stages')
    stage1, stage2 = opt['train']['stages']
    stage1['epochs'], stage2['epochs'] = 1, 2
    stage2['scheduler']['milestones'] = [1]
    opt['train']['total_epoch'] = 3
    path = tmp_path / 'cianet_stages.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    results = run_training(['-opt', str(path)], root_path=str(tmp_path))
    assert 'mean_srcc' in results['agiqa3k_val']
    assert (tmp_path / 'experiments' / 'cianet_stages' / 'models' / 'net_best.pth').is_file()


def test_fine_tuned_weights_load_through_pretrained_model_path(tiny_net, tmp_path):
    path = tmp_path / 'cianet.pth'
    torch.save({'params': tiny_net.state_dict()}, path)
    torch.manual_seed(99)
    loaded = CIANet(clip_model='AGIQA-Tiny-ViT', clip_pretrained=None, pretrained=True,
                    pretrained_model_path=str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = tiny_net(x, prompt=PROMPTS[:2]), loaded(x, prompt=PROMPTS[:2])
    assert all(torch.equal(a[k], b[k]) for k in CIANet.output_names)
