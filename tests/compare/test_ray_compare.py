"""``compare --engine ray`` ends with the local engine's files: one ``scores/<model>.csv`` per model
(the same columns and scores), and the same tables; a rerun with one more model scores only that
model's images, and the part files of a killed Ray job are resumed. Two Ray jobs in all (each
start costs seconds)."""

import sys
from pathlib import Path

import pandas as pd
import pytest

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.demo.synthetic import make_comparison_set
from pyiqa_agiqa.scoring.output import read_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'cli'))
from test_cli import TINY_SET  # noqa: E402

ARGS = ['--allow-untrained', '--bootstrap', '300', '--workers', '0'] + TINY_SET


def run(table: Path, out: Path, models, *extra) -> None:
    """compare ``models`` of the generated table (a table beside it: the image paths are relative)."""
    listing = pd.read_csv(table)
    mine = table.parent / f'{"-".join(models)}.csv'
    listing[listing['model'].isin(models)].to_csv(mine, index=False)
    assert main(['compare', 'ipce', '--table', str(mine), '--out', str(out)] + ARGS + list(extra)) == 0


@pytest.mark.ray
def test_ray_engine_writes_the_local_engines_files_and_scores_only_a_new_model(local_ray, tmp_path, capsys):
    table = make_comparison_set(tmp_path / 'gen', n_prompts=4, seeds=1, image_size=64)  # clean, mild, strong
    everyone = ['clean', 'mild', 'strong']
    run(table, tmp_path / 'local', everyone)
    capsys.readouterr()

    run(table, tmp_path / 'ray', ['clean', 'strong'], '--engine', 'ray')
    err = capsys.readouterr().err
    assert 'ray: 8 rows read, 0 already scored, 8 scored, 0 failed' in err
    scores = tmp_path / 'ray' / 'scores'
    assert sorted(p.name for p in scores.iterdir()) == ['clean.csv', 'strong.csv']  # the part folder is gone
    clean = (scores / 'clean.csv').read_bytes()

    # a killed job left a complete part file with one of mild's rows (as the local engine scored it)
    done = read_scores(str(tmp_path / 'local' / 'scores' / 'mild.csv')).iloc[[0]]
    (scores / 'ray').mkdir()
    done.to_csv(scores / 'ray' / 'part-killed.csv', index=False)
    run(table, tmp_path / 'ray', everyone, '--engine', 'ray')
    err = capsys.readouterr().err
    assert 'mild: 4 images to score' in err and 'clean:' not in err and 'strong:' not in err
    assert 'ray: 4 rows read, 1 already scored, 3 scored, 0 failed' in err
    assert (scores / 'clean.csv').read_bytes() == clean
    assert sorted(p.name for p in scores.iterdir()) == ['clean.csv', 'mild.csv', 'strong.csv']

    for model in everyone:
        local, ray = (read_scores(str(tmp_path / e / 'scores' / f'{model}.csv')).sort_values('image', ignore_index=True)
                      for e in ('local', 'ray'))
        assert list(ray.columns) == list(local.columns) == ['image', 'prompt', 'prompt_source', 'ipce', 'error']
        pd.testing.assert_frame_equal(local, ray, check_exact=False, rtol=1e-5)
    for name in ('summary.csv', 'pairwise.csv', 'ranking.csv'):
        local, ray = pd.read_csv(tmp_path / 'local' / name), pd.read_csv(tmp_path / 'ray' / name)
        pd.testing.assert_frame_equal(local, ray, check_exact=False, rtol=1e-5)
