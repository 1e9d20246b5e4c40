"""``pyiqa-agiqa benchmark``: the grid of option files x splits (see pyiqa_agiqa.benchmark)."""

from __future__ import annotations


def cmd_benchmark(args) -> int:
    from pyiqa_agiqa.benchmark.runner import run_benchmark
    from pyiqa_agiqa.errors import OptionError

    if not args.out and not args.plan:
        raise OptionError('benchmark needs --out DIR (the folder of its runs and tables; the same DIR continues it)')
    run_benchmark(args.opt, args.out, splits=args.splits, engine=args.engine, jobs=args.jobs,
                  threads=args.threads_per_run, gpus_per_run=args.gpus_per_run, retries=args.retries,
                  plan_only=args.plan, progress=not args.quiet)
    return 0
