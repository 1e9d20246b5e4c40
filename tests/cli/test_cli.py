"""The command line: scoring files, folders and CSVs; errors; the demo and prepare commands."""

import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pyiqa_agiqa.cli import main

from conftest import console_script

TINY_SET = ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64',
            '--set', 'stride=8', '--device', 'cpu', '-q']


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate([(64, 64), (64, 64), (80, 72)]):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(folder / f'img{i}.png')
    return folder


def test_score_folder_to_csv(image_folder, tmp_path, capsys):
    out = tmp_path / 'scores.csv'
    assert main(['score', 'ipce', '-t', str(image_folder), '--prompt', 'a red circle', '-o', str(out)] + TINY_SET) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ['image', 'prompt', 'prompt_source', 'ipce', 'error'] and len(table) == 3
    assert table['ipce'].between(0, 5).all() and (table['prompt'] == 'a red circle').all()
    assert (table['prompt_source'] == 'argument').all() and (table['error'] == '').all()
    capsys.readouterr()
    assert main(['score', 'ipce', '-t', str(image_folder), '--prompt', 'x', '-o', str(out)] + TINY_SET) == 2
    assert 'exists; pass --resume to continue it or --overwrite to replace it' in capsys.readouterr().err


def test_score_single_image_prints_and_matches_folder_score(image_folder, capsys):
    main(['score', 'ipce', '-t', str(image_folder / 'img2.png'), '--prompt', 'a cat'] + TINY_SET)
    path, score = capsys.readouterr().out.strip().split('\t')
    assert path.endswith('img2.png') and 0 <= float(score) <= 5


def test_score_csv_with_one_prompt_per_image(image_folder, tmp_path):
    listing = tmp_path / 'list.csv'
    pd.DataFrame({'image': ['imgs/img0.png', 'imgs/img1.png'],
                  'prompt': ['a cat', 'a dog']}).to_csv(listing, index=False)
    out = tmp_path / 'csv_scores.csv'
    main(['score', 'ipce', '--csv', str(listing), '-o', str(out)] + TINY_SET)
    table = pd.read_csv(out)
    assert table['prompt'].tolist() == ['a cat', 'a dog'] and (table['prompt_source'] == 'csv').all()


def test_score_errors_are_clear(image_folder, tmp_path, capsys):
    listing = tmp_path / 'bad.csv'
    pd.DataFrame({'img': ['a.png'], 'prompt': ['x']}).to_csv(listing, index=False)
    assert main(['score', 'ipce', '--csv', str(listing)] + TINY_SET) == 2
    assert "missing column(s) ['image']" in capsys.readouterr().err
    assert main(['score', 'ipce', '-t', str(image_folder), '--prompt', '  '] + TINY_SET) == 2
    assert '--prompt is empty' in capsys.readouterr().err


def test_console_script_is_installed():
    result = subprocess.run([console_script(), '--help'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and 'score' in result.stdout and 'demo' in result.stdout


def test_prepare_agiqa3k_refuses_to_overwrite(tmp_path, capsys):
    data = tmp_path / 'data.csv'
    data.write_text('name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n'
                    'a_normal_000.jpg,a cat,,,,1.5,0.2,2.0,0.3\n'
                    'b_normal_000.jpg,a cat,,,,2.5,0.2,2.5,0.3\n'
                    'a_normal_001.jpg,a dog,,,,3.5,0.2,3.0,0.3\n')
    out = tmp_path / 'meta.csv'
    assert main(['prepare', 'agiqa3k', '--data-csv', str(data), '-o', str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ['name', 'mos_quality', 'prompt', 'mos_correspondence']
    before = out.read_text()
    capsys.readouterr()
    assert main(['prepare', 'agiqa3k', '--data-csv', str(data), '-o', str(out)]) == 2
    assert capsys.readouterr().err == f'error: {out} exists; pass --overwrite to replace it\n'
    assert out.read_text() == before


def test_prepare_dispatches_to_every_converter(tmp_path, capsys):
    from conftest import REPO

    shared = REPO.parent / 'shared' / 'datasets' / 'AGIQA-1K' / 'AIGC_MOS_Zscore.xlsx'
    if not shared.is_file():
        pytest.skip('official AGIQA-1K metadata not present')
    out = tmp_path / 'agiqa1k.csv'
    assert main(['prepare', 'agiqa1k', '--data', str(shared), '-o', str(out)]) == 0
    assert len(pd.read_csv(out)) == 1078
    assert 'dreamStudio_8_9_1_1.jpg' in capsys.readouterr().err
    capsys.readouterr()
    assert main(['prepare', 'aigciqa2023', '-o', str(tmp_path / 'x.csv')]) == 2
    assert capsys.readouterr().err == 'error: aigciqa2023: give --release (the unpacked release folder)\n'
    assert main(['prepare', 'aigciqa2023', '--release', str(tmp_path), '-o', str(tmp_path / 'x.csv')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: AIGCIQA2023 release file(s) not found') and 'pic-index.xlsx' in err
    assert err.count('\n') == 1  # one line, no traceback
