"""Corpus scoring on Ray Data with 1 and 2 metric actors on the local machine (or a cluster
with RAY_ADDRESS), against the single-process scorer on the same images.

    python scripts/speed_benchmark_ray.py                          # 64 generated 512 px JPEGs, ipce, CPU
    python scripts/speed_benchmark_ray.py --images 2000 --gpus-per-actor 1 --actors 1 2 4 --batch-size 64

Random weights (speed does not depend on the weight values). Each run writes to a fresh
DST; images/s counts every row (read, decoded, scored, written), Ray's start-up excluded
(Ray is started once before the runs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def make_images(folder: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
    for i in range(n):
        picture = Image.fromarray(np.roll(base, i, axis=1)).resize((size, size), Image.BICUBIC)
        picture.save(folder / f'{i:06d}.jpg', quality=90)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--metrics', nargs='+', default=['ipce'])
    parser.add_argument('--images', type=int, default=64)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--actors', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--gpus-per-actor', type=float, default=0.0)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--no-local', action='store_true', help='skip the single-process comparison')
    args = parser.parse_args(argv)

    import ray

    from pyiqa_agiqa.scoring.ray_engine import score_with_ray
    from pyiqa_agiqa.metrics.factory import create_metrics
    from pyiqa_agiqa.scoring.rows import rows_from_target
    from pyiqa_agiqa.scoring.local import score_rows

    work = Path(tempfile.mkdtemp(prefix='agiqa_ray_bench_'))
    images = work / 'images'
    images.mkdir()
    make_images(images, args.images, args.size)
    options = dict(pretrained=False, precision=args.precision)
    prompt = 'a red fox standing in fresh snow'
    device = 'cuda' if args.gpus_per_actor else 'cpu'
    print(f'{args.images} JPEGs of {args.size} px, metrics {args.metrics}, {args.precision}, batch {args.batch_size}')
    if not args.no_local:
        metrics = create_metrics(args.metrics, device, options)
        start = time.perf_counter()
        score_rows(metrics, rows_from_target(str(images), prompt), batch_size=args.batch_size, progress=False)
        seconds = time.perf_counter() - start
        print(f'single process: {args.images / seconds:.2f} images/s')
        del metrics
    ray.init(include_dashboard=False, log_to_driver=False)
    print(f"Ray resources: {ray.cluster_resources()}")
    for actors in args.actors:
        dst = work / f'dst_{actors}'
        summary = score_with_ray(args.metrics, str(images), str(dst), prompt=prompt, options=options,
                                 batch_size=args.batch_size, actors=actors, gpus_per_actor=args.gpus_per_actor)
        print(f'ray, {actors} actor(s): {summary.images_per_s:.2f} images/s ({summary.scored} scored, '
              f'{summary.failed} failed, {summary.seconds:.1f} s)', flush=True)
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
