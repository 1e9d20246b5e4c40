"""What a compare costs beyond scoring its images: the same images scored once by the scoring engine
alone (as ``pyiqa-agiqa score --csv``) and once by ``compare`` (scoring, pairing, bootstrap, tests,
report), each from a cold start (metrics built in both).

    python scripts/speed_compare.py                      # 3 models x 30 prompts x 2 seeds (CPU, a minute)
    python scripts/speed_compare.py --full --device cuda # 3 x 300 x 2 = 1,800 images

The metric is IPCE with random weights (no download; the cost of a forward pass does not depend on
the weights) unless --metric / --set say otherwise; --tiny uses the test suite's tiny CLIP.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyiqa_agiqa.compare.inputs import from_table  # noqa: E402
from pyiqa_agiqa.compare.run import build_metrics, run_compare  # noqa: E402
from pyiqa_agiqa.demo.synthetic import make_comparison_set  # noqa: E402
from pyiqa_agiqa.scoring.contract import output_columns  # noqa: E402
from pyiqa_agiqa.scoring.local import score_rows  # noqa: E402
from pyiqa_agiqa.scoring.output import ResultWriter  # noqa: E402
from pyiqa_agiqa.scoring.rows import Row  # noqa: E402


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--full', action='store_true', help='3 models x 300 prompts x 2 seeds')
    parser.add_argument('--prompts', type=int, default=30)
    parser.add_argument('--seeds', type=int, default=2)
    parser.add_argument('--size', type=int, default=256, help='generated image side (px)')
    parser.add_argument('--metric', default='ipce')
    parser.add_argument('--tiny', action='store_true', help="the tests' tiny random CLIP (fast, not realistic)")
    parser.add_argument('--device', default=None)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--bootstrap', type=int, default=10000)
    parser.add_argument('--workdir', default=None, help='where the images and outputs go (default: a temp folder)')
    parser.add_argument('--compare-first', action='store_true',
                        help='run compare before the scoring alone (to see the order\'s effect on a loaded machine)')
    return parser.parse_args()


def main():
    args = parse()
    prompts = 300 if args.full else args.prompts
    work = args.workdir or tempfile.mkdtemp(prefix='compare-speed-')
    shutil.rmtree(os.path.join(work, 'out'), ignore_errors=True)
    table = make_comparison_set(os.path.join(work, 'gen'), n_prompts=prompts, seeds=args.seeds,
                                image_size=args.size, family='noise', sidecars=False)
    generations = from_table(str(table))
    options = dict(pretrained=False)
    if args.tiny:
        options.update(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8)

    def make_metrics():
        return build_metrics([args.metric], args.device, options, seed=0, allow_untrained=True)

    def alone_run():  # the scoring engine alone, as `score --csv list.csv -o scores.csv`
        start = time.perf_counter()
        metrics = make_metrics()
        writer = ResultWriter(os.path.join(work, 'out', 'alone.csv'), output_columns([args.metric]))
        rows = [Row(i, p, 'csv') for i, p in zip(generations['image'], generations['prompt'])]
        score_rows(metrics, rows, writer, batch_size=args.batch_size, workers=args.workers, progress=False)
        writer.close()
        return time.perf_counter() - start

    def compare_run():
        start = time.perf_counter()
        result = run_compare([args.metric], generations, os.path.join(work, 'out', 'cmp'), make_metrics,
                             resamples=args.bootstrap, batch_size=args.batch_size, workers=args.workers,
                             progress=False)
        return time.perf_counter() - start, result

    os.makedirs(os.path.join(work, 'out'))
    if args.compare_first:
        total, result = compare_run()
        alone = alone_run()
    else:
        alone = alone_run()
        total, result = compare_run()
    figures = dict(images=len(generations), models=3, prompts=prompts, seeds=args.seeds, size=args.size,
                   metric=args.metric, tiny=args.tiny, compare_first=args.compare_first,
                   device=str(args.device or 'default'), bootstrap=args.bootstrap,
                   scoring_alone_s=round(alone, 2), compare_s=round(total, 2),
                   compare_scoring_s=round(result.seconds['scoring'], 2),
                   compare_rest_s=round(result.seconds['rest'], 2),
                   overhead_vs_alone_pct=round(100 * (total - alone) / alone, 2),
                   rest_vs_scoring_pct=round(100 * result.seconds['rest'] / result.seconds['scoring'], 2))
    print(json.dumps(figures, indent=1))


if __name__ == '__main__':
    main()
