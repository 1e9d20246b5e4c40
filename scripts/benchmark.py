"""Inference speed and memory of the plugin's metrics (random weights: speed does not depend
on the weight values). Runs anywhere: small defaults on a CPU, real figures on a GPU.

    python scripts/benchmark.py                           # ipce, CPU-sized run
    python scripts/benchmark.py --device cuda --images 64 --batch-sizes 1 8 16
    python scripts/benchmark.py --metrics ipce cianet --size 512

Prints one line per (metric, batch size): images/s, ms/image and peak memory. Each
configuration runs in a fresh process, so the peak is its own (GPU: torch's peak allocation;
CPU: the process's peak resident set size, model and Python included).
"""

import argparse
import multiprocessing
import resource
import sys
import time

import torch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(metric_name, device, n_images, batch_size, size, warmup=1):
    import pyiqa

    import pyiqa_agiqa  # noqa: F401

    metric = pyiqa.create_metric(metric_name, pretrained=False, device=device)
    images = torch.rand(batch_size, 3, size, size, device=device)
    prompts = ['a red fox standing in fresh snow, photorealistic'] * batch_size
    for _ in range(warmup):
        metric(images, prompt=prompts)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    n_batches = max(1, n_images // batch_size)
    start = time.perf_counter()
    for _ in range(n_batches):
        metric(images, prompt=prompts)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    n = n_batches * batch_size
    return n / seconds, 1000 * seconds / n, peak_memory_mb(device)


def _bench_in_child(queue, *args):
    queue.put(bench(*args))


def bench_isolated(*args):
    """bench() in a fresh spawned process (its own memory peak)."""
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    child = context.Process(target=_bench_in_child, args=(queue, *args))
    child.start()
    result = queue.get()
    child.join()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--metrics', nargs='+', default=['ipce'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--images', type=int, default=8, help='images timed per configuration')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--size', type=int, default=512, help='square input side in pixels')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__} on {name}; {args.size}x{args.size} inputs, random weights')
    print(f"{'metric':<22}{'batch':>6}{'images/s':>11}{'ms/image':>11}{'peak MB':>10}")
    for metric_name in args.metrics:
        for batch_size in args.batch_sizes:
            ips, ms, mem = bench_isolated(metric_name, device, args.images, batch_size, args.size)
            print(f'{metric_name:<22}{batch_size:>6}{ips:>11.2f}{ms:>11.1f}{mem:>10.0f}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
