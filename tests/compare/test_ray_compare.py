"""``compare --engine ray``: the images scored on Ray Data (one part-file folder, ``scores/ray``, for every model) give
the same tables as the local engine, and a rerun resumes."""

import sys
from pathlib import Path

import pandas as pd
import pytest

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.demo.synthetic import make_comparison_set

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'cli'))
from test_cli import TINY_SET  # noqa: E402

ARGS = ['--allow-untrained', '--bootstrap', '300', '--workers', '0'] + TINY_SET


@pytest.mark.ray
def test_ray_engine_gives_the_local_engines_tables(local_ray, tmp_path, capsys):
    table = make_comparison_set(tmp_path / 'gen', levels={'clean': 0, 'strong': 3}, n_prompts=4, seeds=1,
                                image_size=64)
    assert main(['compare', 'ipce', '--table', str(table), '--out', str(tmp_path / 'local')] + ARGS) == 0
    assert main(['compare', 'ipce', '--table', str(table), '--out', str(tmp_path / 'ray'), '--engine', 'ray']
                + ARGS) == 0
    assert [p.name for p in (tmp_path / 'ray' / 'scores').iterdir() if p.is_dir()] == ['ray']
    for name in ('summary.csv', 'pairwise.csv'):
        local, ray = pd.read_csv(tmp_path / 'local' / name), pd.read_csv(tmp_path / 'ray' / name)
        pd.testing.assert_frame_equal(local, ray, check_exact=False, rtol=1e-5)
    assert 'ray: 8 rows read, 0 already scored, 8 scored, 0 failed' in capsys.readouterr().err
    assert main(['compare', 'ipce', '--table', str(table), '--out', str(tmp_path / 'ray'), '--engine', 'ray']
                + ARGS) == 0
    assert 'ray: 8 rows read, 8 already scored, 0 scored, 0 failed' in capsys.readouterr().err
