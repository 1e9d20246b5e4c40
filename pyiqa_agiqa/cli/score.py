"""``pyiqa-agiqa score``: the local engine, or the Ray engine with ``--engine ray``."""

from __future__ import annotations

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
                             max_pixels=args.max_pixels)
    print(f'{summary.read} rows read, {summary.skipped} already in {args.output}, {summary.scored} scored, '
          f'{summary.failed} failed; {summary.images_per_s:.2f} images/s over {summary.seconds:.1f} s', file=sys.stderr)
    for image, error in summary.failures:
        print(f'  not scored: {image}: {error}', file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_score(args) -> int:
    from pyiqa_agiqa.data.image_io import set_max_pixels
    from pyiqa_agiqa.scoring.output import ResultWriter
    from pyiqa_agiqa.metrics.factory import create_metrics
    from pyiqa_agiqa.scoring.rows import rows_from_csv, rows_from_target
    from pyiqa_agiqa.scoring.local import score_rows

    if args.precision:
        args.set = list(args.set or []) + [f'precision={args.precision}']
    options = parse_set(args.set)
    if args.random_weights:
        options['pretrained'] = False
    if args.max_pixels is not None:
        set_max_pixels(args.max_pixels)
    if args.engine == 'ray':
        return cmd_score_ray(args, options)
    if args.input:
        raise OptionError('--input is the source of --engine ray; use -t (image or folder) or --csv here')
    if (args.target is None) == (args.csv is None):
        raise OptionError('give exactly one of -t/--target (an image or a folder) or --csv (image,prompt)')
    if args.overwrite and args.resume:
        raise OptionError('--overwrite replaces the output, --resume continues it: give one')
    rows = rows_from_csv(args.csv) if args.csv else rows_from_target(args.target, args.prompt)
    metrics = create_metrics(args.metric, args.device, options, _parse_weights(args.weights, args.metric), args.seed,
                             args.compile, args.allow_untrained)
    writer = None
    if args.output:
        columns = ['image', 'prompt', 'prompt_source'] + list(metrics) + ['error']
        writer = ResultWriter(args.output, columns, overwrite=args.overwrite, resume=args.resume)

    def echo(record):
        if writer is None and not record['error']:
            print('\t'.join([record['image']] + [f'{record[m]:.4f}' for m in metrics]), flush=True)

    try:
        table = score_rows(metrics, rows, writer, batch_size=args.batch_size, progress=not args.quiet,
                           workers=args.workers, echo=echo)
    finally:
        if writer:
            writer.close()
    failed = table[table['error'] != '']
    skipped = len(rows) - len(table)
    where = f' to {args.output}' if args.output else ''
    print(f'{len(table) - len(failed)} of {len(table)} images scored{where}'
          + (f' ({skipped} already in the output)' if skipped else ''), file=sys.stderr)
    for _, row in failed.head(10).iterrows():
        print(f'  not scored: {row["image"]}: {row["error"]}', file=sys.stderr)
    if len(failed) > 10:
        print(f'  ... and {len(failed) - 10} more (the error column of the output lists them)', file=sys.stderr)
    return 1 if len(failed) else 0
