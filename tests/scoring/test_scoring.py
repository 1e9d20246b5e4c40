"""Scoring that never loses work: broken files become rows with their error, results are on
disk as they are computed, --resume continues, EXIF orientation, several metrics on one
decode, prompts from the files, reproducible random weights, one-line CLI errors, and the
Python API's lists of images."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyiqa
import pytest
import torch
from PIL import Image, PngImagePlugin

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.cli import main
from pyiqa_agiqa.scoring.output import ResultWriter
from pyiqa_agiqa.metrics.factory import create_metrics
from pyiqa_agiqa.scoring.rows import rows_from_target
from pyiqa_agiqa.scoring.local import score_rows

from conftest import rounding

TINY = ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--set', 'stride=8',
        '--device', 'cpu', '-q']
TINY_OPTS = dict(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8)
RANGES = {'ipce': 5, 'cianet_consistency': 1 / 0.07}  # the magnitudes of the scores' rounding


def a1111(prompt):
    info = PngImagePlugin.PngInfo()
    info.add_text('parameters', f'{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Seed: 1')
    return info


@pytest.fixture
def folder(tmp_path):
    """4 generated PNGs with A1111 prompts, one PNG without, a truncated JPEG, a non-image."""
    path = tmp_path / 'gen'
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path / f'a{i}.png',
                                                                               pnginfo=a1111(f'a red circle {i}'))
    Image.fromarray((rng.random((64, 72, 3)) * 255).astype(np.uint8)).save(path / 'b_noprompt.png')
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path / 'c.jpg', quality=90)
    data = (path / 'c.jpg').read_bytes()
    (path / 'c.jpg').write_bytes(data[: len(data) * 2 // 3])  # truncated: the header is fine
    (path / 'd.png').write_bytes(b'not an image')
    return path


def read(path):
    return pd.read_csv(path, keep_default_na=False)


def test_broken_files_are_rows_with_their_error_and_the_rest_is_scored(folder, tmp_path, capsys):
    out = tmp_path / 'scores.csv'
    assert main(['score', 'ipce', '-t', str(folder), '-o', str(out)] + TINY) == 1  # some rows failed
    table = read(out).set_index('image')
    assert list(read(out).columns) == ['image', 'prompt', 'prompt_source', 'ipce', 'error']
    scored = table[table['error'] == '']
    assert sorted(os.path.basename(p) for p in scored.index) == ['a0.png', 'a1.png', 'a2.png', 'a3.png']
    assert (scored['prompt_source'] == 'png:parameters').all()
    assert scored.loc[str(folder / 'a2.png'), 'prompt'] == 'a red circle 2'
    errors = table['error'].to_dict()
    assert 'truncated' in errors[str(folder / 'c.jpg')] or 'no prompt' in errors[str(folder / 'c.jpg')]
    assert errors[str(folder / 'b_noprompt.png')].startswith('no prompt')
    assert errors[str(folder / 'd.png')]
    err = capsys.readouterr().err
    assert '4 of 7 images scored' in err and 'not scored:' in err


def test_a_truncated_image_with_a_prompt_is_named_and_does_not_stop_the_run(folder, tmp_path):
    out = tmp_path / 'scores.csv'
    assert main(['score', 'ipce', '-t', str(folder), '--prompt', 'a red circle', '-o', str(out)] + TINY) == 1
    table = read(out).set_index('image')
    assert 'truncated' in table.loc[str(folder / 'c.jpg'), 'error']
    assert (table['error'] == '').sum() == 5  # the four generated PNGs and the one without metadata


def test_exif_orientation_is_applied(tmp_path):
    rng = np.random.default_rng(3)
    upright = Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8))
    upright.save(tmp_path / 'upright.png')
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the pixels as a camera stores them, on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": viewers show it upright again
    stored.save(tmp_path / 'rotated.png', exif=exif)
    metric = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY_OPTS)
    a = metric([str(tmp_path / 'upright.png')], prompt='x')
    b = metric([str(tmp_path / 'rotated.png')], prompt='x')
    torch.testing.assert_close(a, b)
    plain = metric(torch.from_numpy(np.asarray(stored)).permute(2, 0, 1)[None].float() / 255, prompt='x')
    assert (plain - a).abs().max() > 1e-3  # scoring the stored pixels would differ


def test_several_metrics_share_one_pass_and_match_single_runs(folder, tmp_path):
    both = tmp_path / 'both.jsonl'
    main(['score', 'ipce', 'cianet_consistency', '-t', str(folder), '--prompt', 'x', '-o', str(both)] + TINY)
    records = [json.loads(line) for line in both.read_text().splitlines()]
    assert set(records[0]) == {'image', 'prompt', 'prompt_source', 'ipce', 'cianet_consistency', 'error'}
    for name in ('ipce', 'cianet_consistency'):
        single = tmp_path / f'{name}.csv'
        options = TINY if name == 'ipce' else ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '-q']
        main(['score', name, '-t', str(folder), '--prompt', 'x', '-o', str(single), '--device', 'cpu'] + options)
        expected = read(single).set_index('image')[name]
        for record in records:
            if not record['error']:
                # two float32 runs, each within rounding() of the exact score on its range (ipce 0-5,
                # consistency: the random weights' logit scale 1 / 0.07)
                assert abs(record[name] - float(expected[record['image']])) <= 2 * rounding(torch.float32, RANGES[name])


def test_random_weights_are_reproducible_with_the_seed(folder, tmp_path):
    runs = []
    for seed in (0, 0, 1):
        out = tmp_path / f'seed{len(runs)}.csv'
        main(['score', 'ipce', '-t', str(folder / 'a0.png'), '--prompt', 'x', '-o', str(out), '--seed', str(seed)]
             + TINY)
        runs.append(float(read(out)['ipce'][0]))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_results_are_on_disk_as_computed_and_resume_finishes_the_rest(folder, tmp_path):
    metrics = create_metrics(['ipce'], 'cpu', dict(TINY_OPTS, pretrained=False))
    rows = rows_from_target(str(folder), 'x')
    columns = ['image', 'prompt', 'prompt_source', 'ipce', 'error']
    full = score_rows(metrics, rows_from_target(str(folder), 'x'), batch_size=1, progress=False)

    class Crash(RuntimeError):
        pass
    calls = {'n': 0}
    original = metrics['ipce'].forward

    def crashing(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 3:
            raise Crash('the machine went away')
        return original(*args, **kwargs)
    metrics['ipce'].forward = crashing
    out = str(tmp_path / 'partial.csv')
    writer = ResultWriter(out, columns)
    with pytest.raises(Crash):
        score_rows(metrics, rows, writer, batch_size=1, progress=False)
    writer.close()
    assert len(read(out)) == 2  # the two batches before the crash are on disk
    metrics['ipce'].forward = original
    writer = ResultWriter(out, columns, resume=True)
    assert len(writer.done) == 2
    rest = score_rows(metrics, rows_from_target(str(folder), 'x'), writer, batch_size=1, progress=False)
    writer.close()
    assert len(rest) == len(full) - 2
    merged = read(out).set_index('image')['ipce'].replace('', np.nan).astype(float)
    expected = full.set_index('image')['ipce'].replace('', np.nan).astype(float)
    pd.testing.assert_series_equal(merged.sort_index(), expected.sort_index(), check_names=False)


def test_sigkill_then_resume_scores_each_image_once(tmp_path):
    images = tmp_path / 'many'
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(120):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(images / f'{i:03d}.png')
    out = tmp_path / 'many.csv'
    cmd = [sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '-t', str(images), '--prompt', 'x', '-o',
           str(out), '--batch-size', '1'] + TINY
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count('\n') < 6):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(60) == -signal.SIGKILL
    done_before = out.read_text().count('\n') - 1
    assert 5 <= done_before < 120
    resumed = subprocess.run(cmd + ['--resume'], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f'({done_before} already in the output)' in resumed.stderr
    table = read(out)
    assert len(table) == 120 and table['image'].is_unique and (table['error'] == '').all()


def test_cli_mistakes_are_one_line_errors(folder, tmp_path, capsys):
    cases = [
        (['score', 'ipcee', '-t', str(folder), '--prompt', 'x'], "unknown metric 'ipcee' (did you mean 'ipce'?)"),
        (['score', 'ipce', '-t', str(folder), '--prompt', 'x', '--set', 'min_sid=3'],
         "unknown option(s) ['min_sid']"),
        (['score', 'ipce', '-t', str(tmp_path / 'does_not_exist'), '--prompt', 'x'], 'no such file or folder'),
        (['score', 'ipce', '-t', str(folder), '--batch-size', '0'], 'must be >= 1, got 0'),
        (['score', 'musiq', '-t', str(folder)], "one of pyiqa's own metrics"),
        (['score', 'ipce', '-t', str(folder), '--prompt', 'x', '--weights', str(tmp_path / 'none.pth')],
         'not a file, an exported folder'),
    ]
    for argv, message in cases[1:]:  # in this process: main() returns the exit code, stderr is captured
        capsys.readouterr()
        try:
            code = main(argv + ['-q'])
        except SystemExit as stop:  # argparse's own errors
            code = stop.code
        lines = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], (argv, lines)
    argv, message = cases[0]  # and once as a real process: no traceback anywhere
    result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli'] + argv + ['-q'], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE='1'))
    assert result.returncode == 2 and result.stderr.startswith('error: ') and message in result.stderr
    assert result.stderr.count('\n') == 1 and result.stdout == ''
    out = tmp_path / 'meta.csv'
    out.write_text('mine')
    capsys.readouterr()
    assert main(['prepare', 'agiqa3k', '--data', 'x.csv', '-o', str(out)]) == 2
    assert capsys.readouterr().err.strip() == f'error: {out} exists; pass --overwrite to replace it'
    assert out.read_text() == 'mine'


def test_metric_takes_lists_of_paths_and_pil_images(folder):
    metric = pyiqa.create_metric('ipce', device='cpu', pretrained=False, **TINY_OPTS)
    paths = [str(folder / 'a0.png'), str(folder / 'b_noprompt.png'), str(folder / 'a1.png')]  # 64x64, 64x72, 64x64
    from_paths = metric(paths, prompt=['a', 'b', 'c'])
    pil = [Image.open(p) for p in paths]
    assert from_paths.shape == (3, 1)
    torch.testing.assert_close(metric(pil, prompt=['a', 'b', 'c']), from_paths)
    one = metric(torch.stack([torch.from_numpy(np.asarray(pil[0])).permute(2, 0, 1).float() / 255]), prompt='a')
    # batches of 1 and 3: two float32 runs
    torch.testing.assert_close(one, from_paths[:1], atol=2 * rounding(torch.float32, RANGES['ipce']), rtol=0)
    with pytest.raises(ValueError, match='got 2 prompts for 3 images'):
        metric(paths, prompt=['a', 'b'])


def test_random_weights_and_a_weights_file_together_are_an_error(tmp_path):
    from pyiqa_agiqa.errors import OptionError
    with pytest.raises(OptionError, match='pretrained=False builds random weights, but weights'):
        pyiqa.create_metric('ipce', device='cpu', pretrained=False, pretrained_model_path=str(tmp_path / 'w.pth'),
                            **TINY_OPTS)


def test_scorer_gives_the_metrics_own_score_of_each_file(folder):
    """The scorer moves 8-bit images and makes them float on the device: the values of the
    metric on the file itself (one image a batch: the same computation, bit for bit)."""
    torch.manual_seed(0)
    metrics = create_metrics(['ipce'], 'cpu', dict(pretrained=False, **TINY_OPTS))
    table = score_rows(metrics, rows_from_target(str(folder), 'a red fox'), batch_size=1, progress=False, workers=0)
    scored = table[table['error'] == '']
    assert len(scored) == 5
    for _, row in scored.iterrows():
        assert row['ipce'] == metrics['ipce'](row['image'], prompt='a red fox').item()
