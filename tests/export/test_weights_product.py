"""Trained weights as a product: export with a model card, load by folder / file / hub
reference / name with the card checked, push (an autospecced HfApi) and fetch (huggingface_hub
offline, over a cache of its real layout), multi-split export."""

import json
import shutil

import pyiqa
import pytest
import torch

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.weights import hub as weights_hub
from pyiqa_agiqa.weights import specs as weight_specs
from pyiqa_agiqa.weights.card import CardMismatchError, read_card
from pyiqa_agiqa.export.experiment import export_experiment
from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.weights.io import load_state_dict

from conftest import rounding
from hub_helpers import autospec_api, offline_hub
from training_helpers import cianet_options, cli, experiment, ipce_options, write_options

RN = dict(clip_model='AGIQA-Tiny-RN', min_side=64, stride=16, large_side=100000)


@pytest.fixture(scope='module')
def trained(demo_data, tmp_path_factory):
    """A finished tiny IPCE run and its export."""
    root = tmp_path_factory.mktemp('product')
    opt = ipce_options(demo_data, 'ipce_tiny', epochs=2)
    run_training(['-opt', str(write_options(opt, root))], root_path=str(root))
    exported = export_experiment(experiment(root, 'ipce_tiny'), root / 'exported')[0]
    return root, exported


def images():
    torch.manual_seed(0)
    return torch.rand(3, 3, 64, 64)


def test_export_writes_weights_and_a_complete_card(trained):
    root, folder = trained
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'card.json', 'weights.safetensors']
    card = read_card(folder)
    results = json.loads((experiment(root, 'ipce_tiny') / 'results.json').read_text())
    assert card['architecture'] == 'IPCE' and card['method'] == 'IPCE' and card['outputs'] == ['score']
    assert card['clip'] == {'model': 'AGIQA-Tiny-RN', 'pretrained': 'openai',
                            'licence': 'MIT (OpenAI CLIP weights, github.com/openai/CLIP)'}
    training = card['training']
    assert (training['split_scheme'], training['split_index']) == ('demo', 1)
    assert training['selected_on'] == 'demo_val' and training['key_metric'] == 'srcc_plcc'
    assert training['selected_iter'] == results['selected_iter'] and 'val_epochs' in training['option_file']
    assert card['results']['demo_test']['srcc'] == results['results']['demo_test']['srcc']['val']
    assert set(card['licences']) == {'plugin', 'data', 'clip'} and 'PolyForm' in card['licences']['plugin']
    assert {'pyiqa_agiqa', 'pyiqa', 'torch', 'open_clip'} <= set(card['versions'])
    best = load_state_dict(experiment(root, 'ipce_tiny') / 'models' / 'net_best.pth')
    exported = load_state_dict(folder / 'weights.safetensors')
    assert all(torch.equal(best[k], exported[k]) for k in best)
    readme = (folder / 'README.md').read_text()
    assert 'demo_test' in readme and card['weights']['sha256'] in readme


def test_create_metric_loads_the_folder_and_checks_its_card(trained):
    root, folder = trained
    metric = pyiqa.create_metric('ipce', device='cpu', weights=str(folder), clip_pretrained=None, **RN)
    direct = pyiqa.create_metric('ipce', device='cpu', clip_pretrained=None, **RN,
                                 pretrained_model_path=str(experiment(root, 'ipce_tiny') / 'models' / 'net_best.pth'))
    x = images()
    assert torch.equal(metric(x, prompt=['a'] * 3), direct(x, prompt=['a'] * 3))
    with pytest.raises(CardMismatchError, match=r"was trained with min_side=64, but min_side=512 was asked for"):
        pyiqa.create_metric('ipce', device='cpu', weights=str(folder), clip_pretrained=None,
                            **dict(RN, min_side=512))
    with pytest.raises(CardMismatchError, match='holds IPCE weights \\(IPCE\\), not CIANet'):
        pyiqa.create_metric('cianet', device='cpu', weights=str(folder), clip_pretrained=None,
                            clip_model='AGIQA-Tiny-RN')


def test_a_changed_weights_file_is_refused(trained, tmp_path):
    _, folder = trained
    copy = tmp_path / 'copy'
    shutil.copytree(folder, copy)
    data = bytearray((copy / 'weights.safetensors').read_bytes())
    data[-1] ^= 1
    (copy / 'weights.safetensors').write_bytes(bytes(data))
    with pytest.raises(CardMismatchError, match="differs from the card's"):
        pyiqa.create_metric('ipce', device='cpu', weights=str(copy), clip_pretrained=None, **RN)


def test_untrained_output_is_refused(demo_data, tmp_path):
    opt = cianet_options(demo_data, 'cia_q', stage_epochs=(1, 1))
    opt['targets'] = {'quality': 'mos_quality'}
    opt['train']['losses'] = {'quality': {'type': 'MSELoss'}}
    opt['train']['stages'][1]['losses'] = ['quality']
    opt['val']['key_metric'] = 'srcc'
    opt['manual_seed'] = 2  # a live quality head at initialisation (see test_option_files)
    run_training(['-opt', str(write_options(opt, tmp_path))], root_path=str(tmp_path))
    folder = export_experiment(experiment(tmp_path, 'cia_q'), tmp_path / 'out')[0]
    assert read_card(folder)['outputs'] == ['quality']
    pyiqa.create_metric('cianet', device='cpu', weights=str(folder), clip_pretrained=None, clip_model='AGIQA-Tiny-ViT')
    with pytest.raises(CardMismatchError, match="trained for outputs \\['quality'\\]; the 'consistency' output"):
        pyiqa.create_metric('cianet_consistency', device='cpu', weights=str(folder), clip_pretrained=None,
                            clip_model='AGIQA-Tiny-ViT')


def test_push_then_load_by_hub_reference_and_by_name(trained, tmp_path, monkeypatch, no_network):
    """push (a bare repository name) against an autospecced HfApi whose upload leaves the files
    in a hub cache of the real layout; loading the pinned spec then runs huggingface_hub's own
    code, offline."""
    _, folder = trained
    api = autospec_api(namespace='agiqa', cache=tmp_path / 'hub')
    offline_hub(monkeypatch, tmp_path / 'hub')
    spec = weights_hub.push_folder(folder, 'test-weights', path_in_repo='ipce_tiny', api=api)
    assert spec == f'hf://agiqa/test-weights@{api.commits[0]}/ipce_tiny'
    x = images()
    prompts = ['a', 'b', 'c']
    local = pyiqa.create_metric('ipce', device='cpu', weights=str(folder), clip_pretrained=None,
                                **RN)(x, prompt=prompts)
    from_hub = pyiqa.create_metric('ipce', device='cpu', weights=spec, clip_pretrained=None, **RN)(x, prompt=prompts)
    assert torch.equal(local, from_hub)
    monkeypatch.setitem(weight_specs.NAMED_WEIGHTS, 'ipce-tiny-demo', spec)
    by_name = pyiqa.create_metric('ipce', device='cpu', weights='ipce-tiny-demo', clip_pretrained=None, **RN)
    assert torch.equal(by_name(x, prompt=prompts), local)
    with pytest.raises(FileNotFoundError, match="did you mean 'ipce-tiny-demo'"):
        pyiqa.create_metric('ipce', device='cpu', weights='ipce-tiny-dem', clip_pretrained=None, **RN)
    with pytest.warns(UserWarning, match='not pinned to a revision'):  # main, as the cache's refs/main says
        unpinned = weights_hub.fetch_from_hub(weights_hub.parse_hub_reference('hf://agiqa/test-weights/ipce_tiny'))
    assert read_card(unpinned) == read_card(folder)


def test_the_named_table_is_empty_until_weights_are_published():
    assert weight_specs.NAMED_WEIGHTS == {}


def test_multi_split_export_carries_the_mean_and_std(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'two_splits', epochs=1)
    opt['split_num'] = 2
    opt['save_final_results_path'] = str(tmp_path / 'table.txt')
    cli(['train-nsplits', '-opt', write_options(opt, tmp_path)], cwd=tmp_path)
    cli(['export', experiment(tmp_path, 'two_splits'), '-o', tmp_path / 'out'], cwd=tmp_path)
    cards = [read_card(tmp_path / 'out' / f'split_{i:02d}') for i in (1, 2)]
    assert [c['training']['split_index'] for c in cards] == [1, 2]
    table = cards[0]['splits']['demo_test']['srcc']
    values = [c['results']['demo_test']['srcc'] for c in cards]
    assert table['n'] == 2 and abs(table['mean'] - sum(values) / 2) <= rounding(torch.float64, ops=2)  # sum, halving
    one = cli(['export', experiment(tmp_path, 'two_splits'), '-o', tmp_path / 'one', '--split', '2'], cwd=tmp_path)
    assert 'exported to' in one.stderr and read_card(tmp_path / 'one')['training']['split_index'] == 2


def test_score_command_takes_an_exported_folder(trained, tmp_path):
    from PIL import Image
    _, folder = trained
    Image.new('RGB', (64, 64), (20, 120, 200)).save(tmp_path / 'a.png')
    result = cli(['score', 'ipce', '-t', tmp_path / 'a.png', '--prompt', 'a blue square', '--weights', folder,
                  '--set', 'clip_model=AGIQA-Tiny-RN', '--set', 'min_side=64', '--set', 'stride=16',
                  '--set', 'large_side=100000', '--set', 'clip_pretrained=null', '--device', 'cpu', '-q'],
                 cwd=tmp_path)
    assert result.stdout.strip().startswith(str(tmp_path / 'a.png'))


def test_split_numbers_are_split_index_in_run_names_and_export(tmp_path):
    """One numbering: split_index N trains as NAME_SplitNN, and export --split N finds that folder."""
    from pyiqa_agiqa.export.experiment import split_folders
    from pyiqa_agiqa.training.nsplits import split_options, split_run_name

    assert split_run_name('ipce', 1) == 'ipce_Split01'
    opt = {'name': 'ipce', 'is_train': True, 'datasets': {'train': {}, 'val': {}}, 'path': {}}
    split = split_options(opt, 2, str(tmp_path))
    assert split['name'] == 'ipce_Split02' and {b['split_index'] for b in split['datasets'].values()} == {2}
    for name in ('ipce_Split01', 'ipce_Split02'):
        (tmp_path / 'experiments' / name).mkdir(parents=True, exist_ok=True)
    assert {index: folder.name for index, folder in split_folders(tmp_path / 'experiments' / 'ipce').items()} == {
        1: 'ipce_Split01', 2: 'ipce_Split02'}
