"""``pyiqa-agiqa train`` / ``train-nsplits`` (the plugin's resumable run of pyiqa's loop) and ``demo``."""

from __future__ import annotations

from typing import List


def cmd_train(args, rest: List[str]) -> int:
    from pyiqa_agiqa.training import distributed
    from pyiqa_agiqa.training.nsplits import run_nsplits
    from pyiqa_agiqa.training.pipeline import run_training

    try:
        (run_nsplits if args.command == 'train-nsplits' else run_training)(rest)
    finally:
        distributed.destroy()
    return 0


def cmd_demo(args) -> int:
    from pyiqa_agiqa.demo.run import format_report, run_demo

    print(format_report(run_demo(args.workdir, epochs=args.epochs, n_prompts=args.prompts, overwrite=args.overwrite)))
    return 0
