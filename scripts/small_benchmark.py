"""The small benchmark of docs/benchmark.md: generated data (60 prompts x 6 images), a tiny
IPCE and a tiny CIA-Net (random initialisation, tiny CLIPs), 2 splits each, on CPUs.

    python scripts/small_benchmark.py WORKDIR            # data + option files, then the benchmark
    python scripts/small_benchmark.py WORKDIR --jobs 1   # one run at a time (same figures)

It writes WORKDIR/data (the generated dataset), WORKDIR/opts/{ipce_demo,cianet_demo}.yml and
runs ``pyiqa-agiqa benchmark -opt ... --splits 1 2 --out bench --threads-per-run 1`` in
WORKDIR; the figures depend only on the code, torch and the CPU's instruction set (one thread
per run). The option files are the test suite's tiny recipes (tests/training_helpers.py) with
one validation per epoch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_grid(workdir: Path) -> list:
    sys.path.insert(0, str(REPO / 'tests'))
    from training_helpers import cianet_options, ipce_options, write_options

    from pyiqa_agiqa.demo.synthetic import make_demo_dataset

    csv = make_demo_dataset(workdir / 'data', n_prompts=60, images_per_prompt=6, image_size=96, seed=0,
                            progress=False)
    data = (csv, workdir / 'data' / 'images')
    ipce = ipce_options(data, 'ipce_demo', epochs=6, batch=16)
    cianet = cianet_options(data, 'cianet_demo', stage_epochs=(3, 5), batch=16)
    cianet['val']['metrics']['krcc'] = {'type': 'calculate_krcc'}
    for opt in (ipce, cianet):
        opt['num_gpu'] = 'auto'  # the visible GPU where there is one (the device check), else the CPU
        opt['val'].update(val_freq=1e9, val_epochs=1)
        for block in opt['datasets'].values():
            block['num_worker_per_gpu'] = 0
    return [write_options(opt, workdir / 'opts') for opt in (ipce, cianet)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('workdir')
    parser.add_argument('--jobs', type=int, default=2)
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    files = write_grid(workdir)
    files = [str(f.relative_to(workdir)) for f in files]
    command = [sys.executable, '-m', 'pyiqa_agiqa.cli', 'benchmark', '-opt', *files,
               '--splits', '1', '2', '--out', 'bench', '--threads-per-run', '1', '--jobs', str(args.jobs)]
    return subprocess.call(command, cwd=workdir)


if __name__ == '__main__':
    sys.exit(main())
