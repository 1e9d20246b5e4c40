"""The command line: scoring files, folders and CSVs; errors; the demo and prepare commands."""

import json
import subprocess
import sys

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


HEAVY = ('torch', 'torchvision', 'pyiqa', 'open_clip', 'timm', 'pandas', 'ray')


@pytest.mark.parametrize('argv', [['--help'], ['score', '--help'], ['benchmark', '--help'], ['compare', '--help'],
                                  ['prompts', '--help']])
def test_help_imports_no_torch_pyiqa_or_open_clip(argv):
    """--help parses with argparse only: the modules of the commands (torch, pyiqa, ...) are
    imported when a command runs, not before (checked on sys.modules, in a fresh interpreter)."""
    code = ('import json, sys\nfrom pyiqa_agiqa.cli import main\ntry:\n    main(sys.argv[1:])\n'
            'except SystemExit:\n    pass\n'
            f'print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({list(HEAVY)!r}))))')
    result = subprocess.run([sys.executable, '-c', code, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_help_shows_defaults_and_one_description_per_command(capsys):
    with pytest.raises(SystemExit):
        main(['--help'])
    top = capsys.readouterr().out
    assert '``' not in top and 'convert-reference' in top and 'convert-pickle' in top
    train, nsplits = (next(line for line in top.splitlines() if line.strip().startswith(name + ' '))
                      for name in ('train', 'train-nsplits'))
    assert train.split(None, 1)[1] != nsplits.split(None, 1)[1]
    with pytest.raises(SystemExit):
        main(['score', '--help'])
    score = ' '.join(capsys.readouterr().out.split())
    assert '(default: 8)' in score and 'DataLoader workers' in score and '(default: 2)' in score
    with pytest.raises(SystemExit):
        main(['demo', '--help'])
    assert 'training epochs (default: 30)' in ' '.join(capsys.readouterr().out.split())


@pytest.mark.parametrize('old, new', [('convert', 'convert-reference'), ('convert-weights', 'convert-pickle')])
def test_old_command_names_still_work_with_a_one_line_warning(old, new, tmp_path, capsys):
    (tmp_path / 'ckpt.pt').write_bytes(b'not a checkpoint')
    args = (['--from', 'cianet-ref', str(tmp_path / 'ckpt.pt')] if new == 'convert-reference'
            else [str(tmp_path / 'ckpt.pt')]) + ['-o', str(tmp_path / 'out')]
    assert main([old] + args) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning == f'warning: `pyiqa-agiqa {old}` is now `pyiqa-agiqa {new}`; the old name will be removed ' \
                      'in a later version'
    assert main([new] + args) == 2
    assert capsys.readouterr().err.splitlines() == [error]


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
