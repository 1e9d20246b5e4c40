"""``pyiqa-agiqa benchmark``: 2 option files (tiny IPCE, tiny CIA-Net) x 2 splits of generated
data, run as a user runs it (the command line, child processes); the figures recomputed from
predictions/, a SIGKILL after the first finished run, the exported folders loaded as metrics,
and the Ray engine, whose results equal the sequential ones."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyiqa
import pytest
import torch
import yaml
from PIL import Image
from scipy import stats
from torchvision.transforms.functional import to_tensor

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.benchmark.predictions import read_predictions
from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset

from conftest import REPO, rounding
from training_helpers import cianet_options, cli, ipce_options, write_options

RUNS = ['ipce_tiny_Split01', 'ipce_tiny_Split02', 'cianet_tiny_Split01', 'cianet_tiny_Split02']
METRIC_OF = {'IPCE': {'score': 'ipce'}, 'CIANet': {'quality': 'cianet', 'consistency': 'cianet_consistency'}}


@pytest.fixture(scope='module')
def grid(demo_data, tmp_path_factory):
    """(folder to run in, [the two option files])."""
    root = tmp_path_factory.mktemp('bench')
    ipce = ipce_options(demo_data, 'ipce_tiny', epochs=3)
    for block in ipce['datasets'].values():
        block['num_worker_per_gpu'] = 0
    cianet = cianet_options(demo_data, 'cianet_tiny', stage_epochs=(1, 1))
    return root, [write_options(ipce, root / 'opts'), write_options(cianet, root / 'opts')]


def benchmark_args(files, out, *extra):
    return ['benchmark', '-opt', *files, '--splits', '1', '2', '--out', out, '--threads-per-run', '1', '-q', *extra]


@pytest.fixture(scope='module')
def uninterrupted(grid):
    root, files = grid
    result = cli(benchmark_args(files, 'full'), cwd=root)
    assert '4 of 4 runs finished' in result.stderr and result.stdout == ''
    return root / 'full'


def test_plan_prints_the_grid_and_runs_nothing(grid):
    root, files = grid
    before = sorted(root.iterdir())
    result = cli(['benchmark', '-opt', *files, '--plan'], cwd=root)
    lines = result.stdout.splitlines()
    assert lines[0] == '6 runs'  # default: every split of the demo scheme (3) x 2 files
    assert any(line.startswith('cianet_tiny_Split03\tCIANet\tdemo\tdemo 3\t2 epochs\t') for line in lines)
    assert sorted(root.iterdir()) == before  # nothing written
    missing = cli(['benchmark', '-opt', *files], cwd=root, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith('error: benchmark needs --out DIR')


def test_plan_of_the_shipped_files_needs_no_images(tmp_path):
    """The grid's cost is known before the images are downloaded (the bundled meta-info is
    enough); a real run without the images is a one-line error that names the fix."""
    files = [REPO / 'options' / 'ipce_agiqa3k.yml', REPO / 'options' / 'dcmpl_agiqa1k.yml']
    result = cli(['benchmark', '-opt', *files, '--splits', '1', '--plan'], cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0] == '2 runs'
    assert lines[2].startswith('ipce_agiqa3k_Split01\tIPCE\tagiqa3k\tipcev 1\t30 epochs\t2082/300/600\t')
    missing = cli(['benchmark', '-opt', *files, '--out', 'b'], cwd=tmp_path, check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "dataroot_target './datasets/AGIQA-3K' is not a folder" in missing.stderr
    assert 'pyiqa-agiqa prepare' in missing.stderr and not (tmp_path / 'b').exists()


def test_tables_and_report_hold_every_run(uninterrupted):
    runs = pd.read_csv(uninterrupted / 'runs.csv')
    assert sorted(runs['run'].unique()) == sorted(RUNS)
    assert len(runs) == 6 and set(runs['status']) == {'finished'} and runs['error'].isna().all()
    results = pd.read_csv(uninterrupted / 'results.csv')
    assert list(zip(results['name'], results['target'])) == [
        ('ipce_tiny', 'score'), ('cianet_tiny', 'quality'), ('cianet_tiny', 'consistency')]
    for _, row in results.iterrows():
        mine = runs[(runs['name'] == row['name']) & (runs['target'] == row['target'])]
        for metric in ('srcc', 'plcc', 'krcc'):
            assert row[f'{metric}_mean'] == np.mean(mine[metric]) and row[f'{metric}_std'] == np.std(mine[metric])
        assert row['splits'] == row['splits_planned'] == 2
    report = (uninterrupted / 'report.md').read_text()
    assert '4 of 4 runs finished.' in report and '| CIANet | demo | consistency | 2 of 2 |' in report
    for plot in ('bars', 'scatter_ipce_tiny_score', 'scatter_cianet_tiny_quality', 'val_cianet_tiny'):
        assert (uninterrupted / 'plots' / f'{plot}.png').stat().st_size > 1000
        assert f'(plots/{plot}.png)' in report


def test_without_matplotlib_everything_but_the_plots_is_written(uninterrupted, tmp_path, monkeypatch):
    from pyiqa_agiqa.benchmark import report
    from pyiqa_agiqa.benchmark.runner import load_plan, write_outputs

    out = tmp_path / 'copy'
    shutil.copytree(uninterrupted, out, ignore=shutil.ignore_patterns('plots'))
    monkeypatch.setattr(report, '_pyplot', lambda: None)
    write_outputs(out, load_plan(out), 'pyiqa-agiqa benchmark ...')
    assert not (out / 'plots').exists()
    assert (out / 'results.csv').read_text() == (uninterrupted / 'results.csv').read_text()
    assert report.MATPLOTLIB_HINT in (out / 'report.md').read_text()


def test_figures_recompute_from_the_predictions(uninterrupted):
    """scipy on predictions/RUN.csv gives runs.csv's figures, and those are the figures the
    training recorded on the test part at the selected checkpoint (the same net_best)."""
    runs = pd.read_csv(uninterrupted / 'runs.csv')
    for _, row in runs.iterrows():
        table = pd.read_csv(uninterrupted / row['predictions'])
        part = table[table['target'] == row['target']]
        assert len(part) == row['n_test'] == 6 and (part['label'] == row['label']).all()
        assert stats.spearmanr(part['prediction'], part['mos'])[0] == row['srcc']
        assert stats.pearsonr(part['prediction'], part['mos'])[0] == row['plcc']
        assert stats.kendalltau(part['prediction'], part['mos'])[0] == row['krcc']
        recorded = json.loads((uninterrupted / 'experiments' / row['run'] / 'results.json').read_text())
        test = recorded['results']['demo_test']
        prefix = f"{row['target']}_" if row['name'] == 'cianet_tiny' else ''
        assert recorded['selected_iter'] == row['selected_iter']
        # float32 predictions (pyiqa's figures) vs the same values in float64 (here)
        assert abs(test[f'{prefix}srcc']['val'] - row['srcc']) <= rounding(torch.float32)
        assert abs(test[f'{prefix}plcc']['val'] - row['plcc']) <= rounding(torch.float32)


def test_exported_folders_load_as_metrics_and_give_the_predictions(uninterrupted):
    runs = pd.read_csv(uninterrupted / 'runs.csv')
    folders = [(row, uninterrupted / row['weights']) for _, row in runs.iterrows()]
    best = {name: uninterrupted / 'best' / name for name in ('ipce_tiny', 'cianet_tiny')}
    for name, folder in best.items():  # the best split: the highest validation key metric
        mine = runs[runs['name'] == name]
        chosen = mine.loc[mine['key_value'].idxmax()]
        assert json.loads((folder / 'card.json').read_text())['training']['experiment'] == chosen['run']
        folders.append((chosen, folder))
    for row, folder in folders:
        opt = yaml.safe_load((uninterrupted / 'options' / f"{row['run']}.yml").read_text())
        # the folder alone: its card records every network option the run was built with
        metric = pyiqa.create_metric(METRIC_OF[row['method']][row['target']], weights=str(folder), device='cpu')
        dataset = AGIQADataset(dict(opt['datasets']['val_test'], phase='val'))
        batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
        if batch['img'].dim() == 5:  # IPCE's test views: the metric cuts them itself from the image
            batch['img'] = torch.stack([to_tensor(Image.open(item['img_path']).convert('RGB'))
                                        for item in dataset.paths_mos])
        with torch.no_grad():
            scores = metric(batch['img'], prompt=list(batch['prompt'])).reshape(-1).double().numpy()
        table = read_predictions(uninterrupted / row['predictions'])
        expected = table[table['target'] == row['target']]['prediction'].to_numpy()
        assert np.abs(scores - expected).max() <= rounding(torch.float32, scale=np.abs(expected).max())


def _wait_for(condition, process, timeout=300):
    start = time.time()
    while not condition():
        assert process.poll() is None, 'the benchmark ended before the kill'
        assert time.time() - start < timeout
        time.sleep(0.05)


def test_sigkill_after_the_first_run_then_the_same_command_finishes_it(grid, uninterrupted):
    """Killed (the benchmark and its worker) after the first run finished and while the second
    had written a training state: the rerun keeps run 1 as it was, resumes run 2, and ends
    with the uninterrupted benchmark's results.csv."""
    root, files = grid
    out = root / 'killed'
    args = [sys.executable, '-m', 'pyiqa_agiqa.cli'] + benchmark_args(files, 'killed')
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    first = out / 'runs' / f'{RUNS[0]}.json'
    states = out / 'experiments' / RUNS[1] / 'training_states'
    try:
        _wait_for(lambda: first.is_file(), process)
        _wait_for(lambda: states.is_dir() and any(p.suffix == '.state' for p in states.iterdir()), process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (out / 'runs' / f'{RUNS[1]}.json').exists()
    kept = first.read_text()
    best = out / 'experiments' / RUNS[0] / 'models' / 'net_best.pth'
    stamp = best.stat().st_mtime_ns
    result = cli(benchmark_args(files, 'killed'), cwd=root)
    assert '1 of 4 runs already finished' in result.stderr and '4 of 4 runs finished' in result.stderr
    assert first.read_text() == kept and best.stat().st_mtime_ns == stamp  # not trained again
    assert json.loads((out / 'runs' / f'{RUNS[1]}.json').read_text())['resumed'] is True
    assert (out / 'results.csv').read_text() == (uninterrupted / 'results.csv').read_text()
    for run in RUNS:
        assert (out / 'predictions' / f'{run}.csv').read_text() == \
            (uninterrupted / 'predictions' / f'{run}.csv').read_text()


def test_a_bad_option_file_is_named_before_any_run(grid, tmp_path):
    root, files = grid
    opt = yaml.safe_load(Path(files[0]).read_text())
    opt['val']['key_metrc'] = 'srcc'
    bad = write_options(dict(opt, name='typo'), tmp_path)
    result = cli(['benchmark', '-opt', files[0], str(bad), '--out', str(tmp_path / 'out')], cwd=root, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: {bad}: ') and 'key_metrc' in lines[0]
    assert not (tmp_path / 'out').exists()


def test_a_failing_split_is_a_row_and_the_table_averages_the_others(demo_data, tmp_path):
    """Split 2's validation part gets constant labels: that run fails (named), split 1
    finishes, results.csv averages 1 of 2 splits, the command exits 1 (partly failed) after writing it all."""
    csv, images = demo_data
    meta = pd.read_csv(csv, keep_default_na=False)
    val2 = meta['demo_split_02'] == 'val'
    assert meta.loc[meta['demo_split_01'] == 'val', 'mos_quality'][~val2].nunique() > 1
    meta.loc[val2, 'mos_quality'] = 3.0
    meta.to_csv(tmp_path / 'meta.csv', index=False)
    opt = ipce_options((tmp_path / 'meta.csv', images), 'ipce_bad', epochs=1)
    for block in opt['datasets'].values():
        block['num_worker_per_gpu'] = 0
    file = write_options(opt, tmp_path)
    result = cli(['benchmark', '-opt', file, '--splits', '1', '2', '--out', 'out', '--threads-per-run', '1', '-q'],
                 cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stdout == ''
    assert result.stderr.splitlines()[-2:] == [
        f"1 of 2 runs finished; tables, plots and report in {tmp_path / 'out'}",
        f"error: 1 of 2 runs failed (ipce_bad_Split02); {tmp_path / 'out'}/runs.csv names each error and results.csv "
        'averages the finished splits only; fix them and run the same command again (finished runs are kept)']
    runs = pd.read_csv(tmp_path / 'out' / 'runs.csv', keep_default_na=False)
    assert list(runs['status']) == ['finished', 'failed']
    assert runs['error'][1].startswith('TrainingError: ') and 'constant labels' in runs['error'][1]
    results = pd.read_csv(tmp_path / 'out' / 'results.csv', keep_default_na=False)
    assert (results['splits'][0], results['splits_planned'][0], str(results['failed'][0])) == (1, 2, '2')
    assert runs['srcc'][1] == '' and results['srcc_mean'][0] == float(runs['srcc'][0])
    assert results['srcc_std'][0] == 0
    assert '## Failed runs (not in the means)' in (tmp_path / 'out' / 'report.md').read_text()


@pytest.mark.ray
def test_ray_engine_runs_two_at_once_with_the_sequential_results(grid, uninterrupted):
    root, files = grid
    result = cli(benchmark_args(files, 'ray', '--engine', 'ray'), cwd=root)
    assert '4 of 4 runs finished' in result.stderr
    out = root / 'ray'
    assert (out / 'results.csv').read_text() == (uninterrupted / 'results.csv').read_text()
    records = [json.loads((out / 'runs' / f'{run}.json').read_text()) for run in RUNS]
    spans = sorted((r['started'], r['started'] + r['seconds']) for r in records)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), f'no two runs overlapped: {spans}'
