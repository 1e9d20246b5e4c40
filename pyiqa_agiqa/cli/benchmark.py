"""``pyiqa-agiqa benchmark``: the grid of option files x splits (see pyiqa_agiqa.benchmark)."""

from __future__ import annotations


def cmd_benchmark(args) -> int:
    from pyiqa_agiqa.benchmark.runner import run_benchmark

    run_benchmark(args.opt, args.out, splits=args.splits, engine=args.engine, jobs=args.jobs,
                  threads=args.threads_per_run, gpus_per_run=args.gpus_per_run, retries=args.retries,
                  plan_only=args.plan, progress=not args.quiet)
    return 0
