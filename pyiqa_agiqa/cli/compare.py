"""``pyiqa-agiqa compare`` and ``pyiqa-agiqa prompts``."""

from __future__ import annotations

import logging
import os
import sys

from pyiqa_agiqa.errors import OptionError

from .score import _parse_weights, network_options


def _generations(args):
    from pyiqa_agiqa.compare.inputs import from_folders, from_table

    if bool(args.models) == bool(args.table):
        raise OptionError('give exactly one of --models NAME=FOLDER ... or --table generations.csv')
    return from_folders(args.models) if args.models else from_table(args.table)


def _print_result(result, out: str) -> None:
    from pyiqa_agiqa.compare.report import fmt, p_text

    for r in result.summary.itertuples():
        print(f'{r.metric}\t{r.model}\t{fmt(r.mean)}\t[{fmt(r.ci_low)}, {fmt(r.ci_high)}]\t{r.n_prompts} prompts')
    for r in result.pairwise.itertuples():
        better = {'a': r.model_a, 'b': r.model_b}.get(r.verdict, 'tie')
        print(f'{r.metric}\t{r.model_a} - {r.model_b}\t{fmt(r.mean_diff)}\t[{fmt(r.ci_low)}, {fmt(r.ci_high)}]\t'
              f'win {r.win_rate:.3f}\tp_holm {p_text(r.p_holm)}\t{better}')
    for metric, part in result.ranking.groupby('metric', sort=False):
        print(f'{metric}\tranking\t' + ', '.join(f'{r.model} ({r.letters})' for r in part.itertuples()))
    notes = [f'{len(result.left_out)} prompts lack some model (left_out.csv)'] if len(result.left_out) else []
    notes += [f'{len(result.failed)} images not scored (failed.csv)'] if len(result.failed) else []
    print(f'{len(result.models)} models compared on {result.n_common} common prompts; report: '
          f'{os.path.join(out, "report.html")}' + (f' ({"; ".join(notes)})' if notes else ''), file=sys.stderr)


def cmd_compare(args) -> int:
    from pyiqa_agiqa.compare.run import build_metrics, lower_better_of, run_compare

    options = network_options(args)
    generations = _generations(args)
    names = list(dict.fromkeys(args.metric))
    weights = _parse_weights(args.weights, names)

    def make_metrics():
        return build_metrics(names, args.device, options, weights, args.seed, args.compile, args.allow_untrained)

    from pyiqa_agiqa.compare.run import check_metrics

    check_metrics(names, options, weights, args.allow_untrained)  # before anything is written
    if args.engine == 'ray':
        from pyiqa_agiqa.metrics.factory import plugin_metric_names

        theirs = [n for n in names if n not in plugin_metric_names()]
        if theirs:
            raise OptionError(f'--engine ray scores the plugin\'s metrics only; {theirs} are pyiqa\'s own: compare '
                              'them with the local engine (leave out --engine ray)')
    ray_options = dict(options=options, weights=weights, seed=args.seed, batch_size=args.batch_size,
                       actors=args.actors, gpus_per_actor=args.gpus_per_actor, threads_per_actor=args.threads_per_actor,
                       compile_mode=args.compile, allow_untrained=args.allow_untrained, max_pixels=args.max_pixels,
                       console_level=logging.WARNING if args.quiet else logging.INFO)
    result = run_compare(names, generations, args.out, make_metrics, lower_better=lower_better_of(names),
                         resamples=args.bootstrap, seed=args.seed, overwrite=args.overwrite,
                         batch_size=args.batch_size, workers=args.workers, progress=not args.quiet,
                         engine=args.engine, ray_options=ray_options)
    _print_result(result, args.out)
    return 1 if len(result.failed) else 0


def cmd_prompts(args) -> int:
    from pyiqa_agiqa.compare.prompt_sets import prompt_set
    from pyiqa_agiqa.compare.run import write_csv

    table = prompt_set(args.name, args.source)
    if os.path.exists(args.output) and not args.overwrite:
        raise OptionError(f'{args.output} exists; pass --overwrite to replace it')
    write_csv(table, args.output)
    print(f'{len(table)} prompts ({table["category"].nunique()} categories) written to {args.output}',
          file=sys.stderr)
    return 0
