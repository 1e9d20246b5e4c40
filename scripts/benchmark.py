"""Speed of the plugin's metrics against their bound, on a CPU or a GPU (random weights: speed
does not depend on the weight values).

    python scripts/benchmark.py                                   # every metric, fp32 + bf16, CPU
    python scripts/benchmark.py --device cuda --batch-size 64 --precisions fp32 bf16 fp16
    python scripts/benchmark.py --train                           # images/s of a training step
    python scripts/benchmark.py --scoring 256                     # end-to-end folder of JPEGs

**Bound.** A metric's unavoidable work is its CLIP passes: the image tower on the views the
method needs and the text tower on the texts that change per image (fixed texts are computed
once). The bound is bare open_clip (``model.encode_image`` / ``model.encode_text``, the same
model object, the same dtype) on exactly that many views and texts, timed in the same run:

- ``ipce``: image tower on B x (15 patches + whole) views of 224; text tower on the 5 level
  texts of each distinct prompt;
- ``cianet`` / ``cianet_consistency``: image tower on B views; text tower on the distinct
  prompts; ``cianet_authenticity``: image tower only;
- ``clip_agiqa``: image tower on B views (ViT-B/16);
- ``dcmpl``: image tower on B x (patches of 224 at stride 64) views (its visual prompt tokens
  are part of the method and are not in the bound).

The views per image are counted on the metric's own call (a hook on the image tower's patch
embedding). Inputs: B images of S x S (default 8 of 512 x 512), one distinct prompt per image.
Times are the median of ``--repeats`` calls after a warm-up; ratio = metric time / bound time.

**Training** (``--train``): one optimiser step (forward in training mode, the method's loss,
backward, AdamW) per batch, fp32 or with ``train.precision`` autocast; images/s.

**Scoring** (``--scoring N``): N generated JPEGs scored end to end by the scorer (decode
workers, size buckets, batches) against the decode alone and the compute alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

METRICS = ['ipce', 'cianet', 'cianet_authenticity', 'cianet_consistency', 'clip_agiqa', 'dcmpl']
TEXTS_PER_PROMPT = {'ipce': 5, 'cianet': 1, 'cianet_consistency': 1}
PROMPTS = ['a red fox standing in fresh snow, photorealistic, golden hour light',
           'an astronaut riding a horse on mars, digital art', 'a bowl of ramen with chopsticks, studio photo',
           'a watercolor painting of a lighthouse on a cliff', 'a cyberpunk city street at night in the rain',
           'a close-up portrait of an old fisherman, 85mm', 'a cat wearing a tiny wizard hat, cartoon style',
           'a mountain lake reflecting pine trees at dawn']


def prompts_for(n: int) -> list:
    return [f'{PROMPTS[i % len(PROMPTS)]}, variation {i // len(PROMPTS)}' for i in range(n)]


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_views(net, call) -> int:
    """Images that reach the image tower's patch embedding during ``call()``."""
    seen = []
    handle = net.backbone.model.visual.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        call()
    finally:
        handle.remove()
    return sum(seen)


def bench_metric(name: str, precision: str, device, batch: int, size: int, repeats: int) -> dict:
    import pyiqa

    import pyiqa_agiqa  # noqa: F401

    torch.manual_seed(0)
    metric = pyiqa.create_metric(name, pretrained=False, device=device, precision=precision)
    net = metric.net
    images = torch.rand(batch, 3, size, size, device=device)
    prompts = prompts_for(batch)
    with torch.no_grad():
        views = count_views(net, lambda: metric(images, prompt=prompts))
        seconds = timed(lambda: metric(images, prompt=prompts), device, repeats)
        model = net.backbone.model
        image_size = net.backbone.image_size
        view_batch = torch.rand(views, 3, image_size, image_size, device=device).to(net.backbone.dtype)
        texts = [f"a photo that well matches '{p}'" for p in prompts] * TEXTS_PER_PROMPT.get(name, 0)
        tokens = net.backbone.tokenize(texts) if texts else None

        def bound():
            model.encode_image(view_batch)
            if tokens is not None:
                model.encode_text(tokens)
        bound_seconds = timed(bound, device, repeats)
    return dict(metric=name, precision=precision, batch=batch, views_per_image=views / batch,
                texts_per_batch=len(texts), images_per_s=batch / seconds, bound_images_per_s=batch / bound_seconds,
                ratio=seconds / bound_seconds)


TRAIN_OUTPUTS = {'ipce': None, 'cianet': None, 'clip_agiqa': None, 'dcmpl': None}


def bench_training(name: str, precision: str, device, batch: int, size: int, repeats: int) -> dict:
    """One training step of the method's network (all outputs, an L1 loss on each)."""
    from pyiqa.archs import build_network

    from pyiqa_agiqa.metric_configs import AGIQA_METRIC_CONFIGS
    from pyiqa_agiqa.precision import autocast

    torch.manual_seed(0)
    options = dict(AGIQA_METRIC_CONFIGS[name]['metric_opts'], pretrained=False)
    options.pop('output', None)
    net = build_network(options).to(device).train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-6)
    if name == 'ipce':  # the training views are cut per item by the dataset
        images = net.views(torch.rand(batch, 3, size, size), train=True).to(device)
    else:
        images = torch.rand(batch, 3, 224 if name != 'clip_agiqa' else size, 224 if name != 'clip_agiqa' else size,
                            device=device)
    prompts = prompts_for(batch)
    target = torch.rand(batch, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = net(images, prompt=prompts)
        outs = out.values() if isinstance(out, dict) else [out]
        loss = sum((o.float().reshape(batch, -1)[:, 0] - target).abs().mean() for o in outs)
        loss.backward()
        optimizer.step()
    seconds = timed(step, device, repeats)
    return dict(metric=name, mode='train', precision=precision, batch=batch, images_per_s=batch / seconds)


def bench_scoring(n: int, device, batch: int, size: int, workers: int, precision: str) -> dict:
    """End-to-end scoring of ``n`` JPEGs with ipce vs decode alone vs compute alone."""
    import numpy as np
    from PIL import Image

    from pyiqa_agiqa.scoring import create_metrics, decoded, rows_from_target, score_rows

    folder = Path(tempfile.mkdtemp(prefix='agiqa_bench_'))
    rng = np.random.default_rng(0)
    base = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
    for i in range(n):
        Image.fromarray(np.roll(base, i, axis=0)).resize((size, size), Image.BICUBIC).save(folder / f'{i:05d}.jpg',
                                                                                         quality=90)
    metrics = create_metrics(['ipce'], device, {'pretrained': False, 'precision': precision})
    rows = rows_from_target(str(folder), 'a red fox standing in fresh snow')
    start = time.perf_counter()
    for _ in decoded(rows, workers):
        pass
    decode = time.perf_counter() - start
    images = torch.rand(batch, 3, size, size, device=device)
    metric = metrics['ipce']
    with torch.no_grad():
        compute = timed(lambda: metric(images, prompt=['a red fox standing in fresh snow'] * batch), device, 1)
    compute *= n / batch
    start = time.perf_counter()
    score_rows(metrics, rows_from_target(str(folder), 'a red fox standing in fresh snow'), batch_size=batch,
               progress=False, workers=workers)
    sync(device)
    total = time.perf_counter() - start
    return dict(mode='scoring', images=n, workers=workers, precision=precision, decode_s=decode, compute_s=compute,
                total_s=total, images_per_s=n / total, ratio=total / max(decode, compute))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--metrics', nargs='+', default=METRICS)
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--size', type=int, default=512, help='square input side in pixels')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--train', action='store_true', help='also time training steps')
    parser.add_argument('--scoring', type=int, default=0, metavar='N', help='also score N JPEGs end to end')
    parser.add_argument('--workers', type=int, default=2, help='decode workers for --scoring')
    parser.add_argument('--json', help='write the results to this file too')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__} on {where}; batch {args.batch_size} of {args.size}x{args.size}, random weights')
    results = []
    print(f"{'metric':<22}{'precision':>10}{'views/img':>10}{'images/s':>10}{'bound/s':>10}{'ratio':>8}")
    for name in args.metrics:
        for precision in args.precisions:
            r = bench_metric(name, precision, device, args.batch_size, args.size, args.repeats)
            results.append(r)
            print(f"{name:<22}{precision:>10}{r['views_per_image']:>10.1f}{r['images_per_s']:>10.2f}"
                  f"{r['bound_images_per_s']:>10.2f}{r['ratio']:>8.2f}", flush=True)
    if args.train:
        print(f"\n{'training step':<22}{'precision':>10}{'images/s':>10}")
        for name in [m for m in args.metrics if m in TRAIN_OUTPUTS]:
            for precision in args.precisions:
                r = bench_training(name, precision, device, args.batch_size, args.size, args.repeats)
                results.append(r)
                print(f"{name:<22}{precision:>10}{r['images_per_s']:>10.2f}", flush=True)
    if args.scoring:
        r = bench_scoring(args.scoring, device, args.batch_size, args.size, args.workers, args.precisions[-1])
        results.append(r)
        print(f"\nscoring {r['images']} JPEGs ({r['precision']}, {r['workers']} workers): {r['images_per_s']:.2f} "
              f"images/s; decode alone {r['decode_s']:.1f} s, compute alone {r['compute_s']:.1f} s, end to end "
              f"{r['total_s']:.1f} s = {r['ratio']:.2f} x max(decode, compute)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
