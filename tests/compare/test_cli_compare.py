"""``pyiqa-agiqa compare`` and ``pyiqa-agiqa prompts`` on the command line: folders and tables,
resuming (a killed compare, one more model), refusals as one line, untrusted text kept inert,
identical models tie. Scored with pyiqa's piqe (no weights, no prompt) or a tiny random IPCE."""

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.demo.synthetic import make_comparison_set

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'cli'))
from test_cli import TINY_SET  # noqa: E402

FAST = ['--bootstrap', '300', '--workers', '0', '-q', '--device', 'cpu']


@pytest.fixture(scope='module')
def gen(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare-cli') / 'gen'
    make_comparison_set(root, n_prompts=6, seeds=2, image_size=64, family='noise')
    return root


def files_under(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))


def test_folders_then_one_more_model_then_a_killed_run(gen, tmp_path, capsys):
    out = tmp_path / 'cmp'
    before = files_under(gen)
    assert main(['compare', 'piqe', '--models', f'clean={gen / "clean"}', f'mild={gen / "mild"}', '--out', str(out)]
                + FAST) == 0
    printed = capsys.readouterr()
    assert 'piqe\tclean - mild' in printed.out and 'report: ' in printed.err
    assert {'summary.csv', 'pairwise.csv', 'report.html', 'report.md', 'left_out.csv', 'ranking.csv'} <= \
        set(os.listdir(out))
    assert files_under(gen) == before  # nothing written beside the images
    clean = (out / 'scores' / 'clean.csv').read_bytes()

    main(['compare', 'piqe', '--models', f'clean={gen / "clean"}', f'mild={gen / "mild"}',
          f'strong={gen / "strong"}', '--out', str(out)] + FAST)
    err = capsys.readouterr().err
    assert 'strong: 12 images to score' in err and 'clean:' not in err and 'mild:' not in err
    assert (out / 'scores' / 'clean.csv').read_bytes() == clean
    summary = pd.read_csv(out / 'summary.csv')
    assert list(summary['model']) == ['clean', 'mild', 'strong'] and set(summary['n_prompts']) == {6}
    ranking = pd.read_csv(out / 'ranking.csv')  # piqe: lower is better (pyiqa's lower_better)
    assert ranking['model'].iloc[0] == summary.set_index('model')['mean'].idxmin()
    assert 'lower is better' in (out / 'report.html').read_text()

    lines = (out / 'scores' / 'mild.csv').read_text().splitlines(keepends=True)  # killed while writing
    (out / 'scores' / 'mild.csv').write_text(''.join(lines[:4]) + lines[4][:10])
    assert main(['compare', 'piqe', '--models', f'clean={gen / "clean"}', f'mild={gen / "mild"}',
                 f'strong={gen / "strong"}', '--out', str(out), '--bootstrap', '300', '--workers', '0']) == 0
    err = capsys.readouterr().err
    assert 'mild: 9 images to score (3 already in' in err and 'incomplete last row' in err
    pd.testing.assert_frame_equal(pd.read_csv(out / 'summary.csv'), summary)


def test_refusals_are_one_line(gen, tmp_path, capsys):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('mine')
    cases = [
        (['--models', f'a={gen / "clean"}', f'b={gen / "mild"}', '--out', str(tmp_path / 'mine')], '--overwrite'),
        (['--models', f'../x={gen / "clean"}', f'b={gen / "mild"}', '--out', str(tmp_path / 'o')],
         'cannot name a file'),
        (['--models', f'a/b={gen / "clean"}', f'b={gen / "mild"}', '--out', str(tmp_path / 'o')], 'cannot name a file'),
        (['--models', f'a={gen / "clean"}', '--out', str(tmp_path / 'o')], 'at least two models'),
        (['--models', f'a={gen / "clean"}', f'b={tmp_path / "nope"}', '--out', str(tmp_path / 'o')], 'no such folder'),
        (['--out', str(tmp_path / 'o')], 'exactly one of --models'),
        (['--models', f'a={gen / "clean"}', f'b={gen / "mild"}', '--out', str(tmp_path / 'o'), '--set', 'x=1'],
         '--set'),
    ]
    for argv, expected in cases:
        assert main(['compare', 'piqe'] + argv + FAST) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and expected in err, err
    assert main(['compare', 'piqee', '--models', f'a={gen / "clean"}', f'b={gen / "mild"}', '--out',
                 str(tmp_path / 'o')] + FAST) == 2
    assert "unknown metric 'piqee'" in capsys.readouterr().err
    assert os.listdir(tmp_path / 'mine') == ['notes.txt'] and not (tmp_path / 'o' / 'summary.csv').exists()


def test_untrusted_text_stays_text_and_identical_models_tie(gen, tmp_path, capsys):
    hostile = ['<script>alert(1)</script>', '=HYPERLINK("http://evil.example","x")']
    rows = []
    for i, image in enumerate(sorted((gen / 'clean').glob('*.png'))[:6]):
        prompt = hostile[i % 2] + f' {i // 2}'
        rows += [dict(model='a', image=str(image), prompt=prompt), dict(model='b', image=str(image), prompt=prompt)]
    rows.append(dict(model='a', image=str(sorted((gen / 'mild').glob('*.png'))[0]), prompt='=1+1'))  # a lacks-b row
    pd.DataFrame(rows).to_csv(tmp_path / 'table.csv', index=False)
    out = tmp_path / 'cmp'
    assert main(['compare', 'piqe', '--table', str(tmp_path / 'table.csv'), '--out', str(out)] + FAST) == 0
    capsys.readouterr()
    page = (out / 'report.html').read_text()
    assert '<script' not in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page
    assert "'=1+1" in (out / 'left_out.csv').read_text()
    assert "'=HYPERLINK" in (out / 'scores' / 'a.csv').read_text()
    assert '<script' not in (out / 'report.md').read_text()
    pair = pd.read_csv(out / 'pairwise.csv').iloc[0]
    assert (pair.n_prompts, pair.mean_diff, pair.win_rate, pair.verdict) == (6, 0, 0.5, 'tie')


def test_a_plugin_metric_with_its_options(gen, tmp_path, capsys):
    out = tmp_path / 'cmp'
    assert main(['compare', 'ipce', '--models', f'clean={gen / "clean"}', f'strong={gen / "strong"}', '--out',
                 str(out), '--allow-untrained', '--bootstrap', '200', '--workers', '0'] + TINY_SET) == 0
    scores = pd.read_csv(out / 'scores' / 'clean.csv')
    assert list(scores.columns) == ['image', 'prompt', 'prompt_source', 'ipce', 'error'] and len(scores) == 12
    assert set(scores['prompt_source']) == {'caption:txt'}  # each image's sidecar caption, as score reads it
    assert scores['ipce'].notna().all()
    assert pd.read_csv(out / 'pairwise.csv')['n_prompts'].tolist() == [6]


def test_prompt_sets(tmp_path, capsys):
    assert main(['prompts', 'agiqa3k', '-o', str(tmp_path / 'a.csv')]) == 0
    table = pd.read_csv(tmp_path / 'a.csv')
    assert list(table.columns) == ['prompt_id', 'prompt', 'category'] and len(table) == 300
    assert table['prompt_id'].is_unique and table['category'].nunique() == 6
    assert main(['prompts', 'agiqa3k', '-o', str(tmp_path / 'a.csv')]) == 2
    assert '--overwrite' in capsys.readouterr().err
    tsv = tmp_path / 'PartiPrompts.tsv'
    tsv.write_text('Prompt\tCategory\tChallenge\tNote\na red apple\tFood\tSimple\t\n=cmd\tWorld\tSimple\t\n')
    assert main(['prompts', 'parti', '--from', str(tsv), '-o', str(tmp_path / 'p.csv')]) == 0
    assert (tmp_path / 'p.csv').read_text().splitlines() == ['prompt_id,prompt,category', 'parti-0001,a red apple,Food',
                                                             "parti-0002,'=cmd,World"]
    assert main(['prompts', 'parti', '-o', str(tmp_path / 'q.csv')]) == 2
    assert 'github.com/google-research/parti' in capsys.readouterr().err
