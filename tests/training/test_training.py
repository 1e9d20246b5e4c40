"""Training IPCE through pyiqa's pipeline: pyiqa's script, the plugin command, n splits,
checkpoint selection on val, and the shipped option file."""

import os
import subprocess
import sys
from pathlib import Path

import pyiqa
import pytest
import torch
import yaml

from pyiqa_agiqa.demo.run import demo_options
from pyiqa_agiqa.errors import OptionError
from pyiqa_agiqa.training.pipeline import run_training

from conftest import DEMO_VIEWS, REPO, TINY, console_script


def tiny_options(demo_data, name, epochs=2):
    csv, images = demo_data
    opt = demo_options(csv, images, epochs)
    opt['name'] = name
    opt['logger']['print_freq'] = 1
    return opt


def write(opt, folder: Path) -> Path:
    path = folder / f"{opt['name']}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_pyiqa_own_train_script_finds_the_plugin(demo_data, tmp_path):
    """`python -m pyiqa.train` never imports pyiqa_agiqa: the entry points must do it."""
    name = f'agiqa_test_pyiqa_route_{os.getpid()}'
    opt_file = write(tiny_options(demo_data, name, epochs=1), tmp_path)
    experiments = Path(pyiqa.__file__).resolve().parents[1] / 'experiments'  # pyiqa's root_path
    try:
        run([sys.executable, '-m', 'pyiqa.train', '-opt', str(opt_file)], tmp_path)
        assert (experiments / name / 'models' / 'net_best.pth').is_file()
    finally:
        import shutil
        shutil.rmtree(experiments / name, ignore_errors=True)
        if experiments.is_dir() and not any(experiments.iterdir()):
            experiments.rmdir()


def test_plugin_command_trains_under_the_working_directory(demo_data, tmp_path):
    opt_file = write(tiny_options(demo_data, 'cli_route'), tmp_path)
    run([console_script(), 'train', '-opt', str(opt_file)], tmp_path)
    folder = tmp_path / 'experiments' / 'cli_route'
    assert (folder / 'models' / 'net_best.pth').is_file()
    log = next(folder.glob('train_cli_route_*.log')).read_text()
    assert 'Validation demo_val' in log and 'Validation demo_test' in log and 'l_score' in log


def test_nsplits_runner_writes_mean_and_std(demo_data, tmp_path):
    opt = tiny_options(demo_data, 'nsplits', epochs=1)
    opt['split_num'] = 2
    opt['save_final_results_path'] = str(tmp_path / 'results.txt')
    run([console_script(), 'train-nsplits', '-opt', str(write(opt, tmp_path))], tmp_path)
    table = (tmp_path / 'results.txt').read_text()
    assert 'demo_test\t01' in table and 'demo_test\t02' in table and 'Overall results in demo_test' in table
    assert (tmp_path / 'experiments' / 'nsplits_Split02' / 'models' / 'net_best.pth').is_file()


def test_selection_is_on_val_and_test_is_reported_at_that_checkpoint(demo_data, tmp_path):
    results = run_training(['-opt', str(write(tiny_options(demo_data, 'selection', epochs=3), tmp_path))],
                           root_path=str(tmp_path))
    val, test = results['demo_val'], results['demo_test']
    assert set(val) == {'srcc', 'plcc', 'krcc', 'srcc_plcc'}
    best_iter = val['srcc_plcc']['iter']
    assert best_iter > 0 and all(m['iter'] == best_iter for m in list(val.values()) + list(test.values()))
    saved = torch.load(tmp_path / 'experiments' / 'selection' / 'models' / 'net_best.pth', weights_only=True)
    assert 'backbone.model.logit_scale' in saved['params']


def test_training_lowers_the_loss(demo_data):
    from pyiqa.archs import build_network

    from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset
    from conftest import dataset_opt

    torch.manual_seed(0)
    net = build_network(dict(type='IPCE', **dict(TINY, clip_model='AGIQA-Tiny-RN')))
    batch = next(iter(torch.utils.data.DataLoader(AGIQADataset(dataset_opt(demo_data, 'train')), batch_size=8)))
    optim = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-4)
    losses = []
    for _ in range(20):
        loss = (net(batch['img'], prompt=list(batch['prompt']))[:, 0] - batch['labels']['mos_quality']).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.5 * losses[0], losses


def test_unknown_model_options_are_refused(demo_data, tmp_path):
    opt = tiny_options(demo_data, 'bad_options')
    opt['train']['lossses'] = opt['train'].pop('losses')
    with pytest.raises(OptionError, match="unknown option\\(s\\) \\['lossses'\\] in section train"):
        run_training(['-opt', str(write(opt, tmp_path))], root_path=str(tmp_path))
    opt = tiny_options(demo_data, 'bad_target')
    opt['targets'] = {'quality': 'mos_quality'}
    with pytest.raises(OptionError, match="targets name outputs \\['quality'\\]"):
        run_training(['-opt', str(write(opt, tmp_path))], root_path=str(tmp_path))


def test_shipped_ipce_agiqa3k_options_run_on_synthetic_data(demo_data, tmp_path):
    """The published-recipe option file, with data and network sizes swapped for tiny ones."""
    opt = yaml.safe_load((REPO / 'options' / 'ipce_agiqa3k.yml').read_text())
    assert opt['train']['optim'] == {'type': 'AdamW', 'lr': 5e-6, 'weight_decay': 1e-3}
    assert opt['train']['scheduler'] == {'type': 'CosineAnnealingLR', 'T_max': 5}
    assert opt['train']['total_epoch'] == 30 and opt['datasets']['train']['batch_size_per_gpu'] == 16
    assert opt['train']['losses'] == {'score': {'type': 'L1Loss', 'loss_weight': 1.0}}
    assert opt['datasets']['train']['views']['n_train'] == 8 and opt['val']['key_metric'] == 'srcc_plcc'
    csv, images = demo_data
    for block in opt['datasets'].values():
        block.update(meta_info_file=str(csv), dataroot_target=str(images), split_scheme='demo',
                     views=dict(DEMO_VIEWS), num_worker_per_gpu=0, pin_memory=False)
    opt['network'].update({k: v for k, v in TINY.items()})
    opt.update(name='options_smoke', split_num=None, save_final_results_path=None)
    opt['train']['total_epoch'] = 1
    opt['val']['val_freq'] = 2
    opt['logger']['use_tb_logger'] = False
    results = run_training(['-opt', str(write(opt, tmp_path))], root_path=str(tmp_path))
    assert set(results) == {'agiqa3k_val', 'agiqa3k_test'}


def staged_options(demo_data, name, stages, total_epoch):
    opt = tiny_options(demo_data, name)
    del opt['train']['optim'], opt['train']['scheduler']
    opt['train'].update(stages=stages, total_epoch=total_epoch)
    return opt


def test_stages_freeze_switch_and_reload_the_best_checkpoint(demo_data, tmp_path, pyiqa_log):
    from pyiqa_agiqa.training.model import AGIQAModel

    seen = []
    original = AGIQAModel._enter_stage

    def spy(self, index):
        original(self, index)
        bare = self.get_bare_model(self.net)
        seen.append(dict(trainable={n for n, p in bare.named_parameters() if p.requires_grad},
                         lr=self.optimizer.param_groups[0]['lr'],
                         net={k: v.detach().clone() for k, v in bare.named_parameters()},
                         best={k: v.detach().clone() for k, v in self.net_best.named_parameters()}))

    stages = [dict(name='frozen', epochs=2, freeze=['backbone.model.visual.'], optim=dict(type='AdamW', lr=1e-3)),
              dict(name='all', epochs=1, reload_best=True, optim=dict(type='AdamW', lr=1e-4),
                   scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.1))]
    AGIQAModel._enter_stage = spy
    try:
        run_training(['-opt', str(write(staged_options(demo_data, 'stages', stages, 3), tmp_path))],
                     root_path=str(tmp_path))
    finally:
        AGIQAModel._enter_stage = original
    first, second = seen
    assert (first['lr'], second['lr']) == (1e-3, 1e-4)
    assert not any(n.startswith('backbone.model.visual.') for n in first['trainable'])
    assert any(n.startswith('backbone.model.visual.') for n in second['trainable'])
    assert 'backbone.model.logit_scale' not in second['trainable']  # frozen by the network itself
    for key, value in second['net'].items():  # stage 2 starts from the val-selected checkpoint
        assert torch.equal(value, second['best'][key]), key
        if key.startswith('backbone.model.visual.'):  # which stage 1 could not change
            assert torch.equal(value, first['net'][key]), key
    assert not torch.equal(second['net']['backbone.model.token_embedding.weight'],
                           first['net']['backbone.model.token_embedding.weight'])
    assert any("Stage 2/2 'all'" in m for m in pyiqa_log)


def test_early_stop_ends_a_stage(demo_data, tmp_path, pyiqa_log):
    stages = [dict(name='only', epochs=6, early_stop=1, optim=dict(type='AdamW', lr=5e-2))]
    opt = staged_options(demo_data, 'early', stages, 6)
    run_training(['-opt', str(write(opt, tmp_path))], root_path=str(tmp_path))
    stops = [m for m in pyiqa_log if "Early stop of stage 'only': 1 validations without improvement" in m]
    assert len(stops) == 1
    after = pyiqa_log[pyiqa_log.index(stops[0]) + 1:]
    assert not any(m.startswith('Validation demo_val') for m in after)


def test_stage_errors_are_named(demo_data, tmp_path):
    stages = [dict(name='a', epochs=1, optim=dict(type='AdamW', lr=1e-3), lr=3)]
    with pytest.raises(OptionError, match=r"train.stages\[0\] \(a\): unknown option\(s\) \['lr'\]"):
        run_training(['-opt', str(write(staged_options(demo_data, 'bad1', stages, 1), tmp_path))],
                     root_path=str(tmp_path))
    stages = [dict(name='a', epochs=2, optim=dict(type='AdamW', lr=1e-3))]
    with pytest.raises(OptionError, match='total_epoch \\(3\\) must equal the sum of the stage epochs \\(2\\)'):
        run_training(['-opt', str(write(staged_options(demo_data, 'bad2', stages, 3), tmp_path))],
                     root_path=str(tmp_path))
