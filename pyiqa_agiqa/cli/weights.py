"""Weights commands: ``export`` (a training run), ``convert-reference`` (the authors' reference
checkpoints), ``convert-pickle`` (a trusted pickle to tensors only) and ``push`` (to the hub).
What each wrote is said on standard error (standard output is for results only)."""

from __future__ import annotations

import os
import sys


from pyiqa_agiqa.errors import OptionError

from .parser import parse_set


def cmd_convert_pickle(args) -> int:
    from pyiqa_agiqa.weights.io import convert_trusted_checkpoint

    if not args.trust_pickle:
        raise OptionError('convert-pickle runs code from the input file; pass --trust-pickle if (and only if) '
                          'you trust where it comes from')
    if os.path.exists(args.output) and not args.overwrite:
        raise OptionError(f'{args.output} exists; pass --overwrite to replace it')
    print(f'tensors written to {convert_trusted_checkpoint(args.input, args.output, key=args.key)}', file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from pyiqa_agiqa.export.experiment import export_experiment

    for folder in export_experiment(args.experiment, args.output, split=args.split, overwrite=args.overwrite):
        print(f'exported to {folder}', file=sys.stderr)
    return 0


def cmd_push(args) -> int:
    from pyiqa_agiqa.weights.hub import push_folder

    spec = push_folder(args.folder, args.repo, path_in_repo=args.path_in_repo, revision=args.revision,
                       private=args.private)
    print(f"uploaded; load it pinned with: create_metric(..., weights='{spec}')", file=sys.stderr)
    return 0


def cmd_convert_reference(args) -> int:
    from pyiqa_agiqa.export.convert import convert_reference

    folder = convert_reference(args.kind, args.inputs, args.output, overwrite=args.overwrite, clip_weights=args.clip,
                               network=parse_set(args.set) or None)
    print(f'converted into {folder}', file=sys.stderr)
    return 0
