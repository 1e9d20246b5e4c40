"""Exact resume: a run continued from any saved state (mid-epoch, epoch end, inside stage 2,
after a SIGKILL, from another folder) ends with the same weights and figures as the run that
was never interrupted."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.training.state import StateStore, load_state

from training_helpers import (TINY_VIT, assert_same_state, cianet_options, cli, experiment, ipce_options,
                              load_weights, write_options)


def clip_agiqa_options(demo_data, name):
    """Tiny CLIP-AGIQA: dropout and RandomResizedCrop inside the network draw from the global RNG."""
    opt = ipce_options(demo_data, name, epochs=3)
    for block in opt['datasets'].values():
        block.pop('views')
        block['augment'] = {'resize': 48, 'center_crop': 48}
    opt['datasets']['train']['augment']['hflip'] = True
    opt['network'] = dict(type='CLIPAGIQA', **TINY_VIT)
    opt['targets'] = {'quality': 'mos_quality'}
    opt['train']['losses'] = {'quality': {'type': 'MSELoss', 'loss_weight': 1.0}}
    opt['train']['optim'] = {'type': 'SGD', 'lr': 0.05, 'momentum': 0.9, 'weight_decay': 5e-4}
    return opt


def final_state(root, name) -> dict:
    store = StateStore(experiment(root, name) / 'training_states')
    state, _ = store.latest()
    return state


def results(root, name) -> dict:
    return json.loads((experiment(root, name) / 'results.json').read_text())['results']


def assert_same_run(root_a, root_b, name):
    """Same final network, same net_best and the same selected figures."""
    a, b = final_state(root_a, name), final_state(root_b, name)
    assert a['iter'] == b['iter'] and a['best_iter'] == b['best_iter']
    assert_same_state(a['net'], b['net'])
    assert_same_state(a['net_best'], b['net_best'])
    assert_same_state(load_weights(experiment(root_a, name) / 'models' / 'net_latest.pth'),
                      load_weights(experiment(root_b, name) / 'models' / 'net_latest.pth'))
    assert results(root_a, name) == results(root_b, name)


def resume_from(state_path, opt, root):
    """Run ``opt`` under ``root`` from a copy of one state file (nothing else of the first run)."""
    copy = root / 'given' / state_path.name
    copy.parent.mkdir(parents=True)
    shutil.copy(state_path, copy)
    opt = dict(opt, path=dict(opt['path'], resume_state=str(copy)))
    return run_training(['-opt', str(write_options(opt, root))], root_path=str(root))


@pytest.fixture(scope='module')
def full_run(demo_data, tmp_path_factory):
    """``full_run(network)``: (options, root, name) of an uninterrupted run of 3 epochs of 6
    iterations, states every 4 iterations and at every epoch end, all kept; one run per network
    for the tests of this module, which read it (and copy it before changing anything)."""
    runs = {}

    def run(network):
        if network not in runs:
            name = f'resume_{network}'
            opt = (ipce_options if network == 'ipce' else clip_agiqa_options)(demo_data, name)
            opt['logger'].update(save_checkpoint_freq=4, keep_states=100)
            full = tmp_path_factory.mktemp(f'full_{network}')
            run_training(['-opt', str(write_options(opt, full))], root_path=str(full))
            runs[network] = opt, full, name
        return runs[network]
    return run


@pytest.fixture(scope='module')
def stages_run(demo_data, tmp_path_factory):
    """(options, root, name) of an uninterrupted two-stage CIA-Net run that stops stage 2 early,
    every state kept."""
    name = 'resume_stages'
    opt = cianet_options(demo_data, name, stage_epochs=(2, 3), early_stop=2)
    opt['logger']['keep_states'] = 100
    full = tmp_path_factory.mktemp('full_stages')
    run_training(['-opt', str(write_options(opt, full))], root_path=str(full))
    return opt, full, name


@pytest.mark.parametrize('network', ['ipce', 'clip_agiqa'])
def test_resume_from_mid_epoch_and_epoch_end_states_equals_the_uninterrupted_run(network, full_run, tmp_path):
    opt, full, name = full_run(network)
    saved = {i: p for i, p in StateStore(experiment(full, name) / 'training_states').paths()}
    assert sorted(saved) == [4, 6, 8, 12, 16, 18]
    assert (load_state(saved[4])['epoch'], load_state(saved[4])['batches_done']) == (0, 4)
    assert (load_state(saved[6])['epoch'], load_state(saved[6])['batches_done']) == (1, 0)
    for iteration in (4, 6, 16):
        root = tmp_path / f'from_{iteration}'
        resume_from(saved[iteration], opt, root)
        assert_same_run(full, root, name)


def test_resume_inside_stage_two_restores_stage_optimizer_and_early_stop(stages_run, tmp_path):
    opt, full, name = stages_run
    saved = {load_state(p)['epoch']: p for _, p in StateStore(experiment(full, name) / 'training_states').paths()}
    inside = load_state(saved[3])
    assert inside['stage_index'] == 1 and len(inside['optimizers'][0]['param_groups'][0]['params']) > 40
    for epoch in (1, 3, 4):  # stage 1; stage 2 after its first epoch; stage 2 later
        root = tmp_path / f'from_epoch_{epoch}'
        resume_from(saved[epoch], opt, root)
        assert_same_run(full, root, name)


def test_truncated_newest_state_falls_back_to_the_previous_one(full_run, tmp_path, capfd):
    opt, full, name = full_run('ipce')
    root = tmp_path / 'run'
    shutil.copytree(full, root)
    options = write_options(opt, root)
    reference = final_state(root, name)
    newest_iter, newest = StateStore(experiment(root, name) / 'training_states').paths()[0]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a kill in the middle of a copy
    run_training(['-opt', str(options), '--auto_resume'], root_path=str(root))
    err = capfd.readouterr().err
    assert f'training state {newest} cannot be used' in err and 'trying the previous one' in err
    again = final_state(root, name)  # the run redid its last epoch from the previous state
    assert again['iter'] == newest_iter
    assert_same_state(reference['net'], again['net'])


def test_sigkill_then_auto_resume_from_another_folder(demo_data, tmp_path):
    """The real thing: kill -9 a training process, resume it with --root from elsewhere."""
    name = 'killed'
    opt = ipce_options(demo_data, name, epochs=4)
    opt['logger'].update(save_checkpoint_freq=4)
    options = write_options(opt, tmp_path / 'options')
    full, killed, elsewhere = tmp_path / 'full', tmp_path / 'killed', tmp_path / 'elsewhere'
    for folder in (full, killed, elsewhere):
        folder.mkdir()
    cli(['train', '-opt', options], cwd=full)

    process = subprocess.Popen([sys.executable, '-m', 'pyiqa_agiqa.cli', 'train', '-opt', str(options)], cwd=killed,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1'))
    states = experiment(killed, name) / 'training_states'
    deadline = time.time() + 300
    while time.time() < deadline and not any(p.name in ('8.state', '12.state') for p in
                                             (states.iterdir() if states.is_dir() else [])):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (experiment(killed, name) / 'results.json').exists()  # it did not finish

    cli(['train', '-opt', options, '--auto_resume', '--root', killed], cwd=elsewhere)
    assert not (elsewhere / 'experiments').exists()
    log = sorted(experiment(killed, name).glob('train_killed_*.log'))[-1].read_text()
    assert 'Resuming from' in log
    assert_same_run(full, killed, name)


def test_auto_resume_without_states_says_where_it_looked(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'fresh', epochs=1)
    result = cli(['train', '-opt', write_options(opt, tmp_path), '--auto_resume'], cwd=tmp_path)
    assert f"no training state in {tmp_path / 'experiments' / 'fresh' / 'training_states'}" in result.stderr
    assert '--root' in result.stderr


def test_states_load_as_tensors_only(stages_run):
    _, full, name = stages_run
    paths = StateStore(experiment(full, name) / 'training_states').paths()
    assert len(paths) >= 5  # both stages' states, the early-stopped one included
    for _, path in paths:
        state = torch.load(path, weights_only=True)  # raises if anything but data were pickled
        assert state['format'] == 'pyiqa_agiqa.training_state' and len(state['rng']) == 1
