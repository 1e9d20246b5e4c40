"""Speed of the plugin's metrics against their bound, on a CPU or a GPU (random weights: speed
does not depend on the weight values).

    python scripts/speed_benchmark.py                                   # every metric, fp32 + bf16, CPU
    python scripts/speed_benchmark.py --device cuda --batch-size 64 --precisions fp32 bf16 fp16
    python scripts/speed_benchmark.py --train                           # images/s of a training step
    python scripts/speed_benchmark.py --scoring 256                     # end-to-end folder of JPEGs
    python scripts/speed_benchmark.py --precision-diff 64 --skip-speed  # bf16 / fp16 scores vs fp32
    python scripts/speed_benchmark.py --compile                         # also with torch.compile'd towers
    python scripts/speed_benchmark.py --autocast                        # also bf16 / fp16 as autocast, not cast
    python scripts/speed_benchmark.py --memory 8 32 --skip-speed        # peak memory per batch size
    python scripts/speed_benchmark.py --dcmpl-tokens 64 --skip-speed    # what DCMPL's prompt tokens cost

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
embedding). Inputs: B images of S x S (default 8 of 512 x 512), one distinct prompt per image, new
prompts at every call (so the metric's time includes tokenising them; the bound is given
token ids). After a warm-up of each, ``--repeats`` rounds call the metric then the bound;
times are medians, and the ratio is the median of the rounds' metric time / bound time.

**Cast or autocast** (``--autocast``): the plugin runs bf16 / fp16 by casting the towers'
weights once. This mode also times each low precision the other way, fp32 weights under
``torch.autocast`` (metric and bound alike), and prints how it compares with the cast, so the
choice is measured on each device.

**Training** (``--train``): one optimiser step (forward in training mode, the method's loss,
backward, AdamW) per batch, fp32 or with ``train.precision`` autocast; images/s.

**Scoring** (``--scoring N``): N generated JPEGs scored end to end by the scorer (decode
workers, size buckets, batches) against the decode alone and the compute alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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


def prompts_for(n: int, start: int = 0) -> list:
    """``n`` distinct prompts (those from ``start`` on: a new ``start`` gives new prompts)."""
    return [f'{PROMPTS[i % len(PROMPTS)]}, variation {i // len(PROMPTS)}' for i in range(start, start + n)]


def tokenizer_seconds_per_text(n: int = 512) -> float:
    """open_clip's tokenizer (pure Python) on ``n`` new prompts, seconds per text."""
    import open_clip
    tokenizer = open_clip.get_tokenizer('ViT-B-32')
    texts = prompts_for(n, start=10 ** 6)
    start = time.perf_counter()
    tokenizer(texts)
    return (time.perf_counter() - start) / n


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def rounds(fns, device, repeats: int) -> list:
    """Seconds of each of ``fns`` ([[s, ...] per function]): one warm-up call each, then
    ``repeats`` rounds calling each once in turn, so that a machine whose speed drifts (a
    shared CPU) slows every function of a round alike."""
    for fn in fns:
        fn()
    sync(device)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync(device)
            out.append(time.perf_counter() - start)
    return times


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    return statistics.median(rounds([fn], device, repeats)[0])


def timed_pair(fn, bound, device, repeats: int):
    """(median seconds of ``fn``, of ``bound``, median of the per-round ratios fn / bound)."""
    times, bounds = rounds([fn, bound], device, repeats)
    return (statistics.median(times), statistics.median(bounds),
            statistics.median(t / b for t, b in zip(times, bounds)))


def count_views(net, call) -> int:
    """Images that reach the image tower's patch embedding during ``call()``."""
    seen = []
    handle = net.backbone.model.visual.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        call()
    finally:
        handle.remove()
    return sum(seen)


def bench_metric(name: str, precision: str, device, batch: int, size: int, repeats: int,
                 compiled: bool = False, autocast: bool = False) -> dict:
    """Images/s of the metric and of its bound. ``autocast``: fp32 weights, both run under
    ``torch.autocast(dtype=precision)`` instead of cast weights."""
    import contextlib

    import pyiqa

    import pyiqa_agiqa  # noqa: F401
    from pyiqa_agiqa.archs.backbone.precision import dtype_of

    torch.manual_seed(0)
    # (no option for fp32: also runs on versions without it)
    extra = {} if precision == 'fp32' or autocast else {'precision': precision}
    metric = pyiqa.create_metric(name, pretrained=False, device=device, **extra)
    context = (lambda: torch.autocast(device.type, dtype=dtype_of(precision))) if autocast else contextlib.nullcontext
    net = metric.net
    if compiled:  # the towers' blocks; the bound below runs the same (compiled) blocks
        from pyiqa_agiqa.archs.backbone.compilation import compile_towers
        compile_towers(net)
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    images = torch.rand(batch, 3, size, size, device=device)
    prompts = prompts_for(batch)
    calls = iter(range(1, 10 ** 6))

    def call():  # new prompts at each call, as in a corpus: the metric tokenises them
        with context():
            metric(images, prompt=prompts_for(batch, start=batch * next(calls)))
    with torch.no_grad():
        views = count_views(net, call)
        model = net.backbone.model
        image_size = net.backbone.image_size
        view_batch = torch.rand(views, 3, image_size, image_size, device=device).to(model.logit_scale.dtype)
        texts = [f"a photo that well matches '{p}'" for p in prompts] * TEXTS_PER_PROMPT.get(name, 0)
        tokens = net.backbone.tokenize(texts) if texts else None

        def bound():
            with context():
                model.encode_image(view_batch)
                if tokens is not None:
                    model.encode_text(tokens)
        seconds, bound_seconds, ratio = timed_pair(call, bound, device, repeats)
    return dict(metric=name, precision=precision, compiled=compiled, autocast=autocast, batch=batch,
                views_per_image=views / batch,
                texts_per_batch=len(texts), images_per_s=batch / seconds, bound_images_per_s=batch / bound_seconds,
                ratio=ratio)


def dcmpl_prompt_tokens(device, n: int, repeats: int) -> dict:
    """Where DCMPL's time beyond its bound goes: ViT-B/32's 12 blocks on ``n`` random sequences
    of 50 tokens (CLS + 49 patches) and of 58 (+ 8 visual prompt tokens), and the bare tower
    against the prompted one (``encode_image_prompted``) on ``n`` views, fp32, random weights."""
    from pyiqa_agiqa.archs.backbone.clip import CLIPBackbone

    torch.manual_seed(0)
    backbone = CLIPBackbone('ViT-B-32-quickgelu', weights=None).to(device).eval()
    visual = backbone.model.visual
    width = visual.class_embedding.shape[0]
    views = torch.rand(n, 3, 224, 224, device=device)
    prompts = [torch.randn(8, width, device=device) * 0.02 for _ in visual.transformer.resblocks]

    def blocks(tokens):
        start = torch.randn(n, tokens, width, device=device)

        def run():
            x = start
            for block in visual.transformer.resblocks:
                x = block(x)
        return run
    with torch.no_grad():
        at50, at58, _ = timed_pair(blocks(50), blocks(58), device, repeats)
        bare, prompted, _ = timed_pair(lambda: visual(backbone.normalize(views)),
                                       lambda: backbone.encode_image_prompted(views, prompts), device, repeats)
    return dict(mode='dcmpl_prompt_tokens', views=n, blocks_50_s=at50, blocks_58_s=at58, bare_tower_s=bare,
                prompted_tower_s=prompted)


TRAIN_OUTPUTS = {'ipce': None, 'cianet': None, 'clip_agiqa': None, 'dcmpl': None}


def bench_training(name: str, precision: str, device, batch: int, size: int, repeats: int) -> dict:
    """One training step of the method's network (all outputs, an L1 loss on each)."""
    from pyiqa.archs import build_network

    from pyiqa_agiqa.metric_configs import AGIQA_METRIC_CONFIGS
    from pyiqa_agiqa.archs.backbone.precision import autocast

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
    """End-to-end scoring of ``n`` JPEGs (a CSV of image, prompt rows, distinct prompts) with ipce
    vs decode alone vs compute alone."""
    import numpy as np
    from PIL import Image

    from pyiqa_agiqa.metrics.factory import create_metrics
    from pyiqa_agiqa.scoring.local import decoded, score_rows
    from pyiqa_agiqa.scoring.rows import rows_from_csv

    folder = Path(tempfile.mkdtemp(prefix='agiqa_bench_'))
    rng = np.random.default_rng(0)
    base = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
    for i in range(n):
        picture = Image.fromarray(np.roll(base, i, axis=0)).resize((size, size), Image.BICUBIC)
        picture.save(folder / f'{i:05d}.jpg', quality=90)
    table = folder / 'rows.csv'
    table.write_text('image,prompt\n' + ''.join(f'{i:05d}.jpg,"{p}"\n' for i, p in enumerate(prompts_for(n))))
    metrics = create_metrics(['ipce'], device, {'pretrained': False, 'precision': precision})
    start = time.perf_counter()
    for _ in decoded(rows_from_csv(str(table)), workers):
        pass
    decode = time.perf_counter() - start
    images = torch.rand(batch, 3, size, size, device=device)
    metric = metrics['ipce']
    calls = iter(range(1, 10 ** 6))
    with torch.no_grad():  # compute alone: the model on ready tensors and new prompts
        compute = timed(lambda: metric(images, prompt=prompts_for(batch, start=n + batch * next(calls))), device, 1)
    compute *= n / batch
    start = time.perf_counter()
    score_rows(metrics, rows_from_csv(str(table)), batch_size=batch, progress=False, workers=workers)
    sync(device)
    total = time.perf_counter() - start
    return dict(mode='scoring', images=n, workers=workers, precision=precision, decode_s=decode, compute_s=compute,
                total_s=total, images_per_s=n / total, ratio=total / max(decode, compute))


def precision_differences(name: str, precisions, device, n: int, size: int, batch: int) -> list:
    """Scores of ``n`` images (smooth random pictures, distinct prompts) in each precision
    against fp32: max / mean absolute difference and the SRCC between the two score lists."""
    import numpy as np
    import pyiqa
    from scipy import stats
    from torch.nn import functional as F

    import pyiqa_agiqa  # noqa: F401

    generator = torch.Generator().manual_seed(1)
    images = F.interpolate(torch.rand(n, 3, size // 16, size // 16, generator=generator), size=(size, size),
                           mode='bicubic', align_corners=False).clamp(0, 1)
    prompts = prompts_for(n)
    scores = {}
    for precision in ['fp32'] + [p for p in precisions if p != 'fp32']:
        torch.manual_seed(0)
        metric = pyiqa.create_metric(name, pretrained=False, device=device, precision=precision)
        with torch.no_grad():
            scores[precision] = torch.cat([metric(images[i:i + batch].to(device), prompt=prompts[i:i + batch])
                                           .reshape(-1).float().cpu() for i in range(0, n, batch)]).numpy()
    out = []
    for precision, values in scores.items():
        if precision != 'fp32':
            diff = np.abs(values - scores['fp32'])
            out.append(dict(metric=name, mode='precision', precision=precision, images=n, max_abs=float(diff.max()),
                            mean_abs=float(diff.mean()), srcc=float(stats.spearmanr(values, scores['fp32'])[0]),
                            fp32_range=[float(scores['fp32'].min()), float(scores['fp32'].max())]))
    return out


def peak_memory(name: str, precision: str, device, batch: int, size: int) -> dict:
    """Peak memory of one metric call at ``batch`` in a fresh process: the process's peak
    resident set on a CPU (model, Python and libraries included), the peak of
    ``torch.cuda.max_memory_allocated`` on a GPU (after the model is loaded: the call's own)."""
    code = f"""
import resource, torch, pyiqa, pyiqa_agiqa
torch.manual_seed(0)
device = torch.device({str(device)!r})
extra = {{}} if {precision!r} == 'fp32' else {{'precision': {precision!r}}}
metric = pyiqa.create_metric({name!r}, pretrained=False, device=device, **extra)
images = torch.rand({batch}, 3, {size}, {size}, device=device)
prompts = [f'a prompt number {{i}}' for i in range({batch})]
if device.type == 'cuda':
    torch.cuda.synchronize(); base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
with torch.no_grad():
    metric(images, prompt=prompts)
if device.type == 'cuda':
    print((torch.cuda.max_memory_allocated() - base) / 2 ** 20)
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return dict(metric=name, mode='memory', precision=precision, batch=batch, device=str(device),
                peak_mb=float(out.stdout.strip().splitlines()[-1]))


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
    parser.add_argument('--precision-diff', type=int, default=0, metavar='N',
                        help='also compare the scores of N images in each precision with fp32')
    parser.add_argument('--skip-speed', action='store_true', help='only the extra parts (--train, --scoring ...)')
    parser.add_argument('--compile', action='store_true',
                        help='also time each metric with its CLIP towers compiled (torch.compile, regional)')
    parser.add_argument('--autocast', action='store_true',
                        help='also time each low precision as autocast over fp32 weights (against the cast)')
    parser.add_argument('--dcmpl-tokens', type=int, default=0, metavar='N',
                        help="also time ViT-B/32 with and without DCMPL's 8 visual prompt tokens on N views")
    parser.add_argument('--memory', type=int, nargs='+', metavar='B',
                        help='also the peak memory of one call at each batch size B (a fresh process each)')
    parser.add_argument('--json', help='write the results to this file too')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__} on {where}; batch {args.batch_size} of {args.size}x{args.size}, random weights')
    tokenize = tokenizer_seconds_per_text()
    print(f'open_clip tokenizer: {tokenize * 1e6:.0f} us per text on one CPU core')
    results = [dict(mode='tokenizer', seconds_per_text=tokenize)]
    if not args.skip_speed:
        print(f"{'metric':<22}{'precision':>14}{'views/img':>10}{'images/s':>10}{'bound/s':>10}{'ratio':>8}")
    for name in args.metrics if not args.skip_speed else []:
        for precision in args.precisions:
            variants = [(False, False)] + [(True, False)] * args.compile
            variants += [(False, True)] * (args.autocast and precision != 'fp32')
            for compiled, autocast in variants:
                r = bench_metric(name, precision, device, args.batch_size, args.size, args.repeats, compiled,
                                 autocast)
                label = precision + ('+compile' if compiled else '') + (' autocast' if autocast else '')
                versus = ''
                if autocast:  # against the eager cast row of the same precision, printed above
                    cast = next(c for c in results if c.get('metric') == name and c['precision'] == precision
                                and not c['compiled'] and not c['autocast'])
                    r['speed_vs_cast'] = r['images_per_s'] / cast['images_per_s']
                    versus = f"   {r['speed_vs_cast']:.2f} x the cast's images/s"
                results.append(r)
                print(f"{name:<22}{label:>14}{r['views_per_image']:>10.1f}{r['images_per_s']:>10.2f}"
                      f"{r['bound_images_per_s']:>10.2f}{r['ratio']:>8.2f}{versus}", flush=True)
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
    if args.precision_diff:
        print(f"\n{'scores vs fp32':<22}{'precision':>10}{'max abs':>10}{'mean abs':>10}{'SRCC':>8}  fp32 range")
        for name in args.metrics:
            for r in precision_differences(name, args.precisions, device, args.precision_diff, args.size,
                                           args.batch_size):
                results.append(r)
                print(f"{name:<22}{r['precision']:>10}{r['max_abs']:>10.4f}{r['mean_abs']:>10.4f}{r['srcc']:>8.4f}"
                      f"  {r['fp32_range'][0]:.3f}..{r['fp32_range'][1]:.3f}", flush=True)
    if args.dcmpl_tokens:
        r = dcmpl_prompt_tokens(device, args.dcmpl_tokens, args.repeats)
        results.append(r)
        print(f"\nViT-B/32 on {r['views']} views, fp32: 12 blocks at 50 tokens {r['blocks_50_s']:.2f} s, at 58 "
              f"{r['blocks_58_s']:.2f} s ({r['blocks_58_s'] / r['blocks_50_s']:.2f}x); bare tower "
              f"{r['bare_tower_s']:.2f} s, prompted {r['prompted_tower_s']:.2f} s "
              f"({r['prompted_tower_s'] / r['bare_tower_s']:.2f}x)")
    if args.memory:
        what = 'GPU MB (the call)' if device.type == 'cuda' else 'peak RSS MB (process)'
        print(f"\n{'memory':<22}{'precision':>10}" + ''.join(f'{f"batch {b}":>12}' for b in args.memory)
              + f'  last / first ({what})')
        for name in args.metrics:
            for precision in args.precisions:
                rows = [peak_memory(name, precision, device, b, args.size) for b in args.memory]
                results.extend(rows)
                print(f"{name:<22}{precision:>10}" + ''.join(f"{r['peak_mb']:>12.0f}" for r in rows)
                      + f"  {rows[-1]['peak_mb'] / rows[0]['peak_mb']:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
