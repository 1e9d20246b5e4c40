"""``pyiqa-agiqa score``: the local engine, or the Ray engine with ``--engine ray``."""

from __future__ import annotations

import logging
import sys
from typing import List


from pyiqa_agiqa.errors import OptionError

from .parser import parse_set


def _parse_weights(entries: List[str], metrics: List[str]) -> dict:
    """--weights SPEC (every metric) or --weights METRIC=SPEC (one of them)."""
    out = {}
    for entry in entries or []:
        name, sep, spec = entry.partition('=')
        if sep and name in metrics:
            out[name] = spec
        else:
            out[None] = entry
    return out


def cmd_score_ray(args, options: dict) -> int:
    from pyiqa_agiqa.scoring.ray_engine import score_with_ray

    sources = [s for s in (args.input, args.target, args.csv) if s]
    if len(sources) != 1 or not args.output:
        raise OptionError('--engine ray needs one source (--input FOLDER|TABLE|SHARDS, or -t / --csv) and '
                          '--output DST (a folder of part files)')
    summary = score_with_ray(args.metric, sources[0], args.output, prompt=args.prompt, options=options,
                             weights=_parse_weights(args.weights, args.metric), seed=args.seed,
                             batch_size=args.batch_size, actors=args.actors, gpus_per_actor=args.gpus_per_actor,
                             threads_per_actor=args.threads_per_actor, compile_mode=args.compile, fmt=args.format,
                             overwrite=args.overwrite, allow_untrained=args.allow_untrained,
                             max_pixels=args.max_pixels, console_level=logging.WARNING if args.quiet else logging.INFO)
    twice = f' ({summary.duplicates} duplicate rows of the same image and prompt, scored once)' \
        if summary.duplicates else ''
    print(f'{summary.read} rows read{twice}, {summary.skipped} already in {args.output}, {summary.scored} scored, '
          f'{summary.failed} failed; {summary.images_per_s:.2f} images/s over {summary.seconds:.1f} s', file=sys.stderr)
    for image, error in summary.failures:
        print(f'  not scored: {image}: {error}', file=sys.stderr)
    return 1 if summary.failed else 0


def network_options(args) -> dict:
    """The network options of ``score``'s and ``compare``'s arguments (``--set``, ``--precision``,
    ``--random-weights``); ``--max-pixels`` is applied to the image reader."""
    from pyiqa_agiqa.data.image_io import set_max_pixels

    if args.precision:
        args.set = list(args.set or []) + [f'precision={args.precision}']
    options = parse_set(args.set)
    if args.random_weights:
        options['pretrained'] = False
    if args.max_pixels is not None:
        set_max_pixels(args.max_pixels)
    return options


def cmd_score(args) -> int:
    from pyiqa_agiqa.scoring.output import ResultWriter
    from pyiqa_agiqa.metrics.factory import create_metrics
    from pyiqa_agiqa.scoring.rows import rows_from_csv, rows_from_target
    from pyiqa_agiqa.scoring.contract import output_columns
    from pyiqa_agiqa.scoring.local import rows_to_score, score_rows

    options = network_options(args)
    if args.engine == 'ray':
        return cmd_score_ray(args, options)
    if args.input:
        raise OptionError('--input is the source of --engine ray; use -t (image or folder) or --csv here')
    if (args.target is None) == (args.csv is None):
        raise OptionError('give exactly one of -t/--target (an image or a folder) or --csv (image,prompt)')
    rows = rows_from_csv(args.csv) if args.csv else rows_from_target(args.target, args.prompt)
    names = list(dict.fromkeys(args.metric))
    writer = None
    if args.output:  # an existing output is refused or read back before any model is built
        writer = ResultWriter(args.output, output_columns(names), overwrite=args.overwrite, resume=args.resume)
    try:
        for note in writer.notes if writer else []:
            print(f'note: {note}', file=sys.stderr)
        metrics = create_metrics(names, args.device, options, _parse_weights(args.weights, names), args.seed,
                                 args.compile, args.allow_untrained)
        _, duplicates, skipped = rows_to_score(rows, writer.done if writer else ())

        def echo(record):
            if writer is None and not record['error']:
                print('\t'.join([record['image']] + [f'{record[m]:.4f}' for m in metrics]), flush=True)

        table = score_rows(metrics, rows, writer, batch_size=args.batch_size, progress=not args.quiet,
                           workers=args.workers, echo=echo)
    finally:
        if writer:
            writer.close()
    return _report(table, args.output, duplicates, skipped)


def _report(table, output, duplicates: int, skipped: int) -> int:
    """The summary on standard error; exit status 1 when some rows failed (their errors listed)."""
    failed = table[table['error'] != '']
    where = f' to {output}' if output else ''
    extra = ([f'{skipped} already in the output'] if skipped else []) + \
        ([f'{duplicates} duplicate rows of the same image and prompt scored once'] if duplicates else [])
    print(f'{len(table) - len(failed)} of {len(table)} images scored{where}'
          + (f' ({"; ".join(extra)})' if extra else ''), file=sys.stderr)
    for _, row in failed.head(10).iterrows():
        print(f'  not scored: {row["image"]}: {row["error"]}', file=sys.stderr)
    if len(failed) > 10:
        print(f'  ... and {len(failed) - 10} more (the error column of the output lists them)', file=sys.stderr)
    return 1 if len(failed) else 0
