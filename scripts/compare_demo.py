"""The comparison shown in docs/compare.md: four "models" drawn by the demo's generator with a known
truth (the same scenes, shapes on a smooth texture; ``clean`` and ``clean-copy`` identical,
``mild`` and ``strong`` with additive Gaussian noise of standard deviation 0.083 and 0.25),
40 prompts x 2 seeds, compared by ``pyiqa-agiqa compare`` with pyiqa's ``piqe`` (no weights; lower
is better), then a screenshot of the report in headless Chromium.

    python scripts/compare_demo.py --workdir /tmp/compare-demo [--screenshot docs/images/compare-report.png]
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyiqa_agiqa.cli import main as cli  # noqa: E402
from pyiqa_agiqa.demo.synthetic import make_comparison_set  # noqa: E402

LEVELS = {'clean': 0, 'clean-copy': 0, 'mild': 1, 'strong': 3}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workdir', default='/tmp/compare-demo')
    parser.add_argument('--screenshot', help='where to write a screenshot of the report (needs chromium)')
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    table = make_comparison_set(os.path.join(args.workdir, 'gen'), levels=LEVELS, family='noise', texture=0.05,
                                n_prompts=40, seeds=2, image_size=96)
    out = os.path.join(args.workdir, 'cmp')
    command = ['compare', 'piqe', '--table', str(table), '--out', out, '-q']
    print('$ pyiqa-agiqa ' + ' '.join(command), flush=True)
    start = time.perf_counter()
    code = cli(command)
    print(f'(exit {code}, {time.perf_counter() - start:.1f} s)')
    if args.screenshot:
        subprocess.run(['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                        f'--screenshot={os.path.abspath(args.screenshot)}', '--window-size=1100,1000',
                        'file://' + os.path.abspath(os.path.join(out, 'report.html'))], check=True,
                       capture_output=True)
        print('screenshot:', args.screenshot)
    return code


if __name__ == '__main__':
    sys.exit(main())
