"""Two training processes on the CPU (torchrun, gloo): disjoint shards with their prompts,
identical weights on both at every validation, stage switch and early stop, and validation
figures equal to one process's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import rounding
from training_helpers import cianet_options, experiment, write_options

PROBE = Path(__file__).resolve().parents[1] / 'dist_probe.py'


def torchrun(args, cwd, nproc=2):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}'] + args
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def two_process_run(demo_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    opt = cianet_options(demo_data, 'dist', stage_epochs=(2, 4), early_stop=1)
    opt['train']['stages'][1]['optim']['lr'] = 1e-2  # a stage-2 rate that soon stops improving
    opt['val'].update(val_freq=1000, val_epochs=1)  # validations at epoch ends only
    options = write_options(opt, root)
    result = torchrun([PROBE, root / 'probe', 'train', '-opt', options, '--launcher', 'pytorch'], cwd=root)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    ranks = [json.loads((root / 'probe' / f'rank{r}.json').read_text()) for r in (0, 1)]
    return root, opt, ranks


def test_each_process_reads_a_disjoint_shard_with_its_prompts(two_process_run):
    root, opt, (r0, r1) = two_process_run
    meta = pd.read_csv(opt['datasets']['train']['meta_info_file'])
    prompt_of = {os.path.join(opt['datasets']['train']['dataroot_target'], n): p for n, p in
                 zip(meta['name'], meta['prompt'])}
    train_rows = meta[meta['demo_split_01'] == 'train']
    iters_per_epoch = (len(train_rows) // 2) // 4
    assert iters_per_epoch == 3
    by_iter = {}
    for rank, record in enumerate((r0, r1)):
        for iteration, paths, prompts in record['batches']:
            assert [prompt_of[p] for p in paths] == prompts  # each image with its own prompt
            by_iter.setdefault(iteration, {})[rank] = paths
    first_epoch = [i for i in by_iter if i <= iters_per_epoch]
    seen = {r: {p for i in first_epoch for p in by_iter[i][r]} for r in (0, 1)}
    # disjoint shards of the epoch's permutation: 27 images are padded to 28 (pyiqa's sampler, as
    # torch's DistributedSampler), so at most the one padding image can be on both processes
    assert len(seen[0] & seen[1]) <= 1
    assert len(seen[0] | seen[1]) >= 23  # 2 processes x 3 iterations x batch 4
    assert set(by_iter) == {i for i in by_iter if set(by_iter[i]) == {0, 1}}  # both trained at every iteration


def test_both_processes_hold_the_same_weights_at_every_event(two_process_run):
    root, opt, (r0, r1) = two_process_run
    assert r0['events'] == r1['events']
    kinds = [e[0] for e in r0['events']]
    assert kinds.count('stage') == 2 and kinds.count('early_stop') == 1
    stage2 = next(e for e in r0['events'] if e[0] == 'stage' and e[1] == 1)
    assert stage2[2] == 6  # the stage switch after 2 epochs of 3 iterations
    validated = [e[1] for e in r0['events'] if e[0] == 'val' and e[2] == 'demo_val']
    assert validated[:2] == [3, 6]  # once per epoch (val_epochs), the end of stage 1 included
    stop = next(e for e in r0['events'] if e[0] == 'early_stop')
    assert stop[1] < 18 and validated[-1] == stop[1]  # stopped before the end; nothing validated after
    assert (experiment(root, 'dist') / 'models' / 'net_best.pth').is_file()


def test_gathered_validation_equals_one_process(two_process_run):
    _, _, (r0, _) = two_process_run
    check = r0['check']
    assert check['demo_val_n'] == 3 and check['demo_test_n'] == 6
    for name in ('demo_val', 'demo_test'):  # other batches: two float32 runs, each within rounding() of the exact
        ranges = check[name + '_range']
        assert all(diff <= 2 * rounding(torch.float32, ranges[o]) for o, diff in check[name].items()), check


def test_sampler_shards_partition_every_epoch():
    from pyiqa_agiqa.training.loaders import ResumableSampler

    for epoch in range(3):
        shards = []
        for rank in range(3):
            sampler = ResumableSampler(10, num_replicas=3, rank=rank)
            sampler.set_epoch(epoch)
            shards.append([i for _, i in sampler])
        assert [len(s) for s in shards] == [4, 4, 4]  # 10 padded to 12
        merged = sorted(i for s in shards for i in s)
        assert set(merged) == set(range(10)) and len(merged) - len(set(merged)) == 2
        sampler = ResumableSampler(10, num_replicas=3, rank=1)
        sampler.set_epoch(epoch, skip=3)
        assert [i for _, i in sampler] == shards[1][3:] and len(sampler) == 1


def test_pyiqa_own_launcher_route_keeps_the_processes_in_step(demo_data, tmp_path):
    """pyiqa's ``train.py --launcher pytorch`` (its CUDA-only init swapped for gloo, see
    dist_probe.py) with the plugin's model: validation on every process, stage switch and
    early stop in step, no hang at the end."""
    opt = cianet_options(demo_data, 'pyiqa_route', stage_epochs=(1, 3), early_stop=1)
    opt['train']['stages'][1]['optim']['lr'] = 1e-2
    opt['val'].update(val_freq=1000, val_epochs=1)
    options = write_options(opt, tmp_path)
    result = torchrun([PROBE, tmp_path / 'probe', 'pyiqa-route', '-opt', options, '--launcher', 'pytorch'],
                      cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    r0, r1 = [json.loads((tmp_path / 'probe' / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert r0['events'] == r1['events'] and [e[0] for e in r0['events']].count('stage') == 2
    assert (experiment(tmp_path, 'pyiqa_route') / 'models' / 'net_best.pth').is_file()
