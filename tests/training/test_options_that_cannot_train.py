"""Option files that would write outside their folder, or that cannot train, are refused before
any folder is created or moved, naming the key and its section; a run that trained nothing is
not exported; a dataset's pixel limit and image names are its own options and rows."""

import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from pyiqa_agiqa.benchmark.grid import plan_runs
from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset, DatasetOptionError
from pyiqa_agiqa.data.image_io import ImageReadError
from pyiqa_agiqa.errors import OptionError
from pyiqa_agiqa.export.experiment import export_experiment
from pyiqa_agiqa.training.option_check import check_options
from pyiqa_agiqa.training.pipeline import run_training

from conftest import dataset_opt
from training_helpers import cianet_options, cli, experiment, ipce_options, write_options


def snapshot(folder: Path) -> dict:
    """{relative path: bytes or None (folder)} of everything under ``folder``."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob('*'))}


@pytest.fixture
def project(tmp_path):
    """A project folder: the user's own ``victim/`` next to ``experiments/``, which holds an
    earlier run; returns (root, snapshot before)."""
    root = tmp_path / 'project'
    (root / 'victim').mkdir(parents=True)
    (root / 'victim' / 'notes.txt').write_text('my own notes')
    (root / 'experiments' / 'earlier_run').mkdir(parents=True)
    (root / 'experiments' / 'earlier_run' / 'results.json').write_text('{}')
    return root, snapshot(tmp_path)


# ----- 1. a run name is one folder name -----

@pytest.mark.parametrize('name, reason', [
    ('../victim', 'it holds a path separator'),
    ('../../outside', 'it holds a path separator'),
    ('ABSOLUTE', 'it holds a path separator'),
    ('', 'it is empty'),
    ('.', "'.' is not a folder name"),
    ('..', "'..' is not a folder name"),
    ('a\\..\\..\\victim', 'it holds a path separator'),
])
def test_a_run_name_that_is_not_one_folder_is_refused_before_any_folder(demo_data, project, tmp_path, name, reason):
    root, before = project
    name = str(tmp_path / 'absolute_run') if name == 'ABSOLUTE' else name
    opt = ipce_options(demo_data, name, epochs=1)
    path = _write(opt, tmp_path / 'opts' / 'options.yml')
    expected = re.escape(f'name {name!r} is not a run name: {reason}') + '.*must be one folder name'
    with pytest.raises(OptionError, match=expected):
        run_training(['-opt', str(path)], root_path=str(root))
    assert snapshot(tmp_path) == dict(before, **{'opts': None, 'opts/options.yml': path.read_bytes()})


def test_a_name_that_is_not_text_or_set_by_force_yml_is_refused(demo_data, project, tmp_path):
    root, before = project
    opt = ipce_options(demo_data, 'ok', epochs=1)
    opt['name'] = 7  # pyiqa joins it into paths: a TypeError traceback
    with pytest.raises(OptionError, match="name must be a text .* got 7: quote it, e.g. name: '7'"):
        run_training(['-opt', str(_write(opt, tmp_path / 'a' / 'seven.yml'))], root_path=str(root))
    opt['name'] = 'ok'
    path = _write(opt, tmp_path / 'b' / 'ok.yml')
    with pytest.raises(OptionError, match=r"name \(after --force_yml / --debug\) '\.\./victim' is not a run name"):
        run_training(['-opt', str(path), '--force_yml', 'name=../victim'], root_path=str(root))
    assert not (root / 'victim' / 'models').exists() and (root / 'victim' / 'notes.txt').read_text() == 'my own notes'
    assert sorted(p.name for p in (root / 'experiments').iterdir()) == ['earlier_run']


def _write(opt: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def test_train_and_train_nsplits_refuse_an_escaping_name_in_one_line(demo_data, project, tmp_path):
    root, before = project
    opt = ipce_options(demo_data, '../victim', epochs=1)
    opt['split_num'] = 1
    path = _write(opt, tmp_path / 'opts' / 'bad.yml')
    for command in ('train', 'train-nsplits'):
        result = cli([command, '-opt', path, '--root', root], cwd=tmp_path, check=False)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr, result.stderr
        assert result.stderr.startswith(f"error: option file '{path}': name '../victim' is not a run name: it holds "
                                        "a path separator ('/' or '\\'). The name becomes the folder experiments/NAME")
        assert 'e.g. name: victim' in result.stderr
    assert snapshot(tmp_path) == dict(before, **{'opts': None, 'opts/bad.yml': path.read_bytes()})


def test_benchmark_refuses_an_escaping_name_before_planning(demo_data, tmp_path):
    opt = ipce_options(demo_data, '../victim', epochs=1)
    path = _write(opt, tmp_path / 'bad.yml')
    with pytest.raises(OptionError, match=f"{path}: name '../victim' is not a run name"):
        plan_runs([str(path)])


@pytest.mark.parametrize('key', ['experiments_root', 'results_root', 'models'])
def test_path_keys_the_parser_sets_are_refused(demo_data, project, tmp_path, key):
    root, before = project
    opt = ipce_options(demo_data, 'paths', epochs=1)
    opt['path'][key] = str(tmp_path / 'elsewhere')
    path = _write(opt, tmp_path / 'opts' / 'paths.yml')
    with pytest.raises(OptionError, match=f"path.{key} cannot be set in an option file: .*--root DIR"):
        run_training(['-opt', str(path)], root_path=str(root))
    assert not (tmp_path / 'elsewhere').exists() and not (root / 'experiments' / 'paths').exists()
    with pytest.raises(OptionError, match=f'path.{key} cannot be set'):
        plan_runs([str(path)])


# ----- 2. numbers that cannot train -----

NAN, INF = float('nan'), float('inf')


def _pop_epochs(o, **train):
    o['train'].pop('total_epoch')
    o['train'].update(train)


@pytest.mark.parametrize('change, message', [
    (lambda o: o['train'].update(total_epoch=-1), r'train.total_epoch must be a whole number >= 1 \(the epochs to '
                                                  r'train\), got -1'),
    (lambda o: o['train'].update(total_epoch=0), r'train.total_epoch must be a whole number >= 1'),
    (lambda o: o['train'].update(total_epoch=NAN), r'train.total_epoch must be a whole number >= 1 .*got nan'),
    (lambda o: o['train'].update(total_epoch=2.5), r'train.total_epoch must be a whole number'),
    (lambda o: _pop_epochs(o, total_iter=0), r'train.total_iter must be a whole number >= 1'),
    (lambda o: _pop_epochs(o), r'train needs total_epoch \(epochs to train\) or total_iter'),
    (lambda o: o['train'].update(warmup_iter=NAN), r'train.warmup_iter must be a whole number >= -1'),
    (lambda o: o['datasets']['train'].update(batch_size_per_gpu=0),
     r'datasets.train.batch_size_per_gpu must be a whole number >= 1 \(images per batch and process\), got 0'),
    (lambda o: o['datasets']['train'].update(batch_size_per_gpu=-4), r'datasets.train.batch_size_per_gpu .* got -4'),
    (lambda o: o['datasets']['train'].pop('batch_size_per_gpu'), r'datasets.train needs batch_size_per_gpu'),
    (lambda o: o['datasets']['val'].update(batch_size_per_gpu=0), r'datasets.val.batch_size_per_gpu must be'),
    (lambda o: o['datasets']['train'].update(num_worker_per_gpu=-1), r'datasets.train.num_worker_per_gpu must be a '
                                                                     r'whole number >= 0'),
    (lambda o: o['datasets']['train'].update(dataset_enlarge_ratio=0), r'datasets.train.dataset_enlarge_ratio'),
    (lambda o: o['datasets']['train'].update(prefetch_mode='gpu'), r'datasets.train.prefetch_mode must be cpu or '
                                                                   r"cuda, got 'gpu'"),
    (lambda o: o['datasets']['train'].update(mos_divisor=0), r'datasets.train: mos_divisor must be > 0 \(a finite'),
    (lambda o: o['train']['optim'].update(lr=NAN), r'train.optim.lr must be a finite number > 0 \(the learning '
                                                   r'rate\), got nan'),
    (lambda o: o['train']['optim'].update(lr=INF), r'train.optim.lr must be a finite number > 0'),
    (lambda o: o['train']['optim'].update(lr=0), r'train.optim.lr must be a finite number > 0'),
    (lambda o: o['train']['optim'].update(lr=-1e-3), r'train.optim.lr must be a finite number > 0'),
    (lambda o: o['train']['optim'].update(lr='fast'), r"train.optim.lr must be a finite number > 0 .*got 'fast'"),
    (lambda o: o['train']['optim'].pop('lr'), r'train.optim needs lr'),
    (lambda o: o['train']['optim'].update(weight_decay=-1), r'train.optim.weight_decay must be a finite number >= 0'),
    (lambda o: o['train']['optim'].update(betas=[0.9, 1.5]), r'train.optim.betas\[1\] must be a finite number >= 0 '
                                                             r'and < 1'),
    (lambda o: o['train']['optim'].update(betas=[0.9]), r'train.optim.betas must be two numbers'),
    (lambda o: o['train']['optim'].update(eps=0), r'train.optim.eps must be a finite number > 0'),
    (lambda o: o['train']['optim'].update(type='Adamm'), r"train.optim.type: unknown optimizer 'Adamm'; did you mean "
                                                         r"\['Adam'"),
    (lambda o: o['train']['optim'].update(lrr=1e-3), r"\['lrr'\] in section train.optim"),
    (lambda o: o['train']['scheduler'].update(type='CosineAnealingLR'), r"train.scheduler.type: unknown scheduler "
                                                                        r"'CosineAnealingLR'; did you mean"),
    (lambda o: o['train']['scheduler'].update(gamma=NAN), r'train.scheduler.gamma must be a finite number > 0'),
    (lambda o: o['train']['losses']['score'].update(loss_weight=NAN), r'train.losses.score.loss_weight must be a '
                                                                      r'finite number >= 0, got nan'),
    (lambda o: o['val'].update(val_freq=NAN), r'val.val_freq must be a whole number >= 1 .*got nan'),
    (lambda o: o['logger'].update(print_freq=0), r'logger.print_freq must be a whole number >= 1 \(log every N '
                                                 r'iterations\), got 0'),
    (lambda o: o['logger'].update(save_checkpoint_freq=0), r'logger.save_checkpoint_freq must be a whole number >= 1'),
    (lambda o: o['logger'].update(save_latest_freq=NAN), r'logger.save_latest_freq must be'),
    (lambda o: o['logger'].update(save_state_epochs=-1), r'logger.save_state_epochs must be a whole number >= 0'),
    (lambda o: o['logger'].update(keep_states=0), r'logger.keep_states must be a whole number >= 1'),
])
def test_numbers_that_cannot_train_are_named(demo_data, change, message):
    opt = ipce_options(demo_data, 'numbers')
    change(opt)
    with pytest.raises(OptionError, match=message):
        check_options(opt)


@pytest.mark.parametrize('change, message', [
    (lambda o: o['train']['stages'][1]['optim'].update(lr=NAN), r'train.stages\[1\].optim.lr must be a finite'),
    (lambda o: o['train']['stages'][0]['optim'].update(weight_decay=-1), r'train.stages\[0\].optim.weight_decay'),
    (lambda o: o['train']['stages'][1]['scheduler'].update(gamma=0), r'train.stages\[1\].scheduler.gamma must be'),
    (lambda o: o['train']['stages'][1].update(early_stop=0), r'train.stages\[1\] \(finetune\): early_stop must be a '
                                                             r'whole number of validations >= 1'),
])
def test_numbers_of_stages_are_named(demo_data, change, message):
    opt = cianet_options(demo_data, 'stages')
    change(opt)
    with pytest.raises(OptionError, match=message):
        check_options(opt)


@pytest.mark.parametrize('change, message', [
    (lambda o: o.update(manual_seed=-1), r'manual_seed must be a whole number >= 0 and <= 2147483647'),
    (lambda o: o.update(num_gpu=-1), r"num_gpu must be a whole number >= 0 \(GPUs to use; 'auto'"),
])
def test_numbers_pyiqa_parser_uses_are_named(demo_data, change, message):
    from pyiqa_agiqa.training.option_check import check_option_file

    opt = ipce_options(demo_data, 'parser')
    change(opt)
    with pytest.raises(OptionError, match=message):
        check_option_file(opt)


@pytest.mark.parametrize('key, value, message', [
    ('total_epoch', -1, 'train.total_epoch must be a whole number >= 1'),
    ('batch_size_per_gpu', 0, 'datasets.train.batch_size_per_gpu must be a whole number >= 1'),
    ('lr', NAN, 'train.optim.lr must be a finite number > 0'),
])
def test_a_training_that_cannot_train_creates_nothing(demo_data, project, tmp_path, key, value, message):
    root, before = project
    opt = ipce_options(demo_data, 'cannot', epochs=1)
    section = opt['train'] if key == 'total_epoch' else opt['datasets']['train'] if key.startswith('batch') \
        else opt['train']['optim']
    section[key] = value
    path = _write(opt, tmp_path / 'opts' / 'cannot.yml')
    with pytest.raises(OptionError, match=message):
        run_training(['-opt', str(path)], root_path=str(root))
    assert snapshot(tmp_path) == dict(before, **{'opts': None, 'opts/cannot.yml': path.read_bytes()})


def test_a_nan_learning_rate_is_one_line_naming_the_key(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'nan_lr', epochs=1)
    path = tmp_path / 'nan_lr.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False).replace('lr: 0.001', 'lr: .nan'))
    assert math.isnan(yaml.safe_load(path.read_text())['train']['optim']['lr'])
    result = cli(['train', '-opt', path], cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == 'error: train.optim.lr must be a finite number > 0 (the learning rate), got nan\n'
    assert not (tmp_path / 'experiments').exists()


# ----- 2. a run that trained nothing is not exported -----

@pytest.fixture(scope='module')
def finished_run(demo_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('finished')
    run_training(['-opt', str(write_options(ipce_options(demo_data, 'one_epoch', epochs=1), root))],
                 root_path=str(root))
    return experiment(root, 'one_epoch')


def test_results_record_the_iterations_completed(finished_run):
    record = json.loads((finished_run / 'results.json').read_text())
    assert record['iterations'] == 6  # 27 training images, batches of 4, one epoch


@pytest.mark.parametrize('edit', [dict(iterations=0, selected_iter=0), dict(selected_iter=0)])
def test_export_refuses_a_run_that_completed_no_iteration(finished_run, tmp_path, edit):
    """What a run with total_epoch: -1 wrote before the option checks: no iteration, and a
    net_best selected at iteration 0 (the untrained network)."""
    run = tmp_path / 'experiments' / 'untrained'
    shutil.copytree(finished_run, run)
    record = json.loads((run / 'results.json').read_text())
    record.update(edit)
    (run / 'results.json').write_text(json.dumps(record))
    why = ('the run completed no training iteration' if 'iterations' in edit else
           r'its net_best was selected at iteration 0, before any training step \(results.json: selected_iter 0\)')
    with pytest.raises(OptionError, match=f'{run} holds no trained weights: {why}'):
        export_experiment(run, tmp_path / 'exported')
    assert not (tmp_path / 'exported').exists()
    result = cli(['export', run, '-o', tmp_path / 'exported'], cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.startswith('error: ') and result.stderr.count('\n') == 1
    export_experiment(finished_run, tmp_path / 'fine')  # the run as it was trained is exported


# ----- 5. the pixel limit of a training dataset -----

def test_a_dataset_names_its_own_pixel_limit_option(demo_data):
    opt = dataset_opt(demo_data, max_pixels=1000)  # the demo images are 64 x 64 = 4096 pixels
    with pytest.raises(FileNotFoundError) as error:
        AGIQADataset(opt)
    text = str(error.value)
    assert 'too large (it declares 4,096 pixels, more than the limit of 1,000 (a decompression bomb?)' in text
    assert "raise the limit with max_pixels: N in the block of dataset 'demo_train' of the option file" in text
    assert '--max-pixels' not in text
    limit = Image.MAX_IMAGE_PIXELS
    dataset = AGIQADataset(dict(opt, max_pixels=4096))
    assert dataset[0]['img'].shape[-3] == 3 and Image.MAX_IMAGE_PIXELS == limit  # the process's limit is kept
    lazy = AGIQADataset(dict(opt, check_images=False))
    with pytest.raises(ImageReadError, match='raise the limit with max_pixels: N in the block of dataset'):
        lazy[0]
    with pytest.raises(DatasetOptionError, match=r"max_pixels must be a whole number >= 0 .* got -1"):
        AGIQADataset(dict(opt, max_pixels=-1))


def test_image_names_that_leave_the_image_folder_are_refused(demo_data, tmp_path):
    csv, images = demo_data
    table = pd.read_csv(csv)
    outside = tmp_path / 'outside.png'
    shutil.copy(images / table['name'][0], outside)
    table.loc[0, 'name'] = os.path.relpath(outside, images)
    table.loc[1, 'name'] = str(outside)
    path = tmp_path / 'meta.csv'
    table.to_csv(path, index=False)
    opt = dataset_opt((path, images))
    with pytest.raises(DatasetOptionError, match=r"2 image name\(s\) leave the image folder dataroot_target "
                                                 r"\(row 1 name '\.\./.*outside.png', row 2 name '/.*"):
        AGIQADataset(opt)
