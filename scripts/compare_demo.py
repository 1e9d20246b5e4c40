"""The comparison shown in docs/compare.md: four "models" drawn by the demo's generator with a known
truth (the same scenes; ``clean`` and ``clean-copy`` identical, ``mild`` blurred at level 1,
``strong`` at level 3), 40 prompts x 2 seeds, scored through the compare pipeline by a focus
measure (the variance of the Laplacian: higher is sharper), then the report's screenshot.

    python scripts/compare_demo.py --workdir /tmp/compare-demo [--screenshot docs/images/compare-report.png]
"""

import argparse
import os
import shutil
import subprocess
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyiqa_agiqa.compare.inputs import from_table  # noqa: E402
from pyiqa_agiqa.compare.report import fmt, p_text  # noqa: E402
from pyiqa_agiqa.compare.run import run_compare  # noqa: E402
from pyiqa_agiqa.demo.synthetic import make_comparison_set  # noqa: E402

LAPLACIAN = torch.tensor([[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]]).view(1, 1, 3, 3)


class Sharpness:
    """Variance of the Laplacian of the grey image, x100: (B, 3, H, W) in [0, 1] -> (B,)."""
    device = torch.device('cpu')

    def __call__(self, images, prompt=None):
        return F.conv2d(images.mean(dim=1, keepdim=True), LAPLACIAN).flatten(1).var(dim=1) * 100


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', default='/tmp/compare-demo')
    parser.add_argument('--screenshot', help='where to write a screenshot of the report (needs chromium)')
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    table = make_comparison_set(os.path.join(args.workdir, 'gen'), levels={'clean': 0, 'clean-copy': 0, 'mild': 1,
                                                                           'strong': 3},
                                n_prompts=40, seeds=2, image_size=96)
    out = os.path.join(args.workdir, 'cmp')
    result = run_compare(['sharpness'], from_table(str(table)), out, lambda: {'sharpness': Sharpness()},
                         workers=0, progress=False)
    for r in result.summary.itertuples():
        print(f'{r.model:<11} mean {fmt(r.mean)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]  {r.n_prompts} prompts, '
              f'{r.n_images} images')
    for r in result.pairwise.itertuples():
        print(f'{r.model_a:>10} - {r.model_b:<10} {fmt(r.mean_diff):>8} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]  '
              f'win {r.win_rate:.3f}  p_holm {p_text(r.p_holm)}  -> {r.verdict}')
    print('ranking:', ', '.join(f'{r.model} (group {r.group})' for r in result.ranking.itertuples()))
    print(f'seconds: scoring {result.seconds["scoring"]:.2f}, everything else {result.seconds["rest"]:.2f}')
    if args.screenshot:
        subprocess.run(['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                        f'--screenshot={os.path.abspath(args.screenshot)}', '--window-size=1100,1000',
                        'file://' + os.path.abspath(os.path.join(out, 'report.html'))], check=True,
                       capture_output=True)
        print('screenshot:', args.screenshot)


if __name__ == '__main__':
    main()
