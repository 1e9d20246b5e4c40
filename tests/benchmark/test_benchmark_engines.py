"""The local engine's placement, on CPUs: one child per GPU slot with CUDA_VISIBLE_DEVICES set
to that GPU, never two children on one GPU at once, the thread count in the environment, and a
crashed child reported with its status (the GPU route that a device check runs for real)."""

import json
import sys

from pyiqa_agiqa.benchmark import engines

PROBE = ("import json, os, sys, time; t = time.time(); time.sleep(0.3); "
         "json.dump(dict(gpu=os.environ.get('CUDA_VISIBLE_DEVICES'), omp=os.environ.get('OMP_NUM_THREADS'), "
         "start=t, end=time.time()), open(sys.argv[1], 'w')); sys.exit(3 if sys.argv[2] == 'crash' else 0)")


def probe_command(out, run_id, threads):
    return [sys.executable, '-c', PROBE, str(out / f'{run_id}.json'), run_id]


def test_one_run_per_gpu_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, 'worker_command', probe_command)
    ids = ['a', 'b', 'c', 'd', 'crash']
    ended = {run_id: code for run_id, code, _ in engines.run_local(tmp_path, ids, jobs=2, threads=3, gpus=['4', '6'])}
    assert ended == {'a': 0, 'b': 0, 'c': 0, 'd': 0, 'crash': 3}
    probes = [json.loads((tmp_path / f'{i}.json').read_text()) for i in ids]
    assert {p['gpu'] for p in probes} == {'4', '6'} and {p['omp'] for p in probes} == {'3'}
    for gpu in ('4', '6'):
        spans = sorted((p['start'], p['end']) for p in probes if p['gpu'] == gpu)
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), f'two runs on GPU {gpu} at once: {spans}'
    spans = sorted((p['start'], p['end']) for p in probes)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), 'the two GPUs never ran at once'


def test_cpu_runs_leave_the_gpu_variable_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, 'worker_command', probe_command)
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '7')
    list(engines.run_local(tmp_path, ['a'], jobs=1, threads=1))
    assert json.loads((tmp_path / 'a.json').read_text())['gpu'] == '7'


def test_a_run_held_by_another_process_is_not_started_twice(tmp_path):
    """Two benchmarks on one DIR: the worker of a run whose lock a live process holds exits
    with BUSY before touching the run, and its record says so (not 'killed')."""
    from pyiqa_agiqa.benchmark import runner, worker
    from pyiqa_agiqa.benchmark.grid import Run

    (tmp_path / worker.RUNS_DIR).mkdir()
    held = worker._hold(tmp_path, 'r')  # this test process stands for the other benchmark
    assert held is not None
    ended = list(engines.run_local(tmp_path, ['r'], jobs=1, threads=1))
    assert [(run_id, code) for run_id, code, _ in ended] == [('r', worker.BUSY)]
    assert not (tmp_path / 'experiments').exists()
    run = Run(run_id='r', name='r', option_file='r.yml', split=1, method='IPCE', dataset='d', scheme='s', targets={})
    runner._crashed(tmp_path, run, worker.BUSY, ended[0][2])
    error = worker.read_record(tmp_path, 'r')['error']
    assert 'a second benchmark' in error and 'killed' not in error, error
    held.close()
