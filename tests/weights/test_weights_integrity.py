"""Weights files that would give wrong scores are refused at load, in one line naming the file
and the tensors: NaN / infinite values, shapes of another network or CLIP; a card's weights file
stays in its folder; errors name files, never stream objects; every file written gets the
permissions an ordinary open() gives."""

import io
import json
import os
import shutil

import pyiqa
import pytest
import torch
from safetensors.torch import save_file

import pyiqa_agiqa  # noqa: F401  (metric entries)
from pyiqa_agiqa.archs import DCMPL, IPCE
from pyiqa_agiqa.archs.backbone.clip import create_clip
from pyiqa_agiqa.data.embedded_prompts import read_embedded_prompt
from pyiqa_agiqa.data.image_io import ImageReadError, load_rgb
from pyiqa_agiqa.export.convert import convert_reference, to_reference_layout
from pyiqa_agiqa.export.experiment import export_experiment
from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.training.state import StateStore, load_state
from pyiqa_agiqa.weights.card import CardMismatchError
from pyiqa_agiqa.weights.io import (WeightsFormatError, atomic_write, load_network_weights, save_weights,
                                    sha256_file)

from training_helpers import cli, experiment, ipce_options, write_options

TINY_IPCE = dict(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, large_side=100000)
RN = dict(clip_model='AGIQA-Tiny-RN', min_side=64, stride=16, large_side=100000)


def ipce_state(**options):
    torch.manual_seed(0)
    return IPCE(pretrained=False, **dict(TINY_IPCE, **options)).state_dict()


def poisoned(state, key, value=float('nan')):
    state = {k: v.clone() for k, v in state.items()}
    state[key].view(-1)[0] = value
    return state


@pytest.fixture(scope='module')
def trained(demo_data, tmp_path_factory):
    """A finished tiny IPCE run (ResNet CLIP) and its export."""
    root = tmp_path_factory.mktemp('integrity')
    run_training(['-opt', str(write_options(ipce_options(demo_data, 'ipce_rn', epochs=1), root))],
                 root_path=str(root))
    return root, export_experiment(experiment(root, 'ipce_rn'), root / 'exported')[0]


# ----- 3. non-finite tensors -----

@pytest.mark.parametrize('suffix', ['.safetensors', '.pth'])
def test_a_weights_file_with_nan_or_inf_is_refused_naming_the_tensors(tmp_path, suffix):
    key = 'backbone.model.text_projection'
    state = poisoned(poisoned(ipce_state(), key), 'backbone.model.positional_embedding', float('inf'))
    path = tmp_path / f'diverged{suffix}'
    if suffix == '.safetensors':
        save_file(state, str(path))
    else:
        torch.save({'params': state}, path)
    with pytest.raises(WeightsFormatError) as error:
        pyiqa.create_metric('ipce', device='cpu', clip_pretrained=None, pretrained_model_path=str(path), **TINY_IPCE)
    text = str(error.value)
    assert text.startswith(f"'{path}' holds NaN or infinite values in 2 tensor(s) ")
    assert key in text and 'backbone.model.positional_embedding' in text and 'earlier checkpoint' in text


def test_score_refuses_nan_weights_in_one_line(tmp_path):
    path = tmp_path / 'nan.safetensors'
    save_file(poisoned(ipce_state(), 'backbone.model.logit_scale'), str(path))
    from PIL import Image
    Image.new('RGB', (64, 64), (10, 200, 30)).save(tmp_path / 'a.png')
    result = cli(['score', 'ipce', '-t', tmp_path / 'a.png', '--prompt', 'a green square', '--weights', path,
                  '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'clip_pretrained=null', '--set', 'min_side=64',
                  '--device', 'cpu', '-q'], cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (f"error: '{path}' holds NaN or infinite values in 1 tensor(s) "
                             "['backbone.model.logit_scale']: weights of a run that diverged (or a damaged file) "
                             'score every image NaN: use an earlier checkpoint of that run (or its net_best), or '
                             'train again with a lower learning rate\n')


def test_an_exported_folder_with_nan_weights_is_refused(trained, tmp_path):
    _, folder = trained
    copy = tmp_path / 'copy'
    shutil.copytree(folder, copy)
    weights = copy / 'weights.safetensors'
    from safetensors.torch import load_file
    save_file(poisoned(load_file(str(weights)), 'backbone.model.logit_scale'), str(weights))
    card = json.loads((copy / 'card.json').read_text())
    card['weights']['sha256'] = sha256_file(weights)  # a card that agrees: only the values are wrong
    (copy / 'card.json').write_text(json.dumps(card))
    with pytest.raises(WeightsFormatError, match=f"'{weights}' holds NaN or infinite values in 1 tensor"):
        pyiqa.create_metric('ipce', device='cpu', weights=str(copy), clip_pretrained=None, **RN)


def test_training_refuses_nan_pretrain_network_and_resume_states(trained, demo_data, tmp_path):
    root, _ = trained
    best = experiment(root, 'ipce_rn') / 'models' / 'net_best.pth'
    state = torch.load(best, weights_only=True)['params']
    bad = tmp_path / 'pretrain.pth'
    torch.save({'params': poisoned(state, 'backbone.model.logit_scale')}, bad)
    opt = ipce_options(demo_data, 'from_nan', epochs=1)
    opt['path']['pretrain_network'] = str(bad)
    with pytest.raises(WeightsFormatError, match=f"'{bad}' holds NaN or infinite values in 1 tensor"):
        run_training(['-opt', str(write_options(opt, tmp_path))], root_path=str(tmp_path))
    # a resume state whose network holds NaN: refused by name, --auto_resume takes the one before it
    states = StateStore(experiment(root, 'ipce_rn') / 'training_states').paths()
    newest = states[0][1]
    saved = torch.load(newest, weights_only=True)
    saved['net'] = poisoned(saved['net'], 'backbone.model.logit_scale')
    copy = tmp_path / 'states'
    copy.mkdir()
    torch.save(saved, copy / '999.state')
    with pytest.raises(WeightsFormatError, match=r"999.state' \(net\) holds NaN or infinite values in 1 tensor"):
        load_state(copy / '999.state')
    shutil.copy(newest, copy / newest.name)
    warnings = []
    assert StateStore(copy).latest(warn=warnings.append)[1] == copy / newest.name
    assert '999.state cannot be used' in warnings[0] and 'NaN' in warnings[0]


def test_convert_and_clip_files_with_nan_are_refused(tmp_path):
    state = poisoned(ipce_state(), 'backbone.model.text_projection')
    reference = tmp_path / 'quality_best_ckpt.pt'
    torch.save(to_reference_layout('ipce-ref', state), reference)
    with pytest.raises(ValueError, match=f"'{reference}' holds NaN or infinite values in 1 tensor\\(s\\) "
                                         r"\['text_projection'\]"):
        convert_reference('ipce-ref', [reference], tmp_path / 'out', network={'clip_model': 'AGIQA-Tiny-ViT'})
    assert not (tmp_path / 'out').exists()
    clip = tmp_path / 'clip.safetensors'
    save_file(poisoned(create_clip('AGIQA-Tiny-ViT', None).state_dict(), 'positional_embedding'), str(clip))
    with pytest.raises(WeightsFormatError, match=f"'{clip}' \\(CLIP weights\\) holds NaN or infinite values in 1 "
                                                 r"tensor\(s\) \['positional_embedding'\]: a damaged file"):
        create_clip('AGIQA-Tiny-ViT', str(clip))


# ----- 4. weights of another shape -----

def test_weights_of_another_clip_are_named_with_their_shapes(tmp_path):
    path = tmp_path / 'vit.safetensors'
    save_weights(ipce_state(), path)
    net = IPCE(pretrained=False, **RN)
    for strict in (True, False):  # path.strict_load: false still cannot load another shape
        with pytest.raises(WeightsFormatError) as error:
            load_network_weights(net, path, strict=strict)
        text = str(error.value)
        assert text.startswith(f"'{path}' does not fit IPCE: ") and 'tensor(s) of another shape (' in text
        assert 'in the file,' in text and 'expected' in text
        assert "built with clip_model 'AGIQA-Tiny-RN'" in text and 'with the clip_model they were trained with' in text
        assert ('missing key(s)' in text) == strict
    from PIL import Image
    Image.new('RGB', (64, 64), (10, 200, 30)).save(tmp_path / 'a.png')
    result = cli(['score', 'ipce', '-t', tmp_path / 'a.png', '--prompt', 'a cat', '--weights', path, '--set',
                  'clip_model=AGIQA-Tiny-RN', '--set', 'clip_pretrained=null', '--set', 'min_side=64', '--device',
                  'cpu', '-q'], cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith(f"error: '{path}' does not fit IPCE: "), result.stderr


def test_a_card_that_hides_another_shape_is_named(trained, tmp_path):
    _, folder = trained
    copy = tmp_path / 'copy'
    shutil.copytree(folder, copy)
    card = json.loads((copy / 'card.json').read_text())
    del card['network']['clip_model']  # a card that does not say which CLIP: only the shapes can tell
    (copy / 'card.json').write_text(json.dumps(card))
    with pytest.raises(CardMismatchError, match=r"weights.safetensors' does not fit IPCE: \d+ tensor\(s\) of another "
                                                r"shape .*Its card says IPCE \(IPCE\)"):
        pyiqa.create_metric('ipce', device='cpu', weights=str(copy), clip_pretrained=None,
                            **dict(RN, clip_model='AGIQA-Tiny-ViT'))


def test_a_run_resumed_with_another_clip_is_named(trained, demo_data, tmp_path):
    root, _ = trained
    shutil.copytree(experiment(root, 'ipce_rn'), experiment(tmp_path, 'ipce_rn'))
    opt = ipce_options(demo_data, 'ipce_rn', epochs=2)
    opt['network']['clip_model'] = 'AGIQA-Tiny-ViT'  # the run started with AGIQA-Tiny-RN
    path = write_options(opt, tmp_path / 'changed')
    with pytest.raises(WeightsFormatError) as error:
        run_training(['-opt', str(path), '--auto_resume'], root_path=str(tmp_path))
    text = str(error.value)
    assert text.startswith(f"'{experiment(tmp_path, 'ipce_rn') / 'training_states' / '6.state'} (net_best)' does not "
                           'fit IPCE: ') and 'tensor(s) of another shape' in text
    assert text.endswith('resume it with the option file it started with, or start a new run under another name')


def test_clip_and_prompt_files_of_another_shape_are_named(tmp_path):
    rn = tmp_path / 'rn.safetensors'
    save_weights(create_clip('AGIQA-Tiny-RN', None).state_dict(), rn)
    expected = (f"CLIP weights '{rn}' do not fit open_clip model 'AGIQA-Tiny-ViT': "
                r'1 tensor\(s\) of another shape \(visual.conv1.weight: 8x3x3x3 in the file, 64x3x8x8 expected\), '
                r'\d+ missing key\(s\), \d+ unexpected')
    with pytest.raises(WeightsFormatError, match=expected):
        create_clip('AGIQA-Tiny-ViT', str(rn))
    net = DCMPL(pretrained=False, clip_model='AGIQA-Tiny-ViT', use_aux=False, mpa=False, adapter=False)
    prompts = {k: v.clone() for k, v in net.prompt_learner_tar.state_dict().items()}
    key = next(iter(prompts))
    prompts[key] = torch.zeros(3, 3)
    path = tmp_path / 'tar.pth'
    torch.save(prompts, path)
    with pytest.raises(WeightsFormatError, match=f"'{path}' does not fit .*{key}: 3x3 in the file"):
        net.load_clip_agiqa_prompts(path)


def test_a_card_cannot_point_outside_its_folder(trained, tmp_path):
    _, folder = trained
    copy = tmp_path / 'shelf' / 'copy'
    shutil.copytree(folder, copy)
    (copy / 'weights.safetensors').rename(tmp_path / 'shelf' / 'elsewhere.safetensors')
    card = json.loads((copy / 'card.json').read_text())
    card['weights']['file'] = '../elsewhere.safetensors'
    (copy / 'card.json').write_text(json.dumps(card))
    with pytest.raises(CardMismatchError, match="weights.file must be the name of a file in the card's own folder "
                                                r"\(such as 'weights.safetensors'\), got '../elsewhere.safetensors'"):
        pyiqa.create_metric('ipce', device='cpu', weights=str(copy), clip_pretrained=None, **RN)


# ----- 4. errors name files, not stream objects -----

def test_errors_about_streams_name_the_file():
    with pytest.raises(ImageReadError) as error:
        load_rgb(io.BytesIO(b'not an image at all' * 4), name='shard/0001.png')
    assert str(error.value) == "Cannot read image shard/0001.png: cannot identify image file 'shard/0001.png'"
    found = read_embedded_prompt(io.BytesIO(b'not an image at all' * 4))
    assert 'object at 0x' not in found.detail and 'UnidentifiedImageError: cannot identify image file)' in found.detail


# ----- 6. permissions of what is written -----

@pytest.fixture
def umask():
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(mask):
        os.umask(mask)
    yield set_to
    os.umask(saved)


def mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_written_files_get_the_umask_or_keep_the_replaced_files_mode(umask, tmp_path):
    state = ipce_state()
    for mask, expected in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        umask(mask)
        folder = tmp_path / f'{mask:03o}'
        folder.mkdir()
        for name in ('w.safetensors', 'w.pth'):
            assert mode(save_weights(state, folder / name)) == expected, (name, oct(mask))
        atomic_write(folder / 'text.json', lambda tmp: open(tmp, 'w').write('{}'))
        assert mode(folder / 'text.json') == expected
    umask(0o022)
    kept = tmp_path / 'kept.safetensors'
    kept.write_bytes(b'')
    os.chmod(kept, 0o640)
    save_weights(state, kept)
    assert mode(kept) == 0o640  # as open(path, 'w') on an existing file


def test_exported_and_checkpoint_files_get_the_umask(trained, umask, tmp_path):
    root, _ = trained
    suite = os.umask(0o022)  # the umask the fixture's run was written under
    umask(0o002)
    folder = export_experiment(experiment(root, 'ipce_rn'), tmp_path / 'exported')[0]
    assert {p.name: mode(p) for p in folder.iterdir()} == {'weights.safetensors': 0o664, 'card.json': 0o664,
                                                           'README.md': 0o664}
    run = experiment(root, 'ipce_rn')
    for path in list((run / 'models').iterdir()) + [run / 'results.json']:
        assert mode(path) == 0o666 & ~suite, path
    states = experiment(root, 'ipce_rn') / 'training_states'
    assert all(mode(p) == 0o666 & ~suite for p in states.iterdir())
