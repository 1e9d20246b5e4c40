"""Dataset commands: ``prepare`` (a meta-info CSV from the official files) and ``download``."""

from __future__ import annotations

import os
import sys


from pyiqa_agiqa.errors import OptionError


def cmd_prepare(args) -> int:
    import pandas as pd

    from pyiqa_agiqa.data.prepare import prepare_meta_info

    if os.path.exists(args.output) and not args.overwrite:
        raise OptionError(f'{args.output} exists; pass --overwrite to replace it')
    extra = {'duplicate_policy': args.duplicate_policy} if args.duplicate_policy else {}
    warnings = prepare_meta_info(args.dataset, args.output, data=args.data, release=args.release,
                                 splits=args.splits_csv, overwrite=args.overwrite,
                                 shipped_splits=not args.no_shipped_splits, **extra)
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'{len(pd.read_csv(args.output))} rows written to {args.output}', file=sys.stderr)
    return 0


def cmd_download(args) -> int:
    from pyiqa_agiqa.data.download import download_dataset

    print(f'unpacked into {download_dataset(args.dataset, args.dest)}', file=sys.stderr)
    return 0
