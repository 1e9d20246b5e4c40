"""Runs that fail loudly: non-finite losses, constant validation labels or predictions, no
valid checkpoint, a failing split in train-nsplits, and option mistakes caught before the
first iteration."""

import copy
import math

import pandas as pd
import pytest
import torch
from torch import nn

from pyiqa.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY

from pyiqa_agiqa.errors import OptionError, TrainingError
from pyiqa_agiqa.training.model import NonFiniteLossError
from pyiqa_agiqa.training.option_check import check_options
from pyiqa_agiqa.training.pipeline import run_training
from pyiqa_agiqa.training.state import StateStore
from pyiqa_agiqa.weights.io import nonfinite_entries

from training_helpers import cianet_options, cli, experiment, ipce_options, write_options


class NaNAtCalls(nn.Module):
    """L1 loss that returns NaN at the given (1-based) calls: a controlled bad step."""

    def __init__(self, calls=(), loss_weight=1.0):
        super().__init__()
        self.calls, self.count = set(calls), 0

    def forward(self, pred, target):
        self.count += 1
        loss = (pred - target).abs().mean()
        return loss * float('nan') if self.count in self.calls else loss


class ConstantScore(nn.Module):
    """A network whose score is the same for every image."""
    output_names = ('score',)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x, prompt=None):
        return self.w * 0 + torch.ones(x.shape[0], 1)


for registry, cls in ((LOSS_REGISTRY, NaNAtCalls), (ARCH_REGISTRY, ConstantScore)):
    if cls.__name__ not in registry:
        registry.register(cls)


def train(opt, root):
    return run_training(['-opt', str(write_options(opt, root))], root_path=str(root))


def all_saved_tensors_finite(folder):
    for path in folder.rglob('*'):
        if path.suffix in ('.pth', '.state'):
            saved = torch.load(path, weights_only=True)
            for key in ('params', 'net', 'net_best'):
                if isinstance(saved.get(key), dict):
                    assert not nonfinite_entries(saved[key]), path


def test_a_nan_loss_stops_the_run_and_writes_nothing_after_it(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'nan', epochs=3)
    opt['train']['losses']['score'] = {'type': 'NaNAtCalls', 'calls': [8]}
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss at iteration 8 \(l_score=nan\); training stopped'):
        train(opt, tmp_path)
    states = StateStore(experiment(tmp_path, 'nan') / 'training_states').paths()
    assert [i for i, _ in states] == [6]  # the epoch before; nothing after the bad step
    all_saved_tensors_finite(experiment(tmp_path, 'nan'))


def test_nonfinite_skip_allows_k_bad_steps(demo_data, tmp_path, pyiqa_log):
    opt = ipce_options(demo_data, 'skip', epochs=2)
    opt['train']['losses']['score'] = {'type': 'NaNAtCalls', 'calls': [3, 9]}
    opt['train']['nonfinite_skip'] = 2
    train(opt, tmp_path)
    skipped = [m for m in pyiqa_log if 'step skipped' in m]
    assert len(skipped) == 2 and '(1 of 2 allowed' in skipped[0] and '(2 of 2 allowed' in skipped[1]
    opt = copy.deepcopy(opt)
    opt['name'], opt['train']['nonfinite_skip'] = 'skip_one', 1
    with pytest.raises(NonFiniteLossError, match='1 bad step\\(s\\) skipped before, train.nonfinite_skip allows 1'):
        train(opt, tmp_path)


def test_exploding_training_exits_non_zero_in_one_line(demo_data, tmp_path):
    opt = ipce_options(demo_data, 'explode', epochs=3)
    opt['train']['optim'] = {'type': 'SGD', 'lr': 1e12}
    result = cli(['train', '-opt', write_options(opt, tmp_path)], cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: non-finite ') and 'Lower the learning rate' in last
    all_saved_tensors_finite(experiment(tmp_path, 'explode'))
    assert not (experiment(tmp_path, 'explode') / 'results.json').exists()


def constant_val_labels(demo_data, tmp_path, split=1):
    csv, images = demo_data
    table = pd.read_csv(csv)
    table.loc[table[f'demo_split_{split:02d}'] == 'val', 'mos_quality'] = 3.0
    path = tmp_path / f'constant_val_{split}.csv'
    table.to_csv(path, index=False)
    return path, images


def test_constant_validation_labels_are_named_before_training(demo_data, tmp_path):
    opt = ipce_options(constant_val_labels(demo_data, tmp_path), 'constant', epochs=1)
    with pytest.raises(TrainingError, match="validation part 'demo_val' has constant labels for output 'score' "
                                            r"\(column mos_quality: all 3, 3 rows\)"):
        train(opt, tmp_path)
    assert not (experiment(tmp_path, 'constant') / 'training_states').exists() or \
        not any((experiment(tmp_path, 'constant') / 'training_states').iterdir())


def test_constant_predictions_never_select_and_the_run_fails(demo_data, tmp_path, pyiqa_log):
    opt = ipce_options(demo_data, 'flat', epochs=2)
    opt['network'] = {'type': 'ConstantScore'}
    opt['datasets']['train'].pop('views')
    for block in opt['datasets'].values():
        block.pop('views', None)
    with pytest.raises(TrainingError, match="no validation of 'demo_val' gave a finite srcc_plcc "
                                            r"\(nan @ 6, nan @ 12\), so no net_best was selected"):
        train(opt, tmp_path)
    assert any("constant predictions on 'demo_val' for output 'score' (all 1)" in m for m in pyiqa_log)
    assert not (experiment(tmp_path, 'flat') / 'models' / 'net_best.pth').exists()


def test_nsplits_names_a_failed_split_and_averages_only_the_others(demo_data, tmp_path):
    csv, images = constant_val_labels(demo_data, tmp_path, split=2)
    opt = ipce_options((csv, images), 'two', epochs=1)
    opt['split_num'] = 2
    opt['save_final_results_path'] = str(tmp_path / 'table.txt')
    result = cli(['train-nsplits', '-opt', write_options(opt, tmp_path)], cwd=tmp_path, check=False)
    assert result.returncode == 1  # partly failed: the other split and the table are written
    assert result.stderr.strip().splitlines()[-1].startswith('error: 1 of 2 splits failed (02)')
    table = (tmp_path / 'table.txt').read_text()
    assert 'demo_test\t01\t' in table and 'demo_test\t02' not in table
    assert 'Overall results in demo_test (mean ± std over 1 of 2 splits)' in table
    assert "split 02 FAILED (not in the means): validation part 'demo_val' has constant labels" in table
    assert 'nan' not in table.split('FAILED')[0]


def test_nsplits_table_leaves_non_finite_figures_out_of_the_mean():
    from pyiqa_agiqa.training.nsplits import format_table

    row = lambda s, k: {'srcc': {'val': s, 'iter': 6}, 'krcc': {'val': k, 'iter': 6}}  # noqa: E731
    table = format_table({0: {'t': row(0.5, 0.4)}, 1: {'t': row(0.7, math.nan)}}, {}, 2)
    assert 'srcc 0.600000 ± 0.100000, krcc 0.400000 ± 0.000000' in table
    assert 'non-finite, left out of the mean: krcc of split 01' in table


# ----- option mistakes: named with the section and the known keys, before anything runs -----
@pytest.mark.parametrize('change, message', [
    (lambda o: o.update(manual_sed=1), r"\['manual_sed'\] in section top level \('manual_sed' -> did you mean "
                                       r"'manual_seed'\?\)"),
    (lambda o: o['network'].update(clip_modle='x'), r"\['clip_modle'\] in section network .*did you mean 'clip_model'"),
    (lambda o: o['datasets']['val']['views'].update(strid=4), r"\['strid'\] in section datasets.val.views .*'stride'"),
    (lambda o: o['datasets']['train'].update(batchsize=4), r"section datasets.train .*'batch_size_per_gpu'"),
    (lambda o: o['val'].update(key_metric='srcc_plc'), r"val.key_metric 'srcc_plc' is not one of the computed "
                                                       r"figures .*did you mean 'srcc_plcc'"),
    (lambda o: o['val']['metrics']['srcc'].update(type='calculate_srrc'),
     r"val.metrics.srcc: unknown metric type 'calculate_srrc'; did you mean \['calculate_srcc'"),
    (lambda o: o['train']['losses']['score'].update(type='L1loss'),
     r"train.losses.score: unknown loss 'L1loss'; did you mean \['L1Loss'"),
    (lambda o: o['train']['losses']['score'].update(los_weight=1), r"in section train.losses.score"),
    (lambda o: o['logger'].update(save_state_epoch=1), r"in section logger .*'save_state_epochs'"),
    (lambda o: o['val'].pop('val_freq') and o['val'].pop('val_epochs'), 'val needs val_freq'),
    (lambda o: o['network'].update(type='IPCEE'), r"network.type: unknown architecture 'IPCEE'; did you mean"),
    (lambda o: o['datasets']['train'].update(load_reference=True),
     'takes no reference image .*none of IPCE, CIANet, CLIPAGIQA, DCMPL'),
])
def test_option_mistakes_are_named(demo_data, change, message):
    opt = ipce_options(demo_data, 'opts')
    change(opt)
    with pytest.raises(OptionError, match=message):
        check_options(opt)


@pytest.mark.parametrize('options', [ipce_options, cianet_options])
def test_the_shipped_shape_of_options_passes_unchanged(demo_data, options):
    opt = options(demo_data, 'ok')
    before = copy.deepcopy(opt)
    assert check_options(opt) is None
    assert opt == before  # a check, not a fill-in: pyiqa's parser and the run see the options as written


def test_an_option_mistake_is_one_line_before_anything_is_built(demo_data, tmp_path):
    opt = cianet_options(demo_data, 'typo')
    opt['val']['key_metric'] = 'mean_srrc'
    result = cli(['train', '-opt', write_options(opt, tmp_path)], cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: val.key_metric 'mean_srrc' is not one of the computed figures "
                                     "['quality_srcc', 'quality_plcc', 'consistency_srcc', 'consistency_plcc', "
                                     "'mean_srcc', 'mean_plcc', 'srcc_plcc'] (did you mean 'mean_srcc'?)")
    assert not (tmp_path / 'experiments').exists()


def test_a_stage_boundary_between_validations_is_validated(demo_data, tmp_path, pyiqa_log):
    opt = cianet_options(demo_data, 'boundary', stage_epochs=(2, 1))
    opt['val']['val_freq'] = 5  # 6 iterations per epoch: the stage switch at 12 falls between 10 and 15
    train(opt, tmp_path)
    messages = pyiqa_log
    assert "Validation at iteration 12 (end of stage 'head')" in messages
    assert any(m.startswith('Stage \'finetune\' starts from net_best (iteration') for m in messages)
