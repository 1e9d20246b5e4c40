"""The row contract of scoring outputs (pyiqa_agiqa/scoring/contract.py) in the local engine:
rows keyed by (image, prompt), duplicates scored once, resumes that hold every metric, torn last
lines, non-finite scores, byte-exact prompts, symbolic links in folders, one writer per output,
write failures and the order of the checks. The Ray engine's side is in test_ray_contract.py."""

import csv
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pyiqa
import pytest
import torch
from PIL import Image

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.cli import main
from pyiqa_agiqa.errors import NonFiniteScoreError
from pyiqa_agiqa.metrics.factory import create_metrics
from pyiqa_agiqa.scoring.contract import (ScoringInputError, is_done, prompt_from_caption_file, prompt_from_cell,
                                          row_key, scored_values)
from pyiqa_agiqa.scoring.local import score_rows
from pyiqa_agiqa.scoring.lock import hold_output
from pyiqa_agiqa.scoring.output import ResultWriter, read_output, read_scores
from pyiqa_agiqa.scoring.rows import LinkOutsideWarning, rows_from_csv, rows_from_target, scan_images

from conftest import rounding

TINY = ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--set', 'stride=8',
        '--device', 'cpu', '-q', '--workers', '0']
TINY_OPTS = dict(clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, pretrained=False)
IPCE_TOL = 2 * rounding(torch.float32, 5)  # two float32 runs of a score in [0, 5]
WHITESPACE_PROMPTS = [' a red fox', 'a red fox ', '\ta red fox', 'a red fox\r\n', '\na red fox\n', 'a  red fox']


def _images(folder, n, size=64, seed=0):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(folder / f'a{i}.png')
    return folder


def _csv(path, rows):
    pd.DataFrame(rows, columns=['image', 'prompt']).to_csv(path, index=False)
    return path


def _score(args, capsys):
    code = main(['score'] + args + TINY)
    return code, capsys.readouterr().err


# ----- identity: (image, prompt) -----
def test_one_image_against_two_prompts_resumes_by_the_pair(tmp_path, capsys):
    _images(tmp_path / 'img', 1)
    listing = _csv(tmp_path / 'list.csv', [['img/a0.png', 'a red fox'], ['img/a0.png', 'a blue whale']])
    out = tmp_path / 'out.csv'
    assert _score(['ipce', '--csv', str(listing), '-o', str(out)], capsys)[0] == 0
    full = read_scores(str(out))
    lines = out.read_bytes().split(b'\r\n')
    out.write_bytes(b'\r\n'.join(lines[:2]) + b'\r\n')  # cut after the first row, as a kill would
    code, err = _score(['ipce', '--csv', str(listing), '-o', str(out), '--resume'], capsys)
    assert code == 0 and '1 of 1 images scored' in err and '(1 already in the output)' in err, err
    table = read_scores(str(out))
    assert sorted(table['prompt']) == ['a blue whale', 'a red fox'] and (table['error'] == '').all()
    merged = table.set_index('prompt')['ipce'].astype(float).sort_index()
    assert (merged - full.set_index('prompt')['ipce'].astype(float).sort_index()).abs().max() <= IPCE_TOL


def test_duplicate_pairs_are_scored_once_and_said_so(tmp_path, capsys):
    _images(tmp_path / 'img', 2)
    listing = _csv(tmp_path / 'list.csv', [['img/a0.png', 'fox'], ['img/a1.png', 'fox'], ['img/a0.png', 'fox'],
                                           ['img/a0.png', 'whale']])
    out = tmp_path / 'out.csv'
    code, err = _score(['ipce', '--csv', str(listing), '-o', str(out)], capsys)
    assert code == 0 and '3 of 3 images scored' in err and '1 duplicate rows of the same image and prompt' in err
    table = read_scores(str(out))
    assert len(table) == 3 and not table.duplicated(['image', 'prompt']).any()


def test_an_embedded_prompt_row_and_a_given_prompt_row_of_one_image_are_two_rows():
    assert row_key('a.png', 'from the file', 'png:parameters') == ('a.png', '')
    assert row_key('a.png', 'fox', 'csv') == row_key('a.png', 'fox', 'argument') == ('a.png', 'fox')
    assert row_key('a.png', '', '') != row_key('a.png', 'fox', 'csv')


# ----- done means every metric, finite -----
def test_a_resume_asking_for_other_metrics_is_refused_naming_overwrite(tmp_path, capsys):
    _images(tmp_path / 'img', 2)
    out = tmp_path / 'out.csv'
    assert _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)[0] == 0
    before = out.read_bytes()
    code, err = _score(['cianet_consistency', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out),
                        '--resume'], capsys)
    assert code == 2 and "holds the metrics ['ipce']" in err and '--overwrite' in err and len(err.splitlines()) == 1
    assert out.read_bytes() == before
    # the same metrics in another order continue the file in its own column order
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out), '--resume'], capsys)
    assert code == 0 and '(2 already in the output)' in err


def test_a_stored_row_counts_as_done_only_with_a_finite_score_for_every_metric():
    metrics = ['ipce', 'cianet_consistency']
    assert is_done({'ipce': '2.5', 'cianet_consistency': '0.1', 'error': ''}, metrics)
    for record in ({'ipce': '2.5', 'cianet_consistency': '', 'error': ''},
                   {'ipce': 'nan', 'cianet_consistency': '0.1', 'error': ''},
                   {'ipce': float('inf'), 'cianet_consistency': 0.1, 'error': ''},
                   {'ipce': '2.5', 'error': ''},
                   {'ipce': '2.5', 'cianet_consistency': '0.1', 'error': 'missing file'}):
        assert not is_done(record, metrics), record


def test_rows_with_a_missing_or_nan_score_are_scored_again_on_resume(tmp_path, capsys):
    _images(tmp_path / 'img', 3)
    out = tmp_path / 'out.csv'
    assert _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)[0] == 0
    rows = list(csv.reader(out.open(newline='')))
    rows[1][3], rows[2][3] = 'nan', ''  # an older output's NaN, and a score that was never written
    with out.open('w', newline='') as handle:
        csv.writer(handle).writerows(rows)
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out), '--resume'], capsys)
    assert code == 0 and '2 of 2 images scored' in err and '(1 already in the output)' in err, err
    assert read_scores(str(out))['ipce'].astype(float).notna().all()


# ----- torn last lines -----
@pytest.mark.parametrize('suffix', ['csv', 'jsonl'])
def test_a_torn_last_line_is_scored_again_naming_the_file_and_line(tmp_path, capsys, suffix):
    _images(tmp_path / 'img', 3)
    out = tmp_path / f'out.{suffix}'
    assert _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)[0] == 0
    full = read_scores(str(out)).set_index('image')['ipce'].astype(float)
    data = out.read_bytes()
    last = str(full.index[-1]).encode()
    cut = data.index(last) + len(last) + len(',"x","argument",2' if suffix == 'jsonl' else ',x,argument,2')
    out.write_bytes(data[:cut])  # the last row cut in the middle of its score
    line = 4 if suffix == 'csv' else 3  # the header is line 1 of a CSV
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out), '--resume'], capsys)
    assert code == 0, err
    assert f'note: {out} line {line}: an incomplete last row' in err and '1 of 1 images scored' in err, err
    table = read_scores(str(out)).set_index('image')['ipce'].astype(float)
    assert len(table) == 3 and (table.sort_index() - full.sort_index()).abs().max() <= IPCE_TOL


def test_a_csv_row_cut_inside_a_quoted_prompt_is_torn():
    text = 'image,prompt,prompt_source,ipce,error\r\na.png,x,argument,2.5,\r\nb.png,"two\nlines'
    path = 'mem.csv'
    from pyiqa_agiqa.scoring.output import _csv_records

    stored = _csv_records(path, text)
    assert [r['image'] for r in stored.records] == ['a.png'] and 'line 3' in stored.notes[0]
    stored = _csv_records(path, text + '\n')  # a line end inside the open quote: still torn
    assert [r['image'] for r in stored.records] == ['a.png'] and stored.notes


@pytest.mark.parametrize('suffix', ['csv', 'jsonl'])
def test_a_damaged_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path, capsys, suffix):
    _images(tmp_path / 'img', 3)
    out = tmp_path / f'out.{suffix}'
    assert _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)[0] == 0
    lines = out.read_bytes().splitlines(keepends=True)
    middle = 2 if suffix == 'csv' else 1  # the second of three rows (a CSV's line 1 is its header)
    lines[middle] = lines[middle][:20] + (b'\r\n' if suffix == 'csv' else b'\n')
    out.write_bytes(b''.join(lines))
    before = out.read_bytes()
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out), '--resume'], capsys)
    assert code == 2 and f'{out} line {middle + 1}:' in err and 'in the middle of the file' in err, err
    assert '--overwrite' in err
    assert len(err.strip().splitlines()) == 1 and out.read_bytes() == before


def test_a_score_cell_that_is_not_a_number_is_named():
    text = 'image,prompt,prompt_source,ipce,error\r\na.png,x,argument,abc,\r\n'
    from pyiqa_agiqa.scoring.output import _check_damage_in_scores, _csv_records

    with pytest.raises(ScoringInputError, match="a.png holds ipce='abc', not a number"):
        _check_damage_in_scores('out.csv', _csv_records('out.csv', text))


# ----- non-finite scores -----
def _poisoned(metric):
    with torch.no_grad():
        next(p for p in metric.net.parameters() if p.is_floating_point()).fill_(float('nan'))
    return metric


def test_a_nan_score_is_the_rows_error_and_is_not_kept_by_resume(tmp_path):
    _images(tmp_path / 'img', 3)
    metrics = create_metrics(['ipce'], 'cpu', TINY_OPTS)
    _poisoned(metrics['ipce'])
    out = str(tmp_path / 'out.csv')
    writer = ResultWriter(out, ['image', 'prompt', 'prompt_source', 'ipce', 'error'])
    table = score_rows(metrics, rows_from_target(str(tmp_path / 'img'), 'x'), writer, progress=False, workers=0)
    writer.close()
    assert (table['ipce'] == '').all() and table['error'].str.contains('ipce gave a non-finite score').all()
    stored = read_scores(out)
    assert stored['error'].str.contains('non-finite').all()
    assert ResultWriter(out, list(stored.columns), resume=True).done == set()


def test_create_metric_raises_a_clear_error_on_non_finite_scores():
    metric = _poisoned(pyiqa.create_metric('ipce', device='cpu', **TINY_OPTS))
    with pytest.raises(NonFiniteScoreError, match=r'ipce gave non-finite scores for image\(s\) \[0, 1\]') as caught:
        metric(torch.rand(2, 3, 64, 64), prompt=['a', 'b'])
    assert caught.value.rows == [0, 1] and torch.isnan(caught.value.scores).all()


def test_scored_values_keep_the_finite_and_name_the_others():
    assert scored_values({'a': 1.5, 'b': 2.0}) == ({'a': 1.5, 'b': 2.0}, '')
    values, error = scored_values({'a': 1.5, 'b': float('inf')})
    assert values == {'a': 1.5, 'b': ''} and error.startswith('b gave a non-finite score (inf)')


# ----- byte-exact prompts -----
def test_prompts_keep_their_surrounding_whitespace_through_csv_and_outputs(tmp_path, capsys):
    _images(tmp_path / 'img', 1)
    listing = _csv(tmp_path / 'list.csv', [['img/a0.png', p] for p in WHITESPACE_PROMPTS])
    assert [r.prompt for r in rows_from_csv(str(listing))] == WHITESPACE_PROMPTS
    for suffix in ('csv', 'jsonl'):
        out = tmp_path / f'out.{suffix}'
        assert _score(['ipce', '--csv', str(listing), '-o', str(out)], capsys)[0] == 0
        assert read_scores(str(out))['prompt'].tolist() == WHITESPACE_PROMPTS
        code, err = _score(['ipce', '--csv', str(listing), '-o', str(out), '--resume'], capsys)
        assert code == 0 and f'({len(WHITESPACE_PROMPTS)} already in the output)' in err, err


def test_cells_and_caption_files():
    assert prompt_from_cell('  ') is None and prompt_from_cell(float('nan')) is None and prompt_from_cell(None) is None
    assert prompt_from_cell(' x\t') == ' x\t'
    assert prompt_from_caption_file(b'a fox\n') == 'a fox' and prompt_from_caption_file('a fox\r\n') == 'a fox'
    assert prompt_from_caption_file(' a fox \n\n') == ' a fox \n' and prompt_from_caption_file('\n') is None


# ----- symbolic links in a scanned folder -----
@pytest.fixture
def linked(tmp_path):
    """A folder with two images, a loop (loop -> .), a link up (sub/up -> ..), a link to an image
    of the folder, and links to a file and a folder outside it."""
    root = _images(tmp_path / 'root', 2)
    outside = _images(tmp_path / 'outside', 1, seed=1)
    (root / 'sub').mkdir()
    os.symlink('.', root / 'loop')
    os.symlink('..', root / 'sub' / 'up')
    os.symlink(root / 'a0.png', root / 'sub' / 'same.png')
    os.symlink(outside / 'a0.png', root / 'elsewhere.png')
    os.symlink(outside, root / 'outside_dir')
    return root


def test_a_folder_scan_ends_lists_each_file_once_and_skips_links_outside(linked):
    paths, skipped = scan_images(str(linked))
    assert paths == [str(linked / 'a0.png'), str(linked / 'a1.png')]
    assert skipped == [str(linked / 'elsewhere.png'), str(linked / 'outside_dir')]
    with pytest.warns(LinkOutsideWarning, match='2 symbolic link'):
        rows = rows_from_target(str(linked), 'x')
    assert [r.image for r in rows] == paths


def test_the_score_command_on_a_folder_with_link_loops(linked, tmp_path):
    out = tmp_path / 'out.csv'
    result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '-t', str(linked), '--prompt',
                             'x', '-o', str(out)] + TINY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'warning: 2 symbolic link(s)' in result.stderr and '2 of 2 images scored' in result.stderr
    assert len(read_scores(str(out))) == 2


# ----- one writer per output; write failures; the order of the checks -----
@pytest.mark.parametrize('flag', ['--overwrite', '--resume'])
def test_a_second_run_on_an_output_being_written_is_refused(tmp_path, capsys, flag):
    _images(tmp_path / 'img', 1)
    out = tmp_path / 'out.csv'
    out.write_bytes(b'image,prompt,prompt_source,ipce,error\r\n')
    lock = hold_output(str(out))  # a first run, live in this process
    try:
        result = subprocess.run([sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '-t', str(tmp_path / 'img'),
                                 '--prompt', 'x', '-o', str(out), flag] + TINY, capture_output=True, text=True,
                                timeout=300)
    finally:
        lock.release()
    assert result.returncode == 2 and f'another scoring run (process {os.getpid()}) is writing {out}' in result.stderr
    assert out.read_bytes() == b'image,prompt,prompt_source,ipce,error\r\n'
    assert not os.path.exists(tmp_path / '.out.csv.lock')


def test_an_existing_output_is_refused_before_any_model_is_built(tmp_path, capsys, monkeypatch):
    import pyiqa_agiqa.metrics.factory as factory

    _images(tmp_path / 'img', 1)
    out = tmp_path / 'out.csv'
    out.write_text('kept')
    built = []
    monkeypatch.setattr(factory, 'create_metrics', lambda *a, **k: built.append(a))
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)
    assert code == 2 and 'exists; pass --resume' in err and built == [] and out.read_text() == 'kept'


def test_a_run_that_fails_before_scoring_leaves_no_output(tmp_path, capsys):
    _images(tmp_path / 'img', 1)
    out = tmp_path / 'out.csv'
    code, err = _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out), '--weights',
                        str(tmp_path / 'missing.safetensors')], capsys)
    assert code == 2 and not out.exists(), err


def _file_size_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    return apply


def test_a_full_disk_is_one_line_the_rows_written_are_kept_and_resume_finishes(tmp_path):
    _images(tmp_path / 'img', 12)
    out = tmp_path / 'out.csv'
    cmd = [sys.executable, '-m', 'pyiqa_agiqa.cli', 'score', 'ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x',
           '-o', str(out), '--batch-size', '2'] + TINY
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(600))
    assert full.returncode == 2, full.stderr
    assert full.stderr.startswith(f'error: cannot write {out}: File too large; the rows written before are kept')
    assert len(full.stderr.strip().splitlines()) == 1
    kept = read_output(str(out), []).records
    assert 0 < len(kept) < 12
    resumed = subprocess.run(cmd + ['--resume'], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and f'({len(kept)} already in the output)' in resumed.stderr, resumed.stderr
    assert len(read_scores(str(out))) == 12


def test_an_unexpected_crash_is_not_exit_1(tmp_path, monkeypatch, capsys):
    import pyiqa_agiqa.cli.score as score_command

    def broken(args):
        raise KeyError('a bug')
    monkeypatch.setattr(score_command, 'cmd_score', broken)  # what COMMANDS['score'] names
    code = main(['score', 'ipce', '-t', str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3 and 'KeyError' in err and 'internal error' in err.strip().splitlines()[-1]


def test_jsonl_outputs_hold_the_output_columns_in_order(tmp_path, capsys):
    _images(tmp_path / 'img', 1)
    out = tmp_path / 'out.jsonl'
    assert _score(['ipce', '-t', str(tmp_path / 'img'), '--prompt', 'x', '-o', str(out)], capsys)[0] == 0
    assert list(json.loads(out.read_text().splitlines()[0])) == ['image', 'prompt', 'prompt_source', 'ipce', 'error']


def test_a_lock_does_not_outlive_its_run_in_a_forked_worker(tmp_path):
    out = str(tmp_path / 'out.csv')
    holder = subprocess.Popen([sys.executable, '-c', f"""
import os, sys, time
from pyiqa_agiqa.scoring.lock import hold_output
lock = hold_output({out!r})
worker = os.fork()
if worker == 0:  # a worker forked while the lock is held (as DataLoader workers are)
    time.sleep(60)
    os._exit(0)
print(worker, flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    worker = int(holder.stdout.readline())
    taken = [sys.executable, '-c', f'from pyiqa_agiqa.scoring.lock import hold_output; hold_output({out!r})']
    assert subprocess.run(taken, capture_output=True, text=True).returncode != 0  # held by a live run
    holder.kill()  # kill -9 of the run; its forked worker lives on
    holder.wait(10)
    try:
        result = subprocess.run(taken, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-1000:]
    finally:
        os.kill(worker, signal.SIGKILL)
