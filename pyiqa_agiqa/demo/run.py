"""The embedded demo: generate the synthetic dataset, train a tiny randomly initialised IPCE
through pyiqa's training pipeline, and report held-out SRCC / PLCC before and after.

Everything lands under one work folder (default ``./agiqa_demo``): ``data/`` (images and
meta-info), ``ipce_demo.yml`` (the option file that was run) and ``experiments/`` (with the
training's full log, ``experiments/ipce_demo/train_ipce_demo_<time>.log``; its resume states
are deleted once training ends: about 40 MB stay). The console shows
one progress bar per stage (data, training, the two test evaluations) and the summary
(:func:`format_report`), which names the log file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import time
from pathlib import Path

import torch
import yaml
from scipy import stats
from torch.utils.data import DataLoader
from tqdm import tqdm

from pyiqa.archs import build_network
from pyiqa.utils import set_random_seed

from ..data.agiqa_dataset import AGIQADataset
from ..training.console import hold_back_console, restore_console
from ..training.pipeline import TrainingRun, load_options
from ..weights.io import load_network_weights
from .synthetic import make_demo_dataset

TEMPLATE = Path(__file__).resolve().parent / 'ipce_demo.yml'
RECORDED = Path(__file__).resolve().parent / 'recorded.json'  # what `pyiqa-agiqa demo` printed (README)
N_PROMPTS = 100  # x 6 images: 420 train / 60 val / 120 test images in demo_split_01
# One intra-op thread: torch's CPU kernels split their sums by the number of threads, and 30
# epochs of training turn those last-bit differences into different figures (measured: SRCC 0.4184
# with 2 threads, 0.4542 with 1). With one thread the figures depend only on the code, torch and
# the CPU's instruction set (torch.backends.cpu.get_cpu_capability()); on 2 cores it costs about
# 25 % more time (151 s of training instead of 122 s).
THREADS = 1


def demo_options(data_csv: Path, image_dir: Path, epochs: int) -> dict:
    """The demo option file with the data paths and the epochs (one validation per epoch)."""
    opt = yaml.safe_load(TEMPLATE.read_text())
    for block in opt['datasets'].values():
        block['meta_info_file'] = str(data_csv)
        block['dataroot_target'] = str(image_dir)
    opt['train']['total_epoch'] = epochs
    opt['train']['scheduler']['T_max'] = epochs
    return opt


@torch.no_grad()
def evaluate(net: torch.nn.Module, dataset_opt: dict, target: str = 'mos_quality', desc: str = 'testing',
             progress: bool = True) -> dict:
    """SRCC / PLCC of ``net`` on a dataset block (phase from ``override_phase``)."""
    dataset = AGIQADataset(dict(copy.deepcopy(dataset_opt), phase='val'))
    net.eval()
    preds, gts = [], []
    for batch in tqdm(DataLoader(dataset, batch_size=32, shuffle=False), desc=desc, unit='batch',
                      disable=not progress):
        preds.append(net(batch['img'], prompt=list(batch['prompt'])).reshape(-1))
        gts.append(batch['labels'][target])
    pred, gt = torch.cat(preds).numpy(), torch.cat(gts).numpy()
    return {'srcc': float(stats.spearmanr(pred, gt)[0]), 'plcc': float(stats.pearsonr(pred, gt)[0]),
            'n_images': len(gt)}


def run_demo(workdir: str = 'agiqa_demo', epochs: int = 30, n_prompts: int = N_PROMPTS,
             overwrite: bool = False) -> dict:
    """Run the whole demo; returns {'before': metrics, 'after': metrics, 'seconds': float,
    'workdir', 'log', 'environment'}; torch runs on :data:`THREADS` threads meanwhile."""
    from pyiqa.utils import get_root_logger

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    held = hold_back_console(get_root_logger())  # pyiqa's "Network [IPCE] is created." lines
    try:
        return _run_demo(Path(workdir).resolve(), epochs, n_prompts, overwrite)
    finally:
        restore_console(held)
        torch.set_num_threads(threads)


def environment() -> dict:
    """What the demo's figures depend on besides the code."""
    return {'torch': torch.__version__.split('+')[0], 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'threads': THREADS}


def _run_demo(workdir: Path, epochs: int, n_prompts: int, overwrite: bool) -> dict:
    data_csv = make_demo_dataset(workdir / 'data', n_prompts=n_prompts, overwrite=overwrite)
    opt = demo_options(data_csv, workdir / 'data' / 'images', epochs)
    opt_path = workdir / 'ipce_demo.yml'
    opt_path.write_text(yaml.safe_dump(opt, sort_keys=False))
    test_opt = opt['datasets']['val_test']

    # pyiqa's logger gets its log file only if training is the first thing that logs, so both
    # evaluations come after it; the seed rebuilds exactly the network training started from.
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # pyiqa's option parser prints "Disable distributed."
        options = load_options(['-opt', str(opt_path)], str(workdir))
    run = TrainingRun(*options, progress=True)
    run.run()
    seconds = time.time() - start
    shutil.rmtree(options[0]['path']['training_states'], ignore_errors=True)  # 141 MB of resume states: no resume

    set_random_seed(opt['manual_seed'])
    before = evaluate(build_network(opt['network']), test_opt, desc='testing the untrained network')

    net = build_network(opt['network'])
    best = workdir / 'experiments' / opt['name'] / 'models' / 'net_best.pth'
    load_network_weights(net, best)
    after = evaluate(net, test_opt, desc='testing the trained network')
    return {'before': before, 'after': after, 'seconds': seconds, 'workdir': str(workdir), 'log': run.log_file,
            'environment': environment()}


def format_report(result: dict) -> str:
    b, a = result['before'], result['after']
    return '\n'.join([
        f"IPCE demo (tiny CLIP, random init): held-out test part of demo_split_01, {a['n_images']} images",
        f"  before training: SRCC {b['srcc']:.4f}  PLCC {b['plcc']:.4f}",
        f"  after training : SRCC {a['srcc']:.4f}  PLCC {a['plcc']:.4f}   "
        f"(checkpoint chosen on the val part; training took {result['seconds']:.0f} s)",
        f"  files: {result['workdir']}",
        f"  full training log: {result['log']}",
    ])
