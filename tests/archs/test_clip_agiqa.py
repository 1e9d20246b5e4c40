"""CLIP-AGIQA: CoOp prompts, head formula (independent computation), trainable parameters,
image transforms, the published architecture, metric use, schedule, training runs."""

import copy
import math

import numpy as np
import open_clip
import pytest
import torch
import torchvision.transforms as T
import yaml
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

import pyiqa
import pyiqa_agiqa  # noqa: F401
import pyiqa_agiqa.archs.clip_agiqa_arch  # noqa: F401  (registers CLIPAGIQA)
from pyiqa_agiqa.archs.clip_agiqa_arch import LEVELS, CLIPAGIQA

from conftest import REPO, rounding

TINY = dict(clip_model='AGIQA-Tiny-ViT', pretrained=False)
PUBLISHED_TRAINABLE = ['prompt_learner.ctx', 'head.1.weight', 'head.1.bias', 'head.4.weight', 'head.4.bias']


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return CLIPAGIQA(**TINY).eval()


def test_prompts_are_coop_texts_with_placeholders(tiny):
    tokenizer = open_clip.get_tokenizer('AGIQA-Tiny-ViT')
    texts = [' '.join(['X'] * 16) + f' {c}.' for c in ['terrible', 'bad', 'poor', 'average', 'good', 'perfect']]
    assert torch.equal(tiny.prompt_learner.tokens, tokenizer(texts))
    first = tiny.prompt_learner.tokens[0].tolist()
    words = [tokenizer.decoder[t] for t in first[:first.index(tokenizer.eot_token_id) + 1]]
    assert words == ['<start_of_text>'] + ['x</w>'] * 16 + ['terrible</w>', '.</w>', '<end_of_text>']
    ctx = tiny.prompt_learner.ctx
    # CoOp's init N(0, 0.02) over n = 1024 entries: mean and std within 6 of their standard errors
    n = ctx.numel()
    assert ctx.shape == (16, 64) and abs(ctx.std().item() - 0.02) < 6 * 0.02 / math.sqrt(2 * n)
    assert abs(ctx.mean().item()) < 6 * 0.02 / math.sqrt(n)


def test_output_shapes_and_raw_scale():
    torch.manual_seed(0)
    net = CLIPAGIQA(**TINY).eval()
    out = net(torch.rand(3, 3, 40, 57))
    assert set(out) == {'quality'} and out['quality'].shape == (3,) and torch.isfinite(out['quality']).all()
    single = CLIPAGIQA(output='quality', **TINY).eval()
    assert single(torch.rand(2, 1, 32, 32)).shape == (2, 1)  # grey input is repeated to RGB
    with torch.no_grad():  # no squashing: a zero head with bias 37.5 predicts 37.5 (AIGCIQA2023 scale)
        net.head[4].weight.zero_()
        net.head[4].bias.fill_(37.5)
    assert torch.equal(net(torch.rand(2, 3, 32, 32))['quality'], torch.full((2,), 37.5))  # 0 * h + 37.5, exactly
    with pytest.raises(ValueError, match='output must be None or one of'):
        CLIPAGIQA(output='alignment', **TINY)


def test_trainable_parameters_and_gradients():
    torch.manual_seed(0)
    net = CLIPAGIQA(**TINY).train()
    assert [n for n, p in net.named_parameters() if p.requires_grad] == PUBLISHED_TRAINABLE
    assert not net.backbone.training and net.head.training  # frozen CLIP stays in eval mode
    loss = (net(torch.rand(4, 3, 48, 48))['quality'] - 3.0).pow(2).mean()
    loss.backward()
    for name, p in net.named_parameters():
        if name in PUBLISHED_TRAINABLE:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def hand_quality(net, x):
    """The quality of 32 x 32 images x: image and text embeddings through open_clip's own
    encoders, the head in float64."""
    with torch.no_grad():
        model = copy.deepcopy(net.backbone.model)
        mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
        img = model.encode_image((x - mean) / std).double().numpy()
        # the context vectors as embeddings of 16 otherwise unused token ids, through encode_text
        tokenizer = open_clip.get_tokenizer('AGIQA-Tiny-ViT')
        tokens = tokenizer([' '.join(['X'] * 16) + f' {c}.' for c in LEVELS])
        ids = torch.arange(1000, 1016)
        tokens[:, 1:17] = ids
        model.token_embedding.weight[ids] = net.prompt_learner.ctx.to(model.token_embedding.weight.dtype)
        txt = model.encode_text(tokens).double().numpy()
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    feats = np.concatenate([img, np.tile(txt.reshape(1, -1), (len(x), 1))], axis=1)
    assert feats.shape == (len(x), 7 * 64)
    w1, b1 = net.head[1].weight.double().detach().numpy(), net.head[1].bias.double().detach().numpy()
    w2, b2 = net.head[4].weight.double().detach().numpy(), net.head[4].bias.double().detach().numpy()
    return (np.maximum(feats @ w1.T + b1, 0) @ w2.T + b2)[:, 0]


def test_score_matches_hand_computation(tiny):
    x = torch.rand(2, 3, 32, 32)  # the tiny CLIP's input size: no resize
    with torch.no_grad():
        score = tiny(x)['quality'].numpy()
    expected = hand_quality(tiny, x)
    # the same float32 encoders; the normalisations and the head (7 x 64 and 512 terms) in float32 here
    tolerance = rounding(torch.float32, np.abs(expected).max() + 1)
    assert np.allclose(score, expected, atol=tolerance, rtol=0), (score, expected)


def test_float64_network_matches_float32_and_the_hand_computation(tiny):
    """``.double()`` computes in float64 end to end (prompts, text features, head): the score
    agrees with the float32 network to float32 rounding and with the written-out formula to
    float64 rounding."""
    net64 = copy.deepcopy(tiny).double()
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        score64, score32 = net64(x)['quality'], tiny(x.float())['quality']
    assert score64.dtype == torch.float64
    scale = float(score64.abs().max()) + 1
    np.testing.assert_allclose(score32.double().numpy(), score64.numpy(), atol=rounding(torch.float32, scale))
    np.testing.assert_allclose(score64.numpy(), hand_quality(net64, x), atol=rounding(torch.float64, scale))


def test_eval_transform_is_the_published_test_transform():
    """Shorter side to 224 (bicubic) + centre crop, against torchvision on the PIL image."""
    rng = np.random.default_rng(0)
    base = rng.random((30, 40, 3))
    array = (np.kron(base, np.ones((10, 10, 1))) * 255).astype(np.uint8)  # 300 x 400, smooth blocks
    pil = Image.fromarray(array)
    reference = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                           T.ToTensor()])(pil)
    x = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    ours = CLIPAGIQA.resize_center_crop(type('S', (), {'image_size': 224})(), x)[0]
    assert ours.shape == reference.shape == (3, 224, 224)
    # PIL resamples in 8 bits with its own bicubic (a = -0.5, torch's -0.75): a mean gap of under ~2.5 levels
    assert (ours - reference).abs().mean() < 0.01 and ours.min() >= 0 and ours.max() <= 1
    same = torch.rand(1, 3, 224, 224)
    assert torch.equal(CLIPAGIQA.resize_center_crop(type('S', (), {'image_size': 224})(), same), same)


def test_training_mode_draws_a_random_resized_crop_per_sample(tiny):
    net = CLIPAGIQA(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), **TINY).train()
    x = torch.rand(2, 3, 64, 64)
    whole = torch.nn.functional.interpolate(x, size=(32, 32), mode='bicubic', antialias=True, align_corners=False)
    taps = rounding(torch.float32, ops=32)  # antialiased bicubic, <= 64 to 32 px on [0, 1]: 8 taps per axis, 2 passes
    assert torch.allclose(net.preprocess(x), whole.clamp(0, 1), atol=taps, rtol=0)  # scale 1, ratio 1: the whole image
    net = CLIPAGIQA(**TINY).train()
    x = torch.rand(1, 3, 64, 64).expand(6, -1, -1, -1)
    torch.manual_seed(1)
    crops = net.preprocess(x)
    assert crops.shape == (6, 3, 32, 32) and crops.min() >= 0 and crops.max() <= 1
    assert len({tuple(c.flatten()[:20].tolist()) for c in crops}) == 6  # each sample its own crop
    torch.manual_seed(1)
    top, left, h, w = T.RandomResizedCrop.get_params(x[0], [0.08, 1.0], [3 / 4, 4 / 3])
    first = T.functional.resized_crop(x[0], top, left, h, w, [32, 32], T.InterpolationMode.BICUBIC, antialias=True)
    assert torch.allclose(crops[0], first.clamp(0, 1), atol=taps, rtol=0)
    net.eval()
    assert torch.equal(net.preprocess(x), net.resize_center_crop(x))


def test_batch_independence_and_prompt_is_ignored(tiny):
    images = torch.rand(3, 3, 48, 40)
    with torch.no_grad():
        together = tiny(images)['quality']
        alone = torch.cat([tiny(images[i:i + 1])['quality'] for i in range(3)])
        with_prompts = tiny(images, prompt=['a cat', '', 'a tree'])['quality']
        with_str = tiny(images[:1], prompt='a dog')['quality']
    tolerance = 2 * rounding(torch.float32, float(together.abs().max()) + 1)  # other batches: two float32 runs
    assert torch.allclose(together, alone, atol=tolerance, rtol=0)
    assert torch.equal(together, with_prompts) and torch.equal(together[:1], with_str)


def test_aux_prompts_option():
    torch.manual_seed(0)
    net = CLIPAGIQA(aux_prompts=['authenticity', 'correspondence'], **TINY).eval()
    assert net.prompt_learner.texts[6:8] == ['terrible authenticity.', 'bad authenticity.']
    assert net.prompt_learner.texts[-1] == 'perfect correspondence.'
    assert net.head_in == (1 + 18) * 64 and net.head[1].in_features == 19 * 64
    assert net.prompt_learner.aux_ctx.shape == (2, 16, 64)
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        'prompt_learner.ctx', 'prompt_learner.aux_ctx'] + PUBLISHED_TRAINABLE[1:]
    plain = CLIPAGIQA(**TINY).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items()
                           if not k.startswith(('head', 'prompt_learner.aux'))},
                          strict=False)
    with torch.no_grad():  # the quality set is the published one, the aux sets follow it
        # 18 texts in one batch or 6: two float32 runs of the text tower, unit features
        assert torch.allclose(net.text_features()[:6], plain.text_features(), atol=2 * rounding(torch.float32), rtol=0)
        assert net(torch.rand(2, 3, 32, 32))['quality'].shape == (2,)


def test_fine_tuned_weights_round_trip(tmp_path, tiny):
    path = tmp_path / 'net.pth'
    torch.save({'params': tiny.state_dict()}, path)
    assert 'prompt_learner.tokens' not in tiny.state_dict()
    loaded = CLIPAGIQA(clip_model='AGIQA-Tiny-ViT', clip_pretrained=None, pretrained_model_path=str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)['quality'], tiny(x)['quality'])


def test_metric_with_tiny_clip(tmp_path, no_network):
    torch.manual_seed(0)
    metric = pyiqa.create_metric('clip_agiqa', pretrained=False, clip_model='AGIQA-Tiny-ViT', device='cpu')
    array = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    path = tmp_path / 'img.png'
    Image.fromarray(array).save(path)
    from_tensor = metric(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255, prompt='a cat')
    assert from_tensor.shape == (1, 1)
    tolerance = 2 * rounding(torch.float32, float(from_tensor.abs().max()) + 1)  # pixels read by pyiqa: 2 float32 runs
    assert torch.allclose(metric(str(path)), from_tensor, atol=tolerance, rtol=0)
    assert torch.allclose(metric(str(path), prompt='x'), from_tensor, atol=tolerance, rtol=0)


def test_published_architecture_vit_b16(no_network):
    torch.manual_seed(0)
    net = pyiqa.create_metric('clip_agiqa', pretrained=False, device='cpu').net
    model, visual = net.backbone.model, net.backbone.model.visual
    assert net.backbone.model_name == 'ViT-B-16-quickgelu' and net.output == 'quality'
    assert visual.conv1.kernel_size == (16, 16) and net.backbone.image_size == 224
    assert len(visual.transformer.resblocks) == 12 and visual.transformer.width == 768
    assert len(model.transformer.resblocks) == 12 and model.transformer.width == 512
    assert net.prompt_learner.ctx.shape == (16, 512) and net.backbone.embed_dim == 512
    assert net.head_in == 3584 and net.head[1].in_features == 3584 and net.head[1].out_features == 512
    assert net.head[4].in_features == 512 and net.head[4].out_features == 1
    assert [m.p for m in net.head if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    assert [n for n, p in net.named_parameters() if p.requires_grad] == PUBLISHED_TRAINABLE
    with torch.no_grad():
        assert net(torch.rand(1, 3, 240, 300)).shape == (1, 1)


# ----- recipe and training -----
def load_options(name):
    return yaml.safe_load((REPO / 'options' / name).read_text())


class _OptimStub:
    """pyiqa's own optimiser / scheduler set-up, on a bare network."""
    from pyiqa.models.base_model import BaseModel
    from pyiqa.models.general_iqa_model import GeneralIQAModel
    get_optimizer = BaseModel.get_optimizer
    setup_optimizers = GeneralIQAModel.setup_optimizers
    setup_schedulers = BaseModel.setup_schedulers
    update_learning_rate = BaseModel.update_learning_rate

    def __init__(self, net, opt):
        self.net, self.opt, self.optimizers, self.schedulers = net, opt, [], []


def dassl_lr(epoch, base=0.002, max_epoch=100, warmup_lr=1e-5):
    """Dassl: ConstantWarmupScheduler(1 epoch at 1e-5) then CosineAnnealingLR(T_max=max_epoch)."""
    return warmup_lr if epoch == 0 else base * (1 + math.cos(math.pi * (epoch - 1) / max_epoch)) / 2


def test_recipe_groups_and_schedule_match_the_reference(tiny, monkeypatch):
    import logging

    import pyiqa.models.general_iqa_model as general
    # pyiqa's root logger gets its log file only when training is the first to call it
    monkeypatch.setattr(general, 'get_root_logger', lambda: logging.getLogger('test_clip_agiqa'))
    opt = load_options('clip_agiqa_agiqa3k.yml')
    other = load_options('clip_agiqa_aigciqa2023.yml')
    assert opt['train'] == other['train'] and opt['network'] == other['network']
    assert opt['train']['total_epoch'] == 100
    assert opt['train']['losses'] == {'quality': {'type': 'MSELoss', 'loss_weight': 1.0}}
    assert opt['datasets']['train']['batch_size_per_gpu'] == 32 and opt['datasets']['val']['batch_size_per_gpu'] == 100
    assert opt['targets'] == other['targets'] == {'quality': 'mos_quality'}
    assert other['datasets']['train']['meta_info_file'] == './datasets/meta_info/aigciqa2023.csv'
    assert all(b['split_scheme'] == 'default' and 'mos_divisor' not in b for b in opt['datasets'].values())
    stub = _OptimStub(copy.deepcopy(tiny), copy.deepcopy(opt))
    stub.setup_optimizers()
    stub.setup_schedulers()
    (optimizer,) = stub.optimizers
    names = {id(p): n for n, p in stub.net.named_parameters()}
    groups = [[names[id(p)] for p in g['params']] for g in optimizer.param_groups]
    assert groups == [PUBLISHED_TRAINABLE[:1], PUBLISHED_TRAINABLE[1:]]
    assert type(optimizer).__name__ == 'SGD'
    assert all(g['momentum'] == 0.9 and g['weight_decay'] == 5e-4 and not g['nesterov'] for g in optimizer.param_groups)
    lrs = []
    for epoch in range(101):  # pyiqa: one scheduler step at the end of each loader pass
        lrs.append([g['lr'] for g in optimizer.param_groups])
        optimizer.step()
        stub.update_learning_rate(epoch + 2, warmup_iter=opt['train'].get('warmup_iter', -1))
    # OneCycleLR's cosine ends at max_lr / div_factor / final_div_factor (1e-11), Dassl's at 0: the rates
    # differ by that floor at most, plus the float64 rounding of a cosine schedule
    schedule = opt['train']['scheduler']
    floor = schedule['max_lr'] / schedule['div_factor'] / schedule['final_div_factor']
    tolerance = floor + rounding(torch.float64, scale=schedule['max_lr'], ops=16)
    for epoch in range(101):  # the 101st loader pass too, at about 5e-7
        assert lrs[epoch] == pytest.approx([dassl_lr(epoch)] * 2, abs=tolerance), epoch
    assert all(g['momentum'] == 0.9 for g in optimizer.param_groups)


def test_training_lowers_the_loss_on_one_batch(demo_data):
    from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset

    from conftest import dataset_opt
    torch.manual_seed(0)
    net = CLIPAGIQA(**TINY).train()
    data = AGIQADataset(dataset_opt(demo_data, 'train', views=None, augment={'hflip': True}))
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=8)))
    optim = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses = []
    for _ in range(12):
        predicted = net(batch['img'], prompt=list(batch['prompt']))['quality']
        loss = (predicted - batch['labels']['mos_quality']).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert np.mean(losses[-4:]) < 0.5 * losses[0], losses


def test_shipped_agiqa3k_options_run_on_synthetic_data(demo_data, tmp_path):
    """The published-recipe option file, with the data and the CLIP swapped for tiny ones."""
    from pyiqa_agiqa.training.pipeline import run_training

    opt = load_options('clip_agiqa_agiqa3k.yml')
    csv, images = demo_data
    for block in opt['datasets'].values():
        block.update(meta_info_file=str(csv), dataroot_target=str(images), split_scheme='demo',
                     num_worker_per_gpu=0, pin_memory=False)
    train_aug = opt['datasets']['train']['augment']
    train_aug['resize']['size'] = train_aug['center_crop'] = 64
    test_aug = opt['datasets']['val']['augment']
    test_aug['resize']['size'] = test_aug['center_crop'] = 32
    opt['datasets']['train']['batch_size_per_gpu'] = 8
    opt['network'].update(TINY)
    opt.update(name='clip_agiqa_smoke', split_num=None, save_final_results_path=None)
    opt['train']['total_epoch'] = 2
    opt['val']['val_freq'] = 3
    opt['logger'].update(use_tb_logger=False, print_freq=1)
    path = tmp_path / 'clip_agiqa_smoke.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    results = run_training(['-opt', str(path)], root_path=str(tmp_path))
    assert set(results) == {'agiqa3k_val', 'agiqa3k_test'}
    assert {'srcc', 'plcc', 'krcc', 'srcc_plcc'} <= set(results['agiqa3k_val'])
    folder = tmp_path / 'experiments' / 'clip_agiqa_smoke'
    saved = torch.load(folder / 'models' / 'net_best.pth', weights_only=True)['params']
    assert saved['prompt_learner.ctx'].shape == (16, 64) and saved['head.1.weight'].shape == (512, 448)
