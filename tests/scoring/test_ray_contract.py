"""The row contract (pyiqa_agiqa/scoring/contract.py) in the Ray engine, as in the local one:
rows keyed by (image, prompt), duplicates scored once, resumes that hold every metric,
non-finite scores as errors, byte-exact prompts equal to the local engine's scores, one job per
DST, and workers' errors as the plugin's one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

ray = pytest.importorskip('ray', reason="Ray is an optional extra: pip install 'pyiqa-agiqa[ray]'")

from pyiqa_agiqa.cli import main  # noqa: E402
from pyiqa_agiqa.metrics.factory import create_metrics  # noqa: E402
from pyiqa_agiqa.scoring.contract import ScoringInputError  # noqa: E402
from pyiqa_agiqa.scoring.local import score_rows  # noqa: E402
from pyiqa_agiqa.scoring.lock import hold_output  # noqa: E402
from pyiqa_agiqa.scoring.ray_engine import MetricActor, read_results, read_source, score_with_ray  # noqa: E402
from pyiqa_agiqa.scoring.rows import rows_from_csv  # noqa: E402

from conftest import rounding  # noqa: E402

pytestmark = pytest.mark.ray
TINY = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, large_side=100000)
CIANET = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT')
WHITESPACE_PROMPTS = [' a red fox', 'a red fox ', '\ta red fox', 'a red fox\r\n', '\na red fox\n', 'a  red fox',
                      'a red fox']


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('img')
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(root / f'a{i}.png')
    return root


def _listing(path, rows):
    pd.DataFrame(rows, columns=['image', 'prompt']).to_csv(path, index=False)
    return str(path)


def test_pairs_not_images_identify_rows_and_duplicates_are_scored_once(local_ray, images, tmp_path):
    a0, a1 = str(images / 'a0.png'), str(images / 'a1.png')
    first = _listing(tmp_path / 'first.csv', [[a0, 'a red fox']])
    both = _listing(tmp_path / 'both.csv', [[a0, 'a red fox'], [a0, 'a blue whale'], [a1, 'a red fox'],
                                            [a0, 'a blue whale'], [a1, 'a red fox']])
    dst = str(tmp_path / 'dst')
    assert score_with_ray(['ipce'], first, dst, options=TINY, batch_size=4).scored == 1
    again = score_with_ray(['ipce'], both, dst, options=TINY, batch_size=4)
    assert (again.read, again.duplicates, again.skipped, again.scored, again.failed) == (5, 2, 1, 2, 0)
    results = read_results(dst)
    assert sorted(zip(results['image'], results['prompt'])) == sorted([(a0, 'a blue whale'), (a0, 'a red fox'),
                                                                      (a1, 'a red fox')])
    third = score_with_ray(['ipce'], both, dst, options=TINY, batch_size=4)
    assert (third.skipped, third.scored) == (3, 0)


def test_a_resume_with_other_metrics_is_refused_and_changes_nothing(local_ray, images, tmp_path, capsys):
    listing = _listing(tmp_path / 'list.csv', [[str(images / 'a0.png'), 'x'], [str(images / 'a1.png'), 'x']])
    dst = tmp_path / 'dst'
    assert score_with_ray(['ipce'], listing, str(dst), options=TINY, batch_size=4).scored == 2
    parts = sorted(os.listdir(dst))
    with pytest.raises(ScoringInputError, match=r"holds the metrics \['ipce'\], this run asks for "
                                                r"\['cianet_consistency'\].*--overwrite"):
        score_with_ray(['cianet_consistency'], listing, str(dst), options=CIANET, batch_size=4)
    assert sorted(os.listdir(dst)) == parts
    args = ['score', 'cianet_consistency', '--engine', 'ray', '--input', listing, '--output', str(dst),
            '--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '-q']
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(err) == 1 and '--overwrite' in err[0]
    overwritten = score_with_ray(['cianet_consistency'], listing, str(dst), options=CIANET, batch_size=4,
                                 overwrite=True)
    assert overwritten.scored == 2 and 'cianet_consistency' in read_results(str(dst))


def test_prompts_travel_byte_exact_and_scores_equal_the_local_engine(local_ray, images, tmp_path):
    listing = _listing(tmp_path / 'list.csv', [[str(images / 'a0.png'), p] for p in WHITESPACE_PROMPTS])
    local = score_rows(create_metrics(['ipce'], 'cpu', TINY), rows_from_csv(listing), batch_size=4, progress=False,
                       workers=0)
    assert local['prompt'].tolist() == WHITESPACE_PROMPTS
    for fmt in ('parquet', 'csv'):
        dst = str(tmp_path / fmt)
        summary = score_with_ray(['ipce'], listing, dst, options=TINY, batch_size=4, fmt=fmt)
        assert (summary.read, summary.duplicates, summary.scored) == (7, 0, 7)
        results = read_results(dst).set_index('prompt')
        assert sorted(results.index) == sorted(WHITESPACE_PROMPTS)
        diff = (results.loc[WHITESPACE_PROMPTS, 'ipce'].astype(float).to_numpy()
                - local['ipce'].astype(float).to_numpy())
        assert np.abs(diff).max() <= 2 * rounding(torch.float32, 5), diff  # two float32 runs, scores in [0, 5]


def test_an_actor_makes_non_finite_scores_their_rows_errors(images):
    actor = MetricActor(['ipce'], TINY, {}, seed=0, device='cpu', threads=1)
    with torch.no_grad():
        next(p for p in actor.metrics['ipce'].net.parameters() if p.is_floating_point()).fill_(float('nan'))
    pixels = [np.asarray(Image.open(images / f'a{i}.png').convert('RGB')) for i in range(2)]
    batch = pd.DataFrame(dict(image=['a0', 'a1'], prompt=['x', 'y'], prompt_source=['csv', 'csv'], pixels=pixels,
                              error=['', '']))
    out = actor(batch)
    assert out['ipce'].isna().all() and out['error'].str.startswith('ipce gave a non-finite score (nan)').all()


def test_a_second_job_on_a_dst_being_written_is_refused(local_ray, images, tmp_path):
    dst = tmp_path / 'dst'
    lock = hold_output(str(dst), folder=True)
    try:
        with pytest.raises(ScoringInputError, match=f'another scoring run \\(process {os.getpid()}\\) is writing'):
            score_with_ray(['ipce'], str(images), str(dst), prompt='x', options=TINY, overwrite=True)
    finally:
        lock.release()
    assert os.listdir(dst) == []


def test_a_workers_refusal_of_a_weights_file_is_one_line(local_ray, images, tmp_path, capsys):
    marker = tmp_path / 'code_ran'

    class Payload:
        def __reduce__(self):
            return open, (str(marker), 'w')
    evil = tmp_path / 'evil.pth'
    torch.save({'params': {'backbone.model.logit_scale': Payload()}}, evil)
    args = ['score', 'ipce', '--engine', 'ray', '--input', str(images), '--prompt', 'x', '--output',
            str(tmp_path / 'dst'), '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--set',
            'clip_pretrained=none', '--weights', str(evil), '-q']
    result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli'] + args, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if 'Error' in line or 'error' in line]
    assert len(errors) == 1 and errors[0].startswith('error: ') and 'pickled objects other than tensors' in errors[0], \
        result.stderr[-3000:]
    assert 'Traceback' not in result.stderr and not marker.exists()


def test_a_folder_source_follows_the_scan_rules(local_ray, images, tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    (root / 'a.png').write_bytes((images / 'a0.png').read_bytes())
    os.symlink('.', root / 'loop')
    os.symlink(images / 'a1.png', root / 'outside.png')
    with pytest.warns(UserWarning, match='1 symbolic link'):
        rows = read_source(str(root), prompt='x').take_all()
    assert [r['image'] for r in rows] == [str(root / 'a.png')]


def test_a_damaged_part_file_is_named(local_ray, images, tmp_path):
    dst = tmp_path / 'dst'
    score_with_ray(['ipce'], str(images), str(dst), prompt='x', options=TINY)
    part = next(dst / p for p in os.listdir(dst))
    part.write_bytes(part.read_bytes()[:50])
    with pytest.raises(ScoringInputError, match=f'{part} is not a readable part file'):
        score_with_ray(['ipce'], str(images), str(dst), prompt='x', options=TINY)
