"""The report of a compare opened in a real browser (headless Chromium, Debian's ``chromium``):
it loads with no console message, fetches nothing from the network, its thumbnails are files
under OUT, and the screenshot shows the summary table at the top.

Skipped only where Chromium is missing and the variable CI is unset; in CI (.ci/run installs it)
a missing browser fails."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.demo.synthetic import make_comparison_set


def chromium() -> str:
    found = shutil.which('chromium') or shutil.which('chromium-browser')
    if found:
        return found
    if os.environ.get('CI'):
        pytest.fail('chromium is missing in CI: .ci/run installs it (apt-get install -y chromium)')
    pytest.skip('chromium is not installed (apt-get install chromium); CI runs this test')


def browse(browser: str, page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [browser, '--headless', '--no-sandbox', '--disable-gpu', '--enable-logging=stderr', '--v=0',
               f'--user-data-dir={tmp / "profile"}', '--hide-scrollbars', *flags, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare-report')
    table = make_comparison_set(root / 'gen', family='noise', texture=0.05, n_prompts=10, seeds=2, image_size=64)
    assert main(['compare', 'piqe', '--table', str(table), '--out', str(root / 'cmp'), '--bootstrap', '500',
                 '--workers', '0', '-q']) == 0
    return root / 'cmp'


def test_the_report_loads_with_no_console_message_and_fetches_nothing(report, tmp_path):
    browser = chromium()
    result = browse(browser, report / 'report.html', tmp_path, '--dump-dom')
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ':CONSOLE' in line]
    assert not console, console
    dom = result.stdout
    assert '<h2 id="summary">Summary</h2>' in dom and dom.count('<svg') >= 3
    for section in ('pairwise', 'ranking', 'categories', 'distribution', 'seeds', 'gallery'):
        assert f'<h2 id="{section}">' in dom, section
    assert 'the summary uses the 10 prompts every model has' in dom and 'Seeds are not resampled' in dom
    assert 'Where the models disagree most' in dom and 'best and worst image' in dom
    assert not re.search(r'(src|href)="(https?:|//)', dom), 'the page fetches from the network'
    sources = re.findall(r'<img src="([^"]+)"', dom)
    assert sources and all((report / s).is_file() and not s.startswith('/') for s in sources)
    assert all((report / s).resolve().is_relative_to(report.resolve()) for s in sources)


def test_the_screenshot_shows_the_summary_table(report, tmp_path):
    browser = chromium()
    shot = tmp_path / 'report.png'
    result = browse(browser, report / 'report.html', tmp_path, f'--screenshot={shot}', '--window-size=1200,900')
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    keep = os.environ.get('PYIQA_AGIQA_SCREENSHOT')  # where to keep a copy to look at (docs/compare.md's image)
    if keep:
        shutil.copy(shot, keep)
    pixels = np.asarray(Image.open(shot).convert('L'), dtype=float)
    assert pixels.shape == (900, 1200)
    # the summary table: rows of dark text between grey rules in the top part of the page
    top = pixels[200:420, 20:600]
    assert (top < 100).mean() > 0.01, 'no text where the summary table should be'
    assert (np.abs(top - 0xcc) < 8).any(axis=1).sum() >= 4, 'no table rules where the summary table should be'
