"""Converters of the methods' reference checkpoints (pyiqa_agiqa.export.convert).

Each round trip: a plugin network with random, perturbed weights is written in the reference's
layout by an INDEPENDENT re-statement of the reference naming (below, not the module's tables),
saved as the reference code saves it (torch.save of the dict; fp16 where OpenAI's clip keeps
fp16; numpy float64 in CIA-Net's all_results), converted, loaded from the exported folder into
a fresh network built from the card's options, and scored: the scores must equal the original's.
"""

import json
import pickle
import re

import numpy as np
import open_clip
import pytest
import torch

from pyiqa_agiqa.archs import CIANet, DCMPL, IPCE
from pyiqa_agiqa.archs.backbone.clip import create_clip
from pyiqa_agiqa.export.convert.common import ReferenceLayoutError
from pyiqa_agiqa.export.convert import convert_reference, to_reference_layout
from pyiqa_agiqa.export.convert.ipce import detect_ipce_network
from pyiqa_agiqa.weights.card import read_card
from pyiqa_agiqa.weights.io import sha256_file
from pyiqa_agiqa.weights.io import UnsafeWeightsError, load_network_weights

from conftest import rounding

TINY = 'AGIQA-Tiny-ViT'
IPCE_TINY = dict(clip_model=TINY, min_side=64, stride=8, large_side=100000)
PROMPTS = ['a red cat sitting on a sofa', 'a city street at night, rain']
CLIP = 'backbone.model.'


# ----- the reference naming, restated from the reference code -----

def strip(key, prefix):
    assert key.startswith(prefix), key
    return key[len(prefix):]


def cianet_reference_sd(plugin_sd):
    """CIANet.state_dict() of TanSongBai/CIANet: self.base (clip.load), self.CIALayer, self.MLP, and
    self.logit_scale = self.base.logit_scale (one parameter, two keys)."""
    ref = {}
    for key, value in plugin_sd.items():
        if key.startswith('backbone.model.'):
            ref['base.' + strip(key, 'backbone.model.')] = value.clone()
        elif key.startswith('cia_layer.'):
            ref['CIALayer.' + strip(key, 'cia_layer.')] = value.clone()
        else:
            ref['MLP.' + strip(key, 'head.')] = value.clone()
    ref['logit_scale'] = ref['base.logit_scale']
    return ref


# clip.model.convert_weights: Conv / Linear weights and biases, the attention projections,
# text_projection and visual.proj are fp16; LayerNorms, embeddings and logit_scale stay fp32
OPENAI_FP16 = re.compile(r'(conv1\.weight|attn\.in_proj_(weight|bias)|attn\.out_proj\.(weight|bias)|'
                         r'mlp\.c_(fc|proj)\.(weight|bias)|^text_projection|^visual\.proj)$')


def openai_clip_sd(plugin_sd, fp16=True):
    """The raw OpenAI CLIP state dict (clip.load(..., jit=False)) of a plugin's backbone."""
    sd = {strip(k, CLIP): v.clone() for k, v in plugin_sd.items() if k.startswith(CLIP)}
    return {k: v.half() if fp16 and OPENAI_FP16.search(k) else v for k, v in sd.items()}


def fu_prompt_learners(plugin_sd, n_ctx=8):
    """(tar, aux) state dicts of Fu et al.'s PromptLearnerTarget / PromptLearnerAuxiliary, with the
    token buffers computed as there: token_embedding of 'X X X X X X X X {class}.'."""
    emb = plugin_sd[CLIP + 'token_embedding.weight']

    def learner(prefix, classnames):
        own = {strip(k, prefix): v.clone() for k, v in plugin_sd.items() if k.startswith(prefix)}
        prompts = [' '.join(['X'] * n_ctx) + ' ' + name.replace('_', ' ') + '.' for name in classnames]
        full = emb[open_clip.tokenize(prompts)]
        own['token_prefix'], own['token_suffix'] = full[:, :1].clone(), full[:, 1 + n_ctx:].clone()
        return own

    return (learner('prompt_learner_tar.', ['good_photo', 'bad_photo']),
            learner('prompt_learner_aux.', ['aligned_photo', 'misaligned_photo']))


# ----- helpers -----

def perturbed(net, seed=0, fp16_representable=()):
    """``net`` in eval mode with every parameter moved off its initial value; parameters whose
    names match ``fp16_representable`` are rounded to fp16 values (so an fp16 file is exact)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
            if fp16_representable and fp16_representable.search(strip(name, CLIP) if name.startswith(CLIP) else ''):
                p.copy_(p.half().float())
    return net.eval()


def images(seed=0, size=(64, 72), n=2):
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def reload(folder, **extra):
    """A fresh network built from the card's options with the folder's weights; and the card."""
    card = read_card(folder)
    cls = {'CIANet': CIANet, 'IPCE': IPCE, 'DCMPL': DCMPL}[card['architecture']]
    net = cls(pretrained=False, **card['network'], **extra)
    return load_network_weights(net, folder / card['weights']['file']).eval(), card


def assert_same_scores(a, b):
    """Equal, bit for bit: the converted file holds the very weights (the fp16 ones are
    fp16-representable), and the same network on the same input computes the same floats."""
    a, b = (x if isinstance(x, dict) else {'score': x} for x in (a, b))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=0, rtol=0, msg=key)


class Payload:
    """Unpickling this object creates the marker file: the canary of code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


# ----- CIA-Net -----

def cianet_checkpoint(net, epoch=12):
    """The dict CIA-Net's train.py saves (numpy float64 figures in all_results, as its evaluation gives)."""
    optimizer = torch.optim.AdamW(net.head.parameters(), lr=5e-6, weight_decay=1e-3)
    return {'epoch': epoch, 'model_state_dict': cianet_reference_sd(net.state_dict()),
            'optimizer_state_dict': optimizer.state_dict(),
            'all_results': {'srcc': np.float64(0.8731), 'plcc': np.float64(0.9012), 'epoch': 12}}


@pytest.mark.parametrize('openai_fp16', [False, True])
def test_cianet_round_trip(tmp_path, openai_fp16):
    net = perturbed(CIANet(clip_model=TINY, pretrained=False), fp16_representable=OPENAI_FP16)
    ckpt = cianet_checkpoint(net)
    if openai_fp16:  # clip.load on a GPU keeps the CLIP's linear layers in fp16
        ckpt['model_state_dict'] = {k: v.half() if k.startswith('base.') and OPENAI_FP16.search(k[5:]) else v
                                    for k, v in ckpt['model_state_dict'].items()}
        ckpt['model_state_dict']['logit_scale'] = ckpt['model_state_dict']['base.logit_scale']
    ref = to_reference_layout('cianet-ref', net.state_dict())
    assert ref['model_state_dict'].keys() == cianet_reference_sd(net.state_dict()).keys()
    assert ref['model_state_dict']['logit_scale'] is ref['model_state_dict']['base.logit_scale']
    path = tmp_path / 'checkpoints' / 'AGIQA3K' / 'MTD_IQAv6' / '1' / 'correspondence_best_ckpt.pt'
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)

    folder = convert_reference('cianet-ref', [path], tmp_path / 'out', network={'clip_model': TINY})
    fresh, card = reload(folder)
    x = images()
    with torch.no_grad():
        assert_same_scores(net(x, PROMPTS), fresh(x, PROMPTS))
    assert card['architecture'] == 'CIANet' and card['network'] == CIANet.card_options({'clip_model': TINY})
    assert card['outputs'] == ['quality', 'authenticity', 'consistency']
    assert "'cianet-ref'" in card['source'] and sha256_file(path) in card['source']
    assert "output 'consistency'" in card['source'] and 'epoch 12' in card['source']
    with pytest.raises(FileExistsError):
        convert_reference('cianet-ref', [path], folder, network={'clip_model': TINY})


def test_cianet_missing_and_unexpected_keys_are_named(tmp_path):
    net = CIANet(clip_model=TINY, pretrained=False)
    ckpt = cianet_checkpoint(net)
    del ckpt['model_state_dict']['CIALayer.cross_attention1.ln_3.weight']
    ckpt['model_state_dict']['MLP.fc3.0.weight'] = torch.ones(1, 1)
    path = tmp_path / 'quality_best_ckpt.pt'
    torch.save(ckpt, path)
    with pytest.raises(ReferenceLayoutError) as error:
        convert_reference('cianet-ref', [path], tmp_path / 'out', network={'clip_model': TINY})
    text = str(error.value)
    assert str(path) in text and 'CIALayer.cross_attention1.ln_3.weight' in text and 'MLP.fc3.0.weight' in text
    assert '1 missing' in text and '1 unexpected' in text and "Expected: CIA-Net's" in text
    assert not (tmp_path / 'out').exists()


def test_cianet_mismatching_duplicate_logit_scale(tmp_path):
    ckpt = cianet_checkpoint(CIANet(clip_model=TINY, pretrained=False))
    ckpt['model_state_dict']['logit_scale'] = ckpt['model_state_dict']['base.logit_scale'] + 0.5
    torch.save(ckpt, tmp_path / 'quality_best_ckpt.pt')
    with pytest.raises(ReferenceLayoutError, match='logit_scale .* differs from base.logit_scale'):
        convert_reference('cianet-ref', [tmp_path / 'quality_best_ckpt.pt'], tmp_path / 'out',
                          network={'clip_model': TINY})


def test_cianet_accepts_numpy1_scalar_names(tmp_path):
    """Files written under numpy 1 name numpy.core.multiarray.scalar (numpy 2: numpy._core...)."""
    scalar = np.float64(1).__reduce__()[0]

    class Numpy1Pickler(pickle._Pickler):
        def save_global(self, obj, name=None):
            if obj is scalar:
                self.write(pickle.GLOBAL + b'numpy.core.multiarray\nscalar\n')
                self.memoize(obj)
                return
            super().save_global(obj, name)

    class Numpy1Pickle:
        Pickler, Unpickler = Numpy1Pickler, pickle.Unpickler

    net = perturbed(CIANet(clip_model=TINY, pretrained=False))
    path = tmp_path / 'quality_best_ckpt.pt'
    torch.save(cianet_checkpoint(net), path, pickle_module=Numpy1Pickle)
    folder = convert_reference('cianet-ref', [path], tmp_path / 'out', network={'clip_model': TINY})
    with torch.no_grad():
        assert_same_scores(net(images(), PROMPTS), reload(folder)[0](images(), PROMPTS))


# ----- IPCE -----

@pytest.mark.parametrize('layout', ['training', 'aigiqa20k_training', 'ntire_inference'])
def test_ipce_round_trip(tmp_path, layout):
    net = perturbed(IPCE(pretrained=False, **IPCE_TINY), fp16_representable=OPENAI_FP16)
    sd = openai_clip_sd(net.state_dict())
    assert sd['visual.conv1.weight'].dtype == torch.float16 and sd['ln_final.weight'].dtype == torch.float32
    if layout == 'training':
        ckpt = {'model_state_dict': sd}
    elif layout == 'aigiqa20k_training':
        ckpt = {'epoch': 3, 'model_state_dict': sd,
                'optimizer_state_dict': torch.optim.AdamW(net.parameters(), lr=5e-6).state_dict()}
    else:  # bare state dict, with the metadata entries of OpenAI's archives
        ckpt = dict(sd, input_resolution=torch.tensor(32), context_length=torch.tensor(77),
                    vocab_size=torch.tensor(49408))
    assert to_reference_layout('ipce-ref', net.state_dict())['model_state_dict'].keys() == sd.keys()
    path = tmp_path / 'quality_best_ckpt.pt'
    torch.save(ckpt, path)

    folder = convert_reference('ipce-ref', [path], tmp_path / 'out', network=IPCE_TINY)
    fresh, card = reload(folder)
    with torch.no_grad():
        assert_same_scores(net(images(), PROMPTS), fresh(images(), PROMPTS))
    assert card['network'] == IPCE.card_options(IPCE_TINY) and card['outputs'] == ['score']
    assert "'ipce-ref'" in card['source'] and sha256_file(path) in card['source']


def test_ipce_clip_detection():
    def shapes(conv, pos):
        return {'visual.conv1.weight': torch.empty(conv), 'visual.positional_embedding': torch.empty(pos)}

    b32, l14 = shapes((768, 3, 32, 32), (50, 768)), shapes((1024, 3, 14, 14), (257, 1024))
    assert detect_ipce_network(b32) == dict(clip_model='ViT-B-32-quickgelu', min_side=512)
    assert detect_ipce_network(l14) == dict(clip_model='ViT-L-14-quickgelu', min_side=768)
    for conv, pos in (((1024, 3, 14, 14), (577, 1024)), ((768, 3, 16, 16), (197, 768))):  # L/14@336, B/16
        with pytest.raises(ReferenceLayoutError, match='neither OpenAI ViT-B/32 nor ViT-L/14.*network='):
            detect_ipce_network(shapes(conv, pos))


def test_ipce_unknown_clip_needs_network_options(tmp_path):
    net = IPCE(pretrained=False, **IPCE_TINY)
    torch.save({'model_state_dict': openai_clip_sd(net.state_dict())}, tmp_path / 'q.pt')
    with pytest.raises(ReferenceLayoutError, match=r"'.*q\.pt'.*pass network="):
        convert_reference('ipce-ref', [tmp_path / 'q.pt'], tmp_path / 'out')
    # a foreign file (CIA-Net's) is named as such
    ckpt = cianet_checkpoint(CIANet(clip_model=TINY, pretrained=False))
    del ckpt['all_results']  # numpy scalars are allowed for cianet-ref files only
    torch.save(ckpt, tmp_path / 'cia.pt')
    with pytest.raises(ReferenceLayoutError, match=r"cia\.pt' has no visual.conv1.weight.*base\.visual"):
        convert_reference('ipce-ref', [tmp_path / 'cia.pt'], tmp_path / 'out')
    # a wrong explicit CLIP is caught by the strict load, with the shapes
    with pytest.raises(ReferenceLayoutError, match='shape mismatch'):
        convert_reference('ipce-ref', [tmp_path / 'q.pt'], tmp_path / 'out', network={'clip_model': 'AGIQA-Tiny-RN'})


def test_network_override_and_clip_weights_are_checked(tmp_path):
    path = tmp_path / 'q.pt'
    torch.save({'model_state_dict': {}}, path)
    with pytest.raises(ValueError, match="cannot be set here"):
        convert_reference('ipce-ref', [path], tmp_path / 'out', network={'clip_model': TINY, 'pretrained': True})
    with pytest.raises(ValueError, match="cannot be set here"):
        convert_reference('dcmpl-ref', [path], tmp_path / 'out', network={'mpa': True})
    with pytest.raises(ValueError, match='clip_weights is for dcmpl-ref only'):
        convert_reference('cianet-ref', [path], tmp_path / 'out', clip_weights=path)
    with pytest.raises(ValueError, match='one checkpoint file'):
        convert_reference('cianet-ref', [path, path], tmp_path / 'out')
    with pytest.raises(ValueError, match='unknown reference kind'):
        convert_reference('dcmpl', [path], tmp_path / 'out')


# ----- DCMPL (Fu et al.'s CLIP-AGIQA base) -----

def dcmpl_tiny(use_aux=True):
    return DCMPL(clip_model=TINY, pretrained=False, mpa=False, adapter=False, use_aux=use_aux)


def save_fu_run(net, folder, use_aux=True, clip_fp16=False):
    """The two files of Fu et al.'s train_test_clip_auxiliary.py and the CLIP as its own file."""
    folder.mkdir(parents=True, exist_ok=True)
    tar, aux = fu_prompt_learners(net.state_dict())
    if not use_aux:  # that branch builds (and saves) the coupling linears and an untrained aux learner too
        ref = fu_prompt_learners(dcmpl_tiny(use_aux=True).state_dict())
        tar.update({k: v for k, v in ref[0].items() if k.startswith(('proj.', 'compound_prompt_projections.'))})
        aux = ref[1]
    paths = folder / 'AGIQA_AGIQA3k_8_tar_best.pth', folder / 'AGIQA_AGIQA3k_8_aux_best.pth', folder / 'clip.pt'
    torch.save(tar, paths[0])
    torch.save(aux, paths[1])
    clip = dict(openai_clip_sd(net.state_dict(), fp16=clip_fp16), input_resolution=torch.tensor(32))
    torch.save(clip, paths[2])
    return paths


@pytest.mark.filterwarnings('error::UserWarning')
def test_dcmpl_round_trip(tmp_path):
    net = perturbed(dcmpl_tiny())
    tar_path, aux_path, clip_path = save_fu_run(net, tmp_path / 'use_aux_1_textdepth_12_visiondepth_12_lamda_10')
    tar, aux = to_reference_layout('dcmpl-ref', net.state_dict())
    ref_tar, ref_aux = fu_prompt_learners(net.state_dict())
    for mine, theirs in ((tar, ref_tar), (aux, ref_aux)):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    folder = convert_reference('dcmpl-ref', [aux_path, tar_path], tmp_path / 'out', clip_weights=clip_path,
                               network={'clip_model': TINY})
    fresh, card = reload(folder)
    x = images(size=(40, 40), n=1)
    with torch.no_grad():
        assert_same_scores(net(x), fresh(x))
    assert card['network'] == DCMPL.card_options({'clip_model': TINY, 'use_aux': True, 'mpa': False, 'adapter': False})
    assert card['outputs'] == ['quality', 'alignment'] and card['clip']['pretrained'] == 'local file clip.pt'
    assert "CLIP-AGIQA" in card['source'] and "NOT DCMPL's own release" in card['source']
    for path in (tar_path, aux_path, clip_path):
        assert sha256_file(path) in card['source']
    # the arch's own loader of Fu et al.'s files agrees
    other = dcmpl_tiny()
    other.backbone.model.load_state_dict(net.backbone.model.state_dict())
    other.load_clip_agiqa_prompts(tar_path, aux_path).eval()
    with torch.no_grad():
        assert_same_scores(other(x), fresh(x))


@pytest.mark.filterwarnings('error::UserWarning')
def test_dcmpl_without_aux(tmp_path):
    net = perturbed(dcmpl_tiny(use_aux=False))
    tar, aux = to_reference_layout('dcmpl-ref', net.state_dict())
    assert aux is None and 'proj.weight' not in tar
    tar_path, _, clip_path = save_fu_run(net, tmp_path / 'use_aux_0_textdepth_12_visiondepth_12_lamda_10',
                                         use_aux=False)
    folder = convert_reference('dcmpl-ref', [tar_path], tmp_path / 'out', clip_weights=clip_path,
                               network={'clip_model': TINY})
    fresh, card = reload(folder)
    with torch.no_grad():
        assert_same_scores(net(images(size=(40, 40), n=1)), fresh(images(size=(40, 40), n=1)))
    assert card['network']['use_aux'] is False and card['outputs'] == ['quality']


def test_dcmpl_run_folder_and_file_checks(tmp_path):
    net = dcmpl_tiny()
    tar, aux, clip = save_fu_run(net, tmp_path / 'use_aux_1_textdepth_12_visiondepth_12_lamda_10')
    opts = dict(clip_weights=clip, network={'clip_model': TINY})
    with pytest.raises(ValueError, match='use_aux=1 run.*aux_best.pth'):
        convert_reference('dcmpl-ref', [tar], tmp_path / 'out', **opts)
    with pytest.raises(ReferenceLayoutError, match='0 of the files.*proj.weight'):
        convert_reference('dcmpl-ref', [aux], tmp_path / 'out', **opts)
    tar0, aux0, _ = save_fu_run(net, tmp_path / 'use_aux_0_textdepth_0_visiondepth_12_lamda_10', use_aux=False)
    with pytest.raises(ValueError, match='never trained'):
        convert_reference('dcmpl-ref', [tar0, aux0], tmp_path / 'out', **opts)
    with pytest.raises(ValueError, match='depth 0'):
        convert_reference('dcmpl-ref', [tar0], tmp_path / 'out', **opts)
    # a tar file lacking a prompt layer: named, with the file
    sd = torch.load(tar, weights_only=True)
    del sd['prompts_vis.1']
    torch.save(sd, tmp_path / 'broken_tar.pth')
    with pytest.raises(ReferenceLayoutError, match=r"broken_tar.pth:prompts_vis.1"):
        convert_reference('dcmpl-ref', [tmp_path / 'broken_tar.pth', aux], tmp_path / 'out', **opts)


def test_dcmpl_token_buffers_from_another_clip_warn(tmp_path):
    net = dcmpl_tiny()
    tar, aux, _ = save_fu_run(net, tmp_path / 'run')
    other = tmp_path / 'other_clip.safetensors'  # a plugin weights file holding another (random) CLIP
    from pyiqa_agiqa.weights.io import save_weights
    save_weights({CLIP + k: v for k, v in create_clip(TINY, None).state_dict().items()}, other)
    with pytest.warns(UserWarning, match='token_(prefix|suffix) differs from the token embeddings of the CLIP used'):
        folder = convert_reference('dcmpl-ref', [tar, aux], tmp_path / 'out', clip_weights=other,
                                   network={'clip_model': TINY})
    assert json.loads((folder / 'card.json').read_text())['clip']['pretrained'] == 'local file other_clip.safetensors'


# ----- refused: code in the file -----

@pytest.mark.parametrize('kind', ['cianet-ref', 'ipce-ref', 'dcmpl-ref'])
def test_pickled_objects_are_refused_without_running(tmp_path, kind):
    marker = tmp_path / 'code_ran'
    if kind == 'cianet-ref':  # the numpy-scalar allow-list must not let anything else through
        ckpt = {'epoch': 1, 'model_state_dict': {'base.logit_scale': torch.ones(())},
                'all_results': {'srcc': np.float64(0.5), 'evil': Payload(marker)}}
    elif kind == 'ipce-ref':
        ckpt = {'model_state_dict': {'visual.conv1.weight': Payload(marker)}}
    else:
        ckpt = {'ctx': torch.zeros(8, 64), 'proj.weight': Payload(marker)}
    path = tmp_path / 'quality_best_ckpt.pt'
    torch.save(ckpt, path)
    with pytest.raises(UnsafeWeightsError, match='pickled objects other than tensors.*--key model_state_dict'):
        convert_reference(kind, [path], tmp_path / 'out', network={'clip_model': TINY})
    assert not marker.exists() and not (tmp_path / 'out').exists()


# ----- the published architectures (ViT-B/32; random weights) -----

@pytest.mark.slow
def test_cianet_vit_b32(tmp_path):
    net = perturbed(CIANet(pretrained=False))
    ckpt = cianet_checkpoint(net)
    ref = ckpt['model_state_dict']
    assert ref['MLP.fc1.0.weight'].shape == (256, 1024) and ref['MLP.fc2.0.weight'].shape == (1, 256)
    for key in ('base.visual.conv1.weight', 'base.visual.transformer.resblocks.11.attn.in_proj_weight',
                'base.transformer.resblocks.11.mlp.c_fc.weight', 'base.token_embedding.weight',
                'base.positional_embedding', 'base.ln_final.weight', 'base.text_projection', 'base.logit_scale',
                'CIALayer.self_attention22.ln_2.bias', 'CIALayer.cross_attention2.ln_3.weight'):
        assert key in ref, key
    torch.save(ckpt, tmp_path / 'quality_best_ckpt.pt')
    folder = convert_reference('cianet-ref', [tmp_path / 'quality_best_ckpt.pt'], tmp_path / 'out')
    fresh, card = reload(folder)
    assert card['network'] == CIANet.card_options({'clip_model': 'ViT-B-32-quickgelu'})
    assert card['metrics'] == ['cianet', 'cianet_authenticity', 'cianet_consistency']
    x = images(size=(224, 224), n=1)
    with torch.no_grad():
        assert_same_scores(net(x, PROMPTS[:1]), fresh(x, PROMPTS[:1]))


@pytest.mark.slow
def test_ipce_vit_b32(tmp_path):
    net = perturbed(IPCE(pretrained=False, min_side=224), fp16_representable=OPENAI_FP16)
    torch.save({'model_state_dict': openai_clip_sd(net.state_dict())}, tmp_path / 'quality_best_ckpt.pt')
    folder = convert_reference('ipce-ref', [tmp_path / 'quality_best_ckpt.pt'], tmp_path / 'out',
                               network={'min_side': 224})
    fresh, card = reload(folder)
    assert card['network'] == IPCE.card_options({'clip_model': 'ViT-B-32-quickgelu', 'min_side': 224})
    assert 'ipce' in card['metrics']
    x = images(size=(224, 224), n=1)
    with torch.no_grad():
        assert_same_scores(net(x, PROMPTS[:1]), fresh(x, PROMPTS[:1]))


@pytest.mark.slow
def test_ipce_detects_vit_l14():
    sd = openai_clip_sd({CLIP + k: v for k, v in create_clip('ViT-L-14-quickgelu', None).state_dict().items()})
    assert detect_ipce_network(sd) == dict(clip_model='ViT-L-14-quickgelu', min_side=768)


@pytest.mark.slow
@pytest.mark.filterwarnings('error::UserWarning')
def test_dcmpl_vit_b32(tmp_path):
    net = perturbed(DCMPL(pretrained=False, mpa=False, adapter=False))
    tar, aux = fu_prompt_learners(net.state_dict())
    shapes = {'ctx': (8, 512), 'token_prefix': (2, 1, 512), 'token_suffix': (2, 68, 512), 'proj.weight': (768, 1536),
              'proj.bias': (768,), 'prompts_text.10': (8, 512), 'prompts_vis.11': (8, 768),
              'compound_prompt_projections.10.weight': (768, 1536), 'compound_prompt_projections.10.bias': (768,)}
    assert {k: tuple(tar[k].shape) for k in shapes} == shapes
    assert len(tar) == 3 + 2 + 11 + 12 + 22 and len(aux) == 3 + 11 + 12
    tar_path, aux_path, clip_path = save_fu_run(net, tmp_path / 'run', clip_fp16=True)
    folder = convert_reference('dcmpl-ref', [tar_path, aux_path], tmp_path / 'out', clip_weights=clip_path)
    fresh, card = reload(folder)
    assert card['network'] == DCMPL.card_options(
        dict(clip_model='ViT-B-32-quickgelu', use_aux=True, mpa=False, adapter=False))
    x = images(size=(224, 224), n=1)
    with torch.no_grad():  # the CLIP went through fp16: compare with the original's fp16-rounded CLIP
        net.backbone.model.load_state_dict({k: v.float() for k, v in openai_clip_sd(net.state_dict()).items()})
        assert_same_scores(net(x), fresh(x))


def test_converted_folder_serves_the_metrics_and_the_command_line(tmp_path):
    """docs/weights.md's route: `pyiqa-agiqa convert-reference` on a reference file, then the
    plugin's metrics with weights=FOLDER (card checked) give the reference network's scores."""
    import subprocess
    import sys

    import pyiqa
    import pyiqa_agiqa  # noqa: F401

    net = perturbed(CIANet(clip_model=TINY, pretrained=False), fp16_representable=OPENAI_FP16).eval()
    path = tmp_path / 'quality_best_ckpt.pt'
    torch.save(cianet_checkpoint(net), path)
    folder = convert_reference('cianet-ref', [path], tmp_path / 'out', network={'clip_model': TINY})
    x = images()
    with torch.no_grad():
        expected = net(x, PROMPTS)
    for metric, output in (('cianet', 'quality'), ('cianet_consistency', 'consistency')):
        scores = pyiqa.create_metric(metric, device='cpu', weights=str(folder), clip_pretrained=None,
                                     clip_model=TINY)(x, prompt=PROMPTS)
        # pyiqa's wrapper and the network called directly: two float32 runs, each within rounding()
        # of the exact value at the output's range (consistency: the logit scale)
        scale = float(net.backbone.logit_scale() if output == 'consistency' else 1 + expected[output].abs().max())
        tolerance = 2 * rounding(torch.float32, scale)
        assert torch.allclose(scores[:, 0], expected[output], atol=tolerance, rtol=0)
    result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli', 'convert-reference', '--from', 'cianet-ref',
                             str(path), '-o', str(tmp_path / 'out'), '--set', f'clip_model={TINY}'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith('error: ') and 'overwrite' in result.stderr
