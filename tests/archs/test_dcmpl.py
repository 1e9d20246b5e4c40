"""DCMPL: layout, frozen CLIP, score formula (checked by independent computations), test-time
patching, batch independence, metrics, reference weights, training and the option files."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import pyiqa_agiqa  # noqa: F401  (metric entries)
import pyiqa_agiqa.archs.dcmpl_arch  # noqa: F401  (registers DCMPL until the lead adds it to archs/__init__)
from pyiqa_agiqa.archs.dcmpl_arch import ALIGNMENT_TEXTS, DCMPL, IMAGENET_MEAN, IMAGENET_STD, QUALITY_TEXTS, patch_grid
from pyiqa_agiqa.prompt_args import PromptError

from conftest import REPO, dataset_opt, rounding

TINY_DCMPL = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False, test_stride=16)  # image 32, widths 64, 2 layers
TRAINABLE_PREFIXES = ('prompt_learner_tar.', 'prompt_learner_aux.', 'mpa.', 'image_adapter.')


def tiny_net(seed=0, **kw):
    torch.manual_seed(seed)
    return DCMPL(**dict(TINY_DCMPL, **kw))


@pytest.fixture(scope='module')
def tiny():
    return tiny_net().eval()


def tower_sizes(net):
    """(text width, text layers, vision width, vision layers) read off the open_clip model."""
    m = net.backbone.model
    return (m.transformer.width, len(m.transformer.resblocks),
            m.visual.transformer.width, len(m.visual.transformer.resblocks))


# ----- layout -----
def check_layout(net):
    tw, tl, vw, vl = tower_sizes(net)
    tar, aux = net.prompt_learner_tar, net.prompt_learner_aux
    for learner in (tar, aux):
        assert len(learner.text()) == tl and all(p.shape == (8, tw) for p in learner.text())
        assert len(learner.prompts_vis) == vl and all(p.shape == (8, vw) for p in learner.prompts_vis)
    coupling = [tar.proj, *tar.compound_prompt_projections]
    assert len(coupling) == vl
    assert all((c.in_features, c.out_features) == (2 * vw, vw) for c in coupling)
    assert len(net.mpa) == min(tl, vl) and all(m.text_attn.num_heads == 8 for m in net.mpa)
    d = net.backbone.embed_dim
    shapes = [tuple(layer.weight.shape) for layer in net.image_adapter.fc if hasattr(layer, 'weight')]
    assert shapes == [(d // 4, d), (d, d // 4)]
    return tw, tl, vw, vl


def test_real_vit_b32_layout_and_forward():
    torch.manual_seed(0)
    net = DCMPL(pretrained=False).train()
    assert check_layout(net) == (512, 12, 768, 12)
    assert net.backbone.image_size == 224 and net.backbone.embed_dim == 512
    n_prompts = 2 * (12 * 8 * 512 + 12 * 8 * 768)
    n_coupling = 12 * (1536 * 768 + 768)
    per_mpa = ((512 * 512 + 512) + (768 * 512 + 512)              # text_in, vis_in
               + 2 * (4 * 512 * 512 + 4 * 512)                      # two 8-head attentions (q, k, v, out)
               + (512 * 512 + 512) + (512 * 768 + 768))             # text_out, vis_out
    n_adapter = 2 * 512 * 128
    n_trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert n_trainable == n_prompts + n_coupling + 12 * per_mpa + n_adapter
    with torch.no_grad():
        out = net(torch.rand(1, 3, 224, 224))
    assert set(out) == {'quality', 'alignment'} and all(0 <= float(v) <= 1 for v in out.values())


def test_tiny_layout_follows_the_backbone(tiny):
    tw, tl, vw, vl = check_layout(tiny)
    assert (tiny.text_width, tiny.text_layers, tiny.vision_width, tiny.vision_layers) == (tw, tl, vw, vl)
    texts = [tiny.backbone.tokenizer.decode(t[t > 0].tolist()) for t in tiny.tokens_quality]
    assert [t.replace('<start_of_text>', '').replace('<end_of_text>', '').strip() for t in texts] == \
        ['x x x x x x x x good photo .', 'x x x x x x x x bad photo .']
    expected = tiny.backbone.tokenize([' '.join(['X'] * 8 + [t]) for t in ALIGNMENT_TEXTS])
    assert torch.equal(tiny.tokens_alignment, expected)


def test_switches_remove_modules():
    net = tiny_net(mpa=False, adapter=False, use_aux=False)
    assert net.mpa is None and net.image_adapter is None and net.prompt_learner_aux is None
    assert not hasattr(net.prompt_learner_tar, 'proj')
    out = net.eval()(torch.rand(2, 3, 40, 40))
    assert set(out) == {'quality'} and out['quality'].shape == (2,)
    with pytest.raises(ValueError, match='use_aux'):
        tiny_net(use_aux=False, output='alignment')
    with pytest.raises(ValueError, match='output'):
        tiny_net(output='score')


# ----- frozen CLIP, trainable modules, gradients -----
def test_only_prompts_coupling_mpa_and_adapter_train(tiny):
    trainable = [n for n, p in tiny.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(TRAINABLE_PREFIXES) for n in trainable)
    assert all(not p.requires_grad for p in tiny.backbone.parameters())
    frozen = [n for n, p in tiny.named_parameters() if not p.requires_grad]
    assert all(n.startswith('backbone.') for n in frozen)
    assert 'backbone.model.logit_scale' in frozen


def test_gradients_reach_exactly_the_trainable_parameters():
    net = tiny_net().train()
    x = torch.rand(2, 3, 32, 32)
    out = net(x)
    (out['quality'].sum() + out['alignment'].sum()).backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name

    # quality alone: the auxiliary TEXT prompts get nothing, the auxiliary VISUAL prompts do
    # (through the coupling linears)
    net.zero_grad(set_to_none=True)
    net(x)['quality'].sum().backward()
    aux = dict(net.prompt_learner_aux.named_parameters())
    assert all(aux[n].grad is None for n in aux if not n.startswith('prompts_vis'))
    assert all(aux[n].grad is not None for n in aux if n.startswith('prompts_vis'))


# ----- score formula -----
def imagenet_normalise(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def two_way_softmax(img, txt, scale):
    img = img.double().numpy()
    txt = txt.double().numpy()
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    logits = scale * img @ txt.T
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True))[:, 0]


def hand_mha(q, kv, attn):
    """nn.MultiheadAttention (batch of one, no mask) written out."""
    d, h = attn.embed_dim, attn.num_heads
    w, b = attn.in_proj_weight.double(), attn.in_proj_bias.double()
    qq, kk, vv = q @ w[:d].T + b[:d], kv @ w[d:2 * d].T + b[d:2 * d], kv @ w[2 * d:].T + b[2 * d:]
    split = lambda t: t.view(t.shape[0], h, d // h).transpose(0, 1)  # noqa: E731
    a = torch.softmax(split(qq) @ split(kk).transpose(1, 2) / math.sqrt(d // h), dim=-1)
    o = (a @ split(vv)).transpose(0, 1).reshape(q.shape[0], d)
    return o @ attn.out_proj.weight.double().T + attn.out_proj.bias.double()


def lin(layer, x):
    return x @ layer.weight.double().T + layer.bias.double()


def hand_scores(net, x):
    """Both scores of 32x32 images x, recomputed from the backbone and the raw parameters."""
    bb = net.backbone
    tar, aux = net.prompt_learner_tar, net.prompt_learner_aux
    with torch.no_grad():
        text = [p.double() for p in [tar.ctx, *tar.prompts_text]]
        layers = [tar.proj, *tar.compound_prompt_projections]
        vis = [lin(layer, torch.cat([v.double(), u.double()], dim=1))
               for layer, v, u in zip(layers, tar.prompts_vis, aux.prompts_vis)]
        if net.mpa is not None:
            for i, m in enumerate(net.mpa):
                t_in, v_in = lin(m.text_in, text[i]), lin(m.vis_in, vis[i])
                text[i], vis[i] = (text[i] + lin(m.text_out, hand_mha(t_in, v_in, m.text_attn)),
                                   vis[i] + lin(m.vis_out, hand_mha(v_in, t_in, m.vis_attn)))
        xn = imagenet_normalise(x)
        img_q = bb.encode_image_prompted(xn, [v.to(bb.dtype) for v in vis], normalize_input=False).double()
        if net.image_adapter is not None:
            w1, w2 = (layer.weight.double() for layer in net.image_adapter.fc if hasattr(layer, 'weight'))
            img_q = 0.2 * torch.relu(torch.relu(img_q @ w1.T) @ w2.T) + 0.8 * img_q
        tokens_q = bb.tokenize([' '.join(['X'] * 8 + [t]) for t in QUALITY_TEXTS])
        txt_q = bb.encode_text_prompted(tokens_q, [t.to(bb.dtype) for t in text])
        img_a = bb.encode_image_prompted(xn, list(aux.prompts_vis), normalize_input=False)
        tokens_a = bb.tokenize([' '.join(['X'] * 8 + [t]) for t in ALIGNMENT_TEXTS])
        txt_a = bb.encode_text_prompted(tokens_a, [aux.ctx, *aux.prompts_text])
        scale = float(bb.model.logit_scale.double().exp())
    return two_way_softmax(img_q, txt_q, scale), two_way_softmax(img_a, txt_a, scale)


@pytest.mark.parametrize('modules', [False, True], ids=['base', 'mpa_adapter'])
def test_scores_match_hand_computation(modules):
    net = tiny_net(mpa=modules, adapter=modules).eval()
    x = torch.rand(3, 3, 32, 32)  # one patch per image at test
    with torch.no_grad():
        out = net(x)
    q, a = hand_scores(net, x)
    # the prompts enter the float32 towers rounded from the written-out ones: float32 rounding of
    # the towers and the two-way softmax, on probabilities in [0, 1]
    np.testing.assert_allclose(out['quality'].numpy(), q, atol=rounding(torch.float32))
    np.testing.assert_allclose(out['alignment'].numpy(), a, atol=rounding(torch.float32))
    assert not np.allclose(q, a)


def test_float64_network_matches_float32_and_the_hand_computation():
    """``.double()`` computes in float64 end to end (prompts, coupling, MPA, adapter): both scores
    agree with the float32 network to float32 rounding and with the written-out formulas to
    float64 rounding."""
    net32 = tiny_net().eval()
    net64 = copy.deepcopy(net32).double()
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        out64, out32 = net64(x), net32(x.float())
    q, a = hand_scores(net64, x)
    for name, hand in (('quality', q), ('alignment', a)):
        assert out64[name].dtype == torch.float64
        np.testing.assert_allclose(out32[name].double().numpy(), out64[name].numpy(), atol=rounding(torch.float32))
        np.testing.assert_allclose(out64[name].numpy(), hand, atol=rounding(torch.float64))


# ----- outputs, inputs -----
def test_outputs_shapes_and_ranges(tiny):
    x = torch.rand(3, 3, 50, 70)
    with torch.no_grad():
        out = tiny(x)
        q = tiny_net(output='quality').eval()(x)
        a = tiny_net(output='alignment').eval()(x)
        grey = tiny(x[:, :1])
    assert set(out) == {'quality', 'alignment'} and all(v.shape == (3,) for v in out.values())
    assert all(((v >= 0) & (v <= 1)).all() for v in out.values())
    assert q.shape == a.shape == (3, 1)
    torch.testing.assert_close(q[:, 0], out['quality'])
    torch.testing.assert_close(a[:, 0], out['alignment'])
    # repeated or expanded grey: other memory layouts, two float32 runs, scores in [0, 1]
    torch.testing.assert_close(grey['quality'], tiny(x[:, :1].expand(-1, 3, -1, -1))['quality'],
                               atol=2 * rounding(torch.float32), rtol=0)


def test_prompt_is_accepted_and_checked(tiny):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = tiny(x)['quality'], tiny(x, prompt=['a cat', 'a dog'])['quality']
    torch.testing.assert_close(a, b)
    with pytest.raises(PromptError):
        tiny(x, prompt='one prompt for two images')


def test_training_mode_takes_crops_only():
    net = tiny_net().train()
    assert net(torch.rand(2, 3, 32, 32))['quality'].shape == (2,)
    with pytest.raises(ValueError, match='random_crop: 32'):
        net(torch.rand(2, 3, 48, 48))


# ----- test-time patching -----
def test_patch_grid_of_a_512_image_at_stride_64():
    img = torch.rand(1, 3, 512, 512)
    patches = patch_grid(img, 224, 64)
    assert patches.shape == (1, 25, 3, 224, 224)  # (512 - 224) // 64 + 1 = 5 per side
    reference = torch.nn.Unfold(kernel_size=224, stride=64)(img).view(3, 224, 224, -1).permute(3, 0, 1, 2)
    assert torch.equal(patches[0], reference)
    assert torch.equal(patches[0, 7], img[0, :, 64:288, 128:352])  # row 1, column 2
    assert patch_grid(torch.rand(2, 3, 300, 700), 224, 64).shape == (2, 2 * 8, 3, 224, 224)


def test_small_images_are_resized_up_keeping_the_aspect_ratio():
    img = torch.rand(1, 3, 100, 150)
    patches = patch_grid(img, 224, 64)
    assert patches.shape == (1, 2, 3, 224, 224)  # resized to 224 x 336
    up = F.interpolate(img, size=(224, 336), mode='bilinear', align_corners=False)
    assert torch.equal(patches[0, 1], up[0, :, :, 64:288])


def test_eval_score_is_the_mean_over_the_patch_grid(tiny):
    img = torch.rand(1, 3, 64, 80)  # tiny: 32 px patches, stride 16 -> 3 x 4 patches
    crops = torch.stack([img[0, :, 16 * r:16 * r + 32, 16 * c:16 * c + 32] for r in range(3) for c in range(4)])
    with torch.no_grad():
        whole = tiny(img)
        per_patch = tiny(crops)  # 32 x 32 inputs: one patch each
    for k in ('quality', 'alignment'):
        # the grid's patches and the crops: two float32 runs, scores in [0, 1]
        torch.testing.assert_close(whole[k], per_patch[k].mean().view(1), atol=2 * rounding(torch.float32), rtol=0)
        assert per_patch[k].std() > 0


def test_samples_of_a_batch_do_not_interact_in_eval(tiny):
    x = torch.rand(4, 3, 48, 64)
    with torch.no_grad():
        batch = tiny(x)
        alone = [tiny(x[i:i + 1]) for i in range(4)]
    for k in batch:
        # other batches: two float32 runs, scores in [0, 1]
        torch.testing.assert_close(batch[k], torch.cat([a[k] for a in alone]), atol=2 * rounding(torch.float32), rtol=0)


def test_chunking_does_not_change_scores():
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a = tiny_net(test_chunk=64).eval()(x)
        b = tiny_net(test_chunk=3).eval()(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2 * rounding(torch.float32), rtol=0)  # other chunks: 2 float32 runs


# ----- metrics and weights -----
@pytest.mark.parametrize('name', ['dcmpl', 'dcmpl_alignment'])
def test_create_metric(name, no_network):
    import pyiqa

    metric = pyiqa.create_metric(name, pretrained=False, clip_model='AGIQA-Tiny-ViT', device='cpu')
    assert metric.lower_better is False and metric.score_range == '0, 1'
    score = metric(torch.rand(1, 3, 40, 56), prompt='a red circle')
    assert score.shape == (1, 1) and 0 <= float(score) <= 1


def test_pretrained_model_path_round_trip(tmp_path, tiny):
    path = tmp_path / 'dcmpl.pth'
    torch.save({'params': tiny.state_dict()}, path)
    other = DCMPL(clip_model='AGIQA-Tiny-ViT', clip_pretrained=None, pretrained=True,
                  pretrained_model_path=str(path), test_stride=16).eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(other(x)['quality'], tiny(x)['quality'])


def test_prompt_learners_of_the_base_code_load(tiny):
    src = tiny_net(seed=5)
    tar = {**src.prompt_learner_tar.state_dict(), 'token_prefix': torch.zeros(2, 1, 64),
           'token_suffix': torch.zeros(2, 68, 64)}
    aux = {**src.prompt_learner_aux.state_dict(), 'token_prefix': torch.zeros(2, 1, 64)}
    net = tiny_net(seed=1).load_clip_agiqa_prompts(tar, aux)
    for a, b in [(net.prompt_learner_tar, src.prompt_learner_tar), (net.prompt_learner_aux, src.prompt_learner_aux)]:
        for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(v, w), k
    del tar['prompts_vis.1']
    with pytest.raises(KeyError, match='prompts_vis.1'):
        tiny_net().load_clip_agiqa_prompts(tar, aux)


# ----- training -----
def test_training_lowers_the_loss(demo_data):
    from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset

    opt = dataset_opt(demo_data, 'train', views=None, augment={'random_crop': 32, 'hflip': True}, mos_divisor=5)
    torch.manual_seed(0)  # the crops
    batch = next(iter(torch.utils.data.DataLoader(AGIQADataset(opt), batch_size=8)))
    net = tiny_net().train()
    optim = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(20):
        out = net(batch['img'])
        loss = (F.mse_loss(out['quality'], batch['labels']['mos_quality'])
                + 0.1 * F.mse_loss(out['alignment'], batch['labels']['mos_correspondence']))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    # the first steps fit the mean label; it must then go below the best constant prediction
    yq, ya = batch['labels']['mos_quality'], batch['labels']['mos_correspondence']
    constant = float(yq.var(unbiased=False) + 0.1 * ya.var(unbiased=False))
    assert min(losses[-5:]) < 0.5 * losses[0] and min(losses[-5:]) < 0.9 * constant, (constant, losses)


def load_options(name):
    return yaml.safe_load((REPO / 'options' / name).read_text())


def tiny_run_options(opt, demo_data, tmp_path, name):
    """The option file on the demo data with the tiny CLIP, one epoch, no tensorboard."""
    csv, images = demo_data
    for block in opt['datasets'].values():
        block.update(meta_info_file=str(csv), dataroot_target=str(images), split_scheme='demo',
                     num_worker_per_gpu=0, pin_memory=False)
    opt['datasets']['train'].update(augment={'random_crop': 32, 'hflip': True}, batch_size_per_gpu=8)
    opt['network'].update(clip_model='AGIQA-Tiny-ViT', pretrained=False, test_stride=16)
    opt.update(name=name, split_num=None, save_final_results_path=None)
    opt['train']['total_epoch'] = 1
    opt['train']['stages'][0]['epochs'] = 1
    opt['val']['val_freq'] = 2
    opt['logger'].update(use_tb_logger=False, print_freq=1)
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def check_recipe(opt, divisor, two_tasks):
    stage = opt['train']['stages']
    assert len(stage) == 1 and stage[0]['epochs'] == opt['train']['total_epoch'] == 50
    assert stage[0]['optim'] == {'type': 'Adam', 'lr': 1e-4} and stage[0]['early_stop'] == 15
    assert 'scheduler' not in stage[0] and opt['manual_seed'] == 10 and opt['split_num'] == 10
    train = opt['datasets']['train']
    assert train['augment'] == {'random_crop': 224, 'hflip': True} and train['batch_size_per_gpu'] == 64
    for block in opt['datasets'].values():
        assert block['mos_divisor'] == divisor and block['split_scheme'] == 'default' and 'views' not in block
    net = opt['network']
    assert net['type'] == 'DCMPL' and net['clip_model'] == 'ViT-B-32-quickgelu' and net['test_stride'] == 64
    assert net['mpa'] and net['mpa_heads'] == 8 and net['adapter'] and net['adapter_ratio'] == 0.2
    if two_tasks:
        assert opt['targets'] == {'quality': 'mos_quality', 'alignment': 'mos_correspondence'}
        assert opt['train']['losses'] == {'quality': {'type': 'MSELoss', 'loss_weight': 1.0},
                                          'alignment': {'type': 'MSELoss', 'loss_weight': 0.1}}
        assert opt['val']['key_metric'] == 'quality_srcc' and net['use_aux']
    else:
        assert opt['targets'] == {'quality': 'mos_quality'} and train['mos_columns'] == ['mos_quality']
        assert opt['train']['losses'] == {'quality': {'type': 'MSELoss', 'loss_weight': 1.0}}
        assert opt['val']['key_metric'] == 'srcc' and net['use_aux'] is False and net['output'] == 'quality'


def test_option_files_hold_the_published_recipe():
    check_recipe(load_options('dcmpl_agiqa3k.yml'), 5, True)
    opt = load_options('dcmpl_aigciqa2023.yml')
    check_recipe(opt, 100, True)
    assert opt['datasets']['train']['meta_info_file'] == './datasets/meta_info/aigciqa2023.csv'
    opt = load_options('dcmpl_agiqa1k.yml')
    check_recipe(opt, 5, False)
    assert opt['datasets']['train']['meta_info_file'] == 'agiqa1k'  # bundled (MIT)


@pytest.mark.parametrize('file, sets', [('dcmpl_agiqa3k.yml', ('agiqa3k_val', 'agiqa3k_test')),
                                        ('dcmpl_agiqa1k.yml', ('agiqa1k_val', 'agiqa1k_test'))])
def test_option_files_train_on_demo_data(demo_data, tmp_path, file, sets):
    from pyiqa_agiqa.training.pipeline import run_training

    path = tiny_run_options(load_options(file), demo_data, tmp_path, file[:-4] + '_smoke')
    results = run_training(['-opt', str(path)], root_path=str(tmp_path))
    assert set(results) == set(sets)
    key = 'quality_srcc' if '3k' in file else 'srcc'
    assert math.isfinite(results[sets[1]][key]['val'])
