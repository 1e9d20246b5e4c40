"""``pyiqa-agiqa compare`` and ``pyiqa-agiqa prompts`` on the command line: folders and tables,
resuming (a killed compare, one more model), refusals as one line, untrusted text kept inert,
identical models tie. Scored with pyiqa's piqe (no weights, no prompt) or a tiny random IPCE."""

import os
import re
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
    make_comparison_set(root, n_prompts=6, seeds=2, image_size=64, family='noise', texture=0.05)
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
    assert list(ranking['model']) == ['clean', 'mild', 'strong']
    assert summary.set_index('model')['mean'].is_monotonic_increasing
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
        (['--models', f'a={gen / "clean"}', f'b={gen / "mild"}', '--out', str(tmp_path / 'o'), '--engine', 'ray'],
         "--engine ray scores the plugin's metrics only"),
    ]
    for argv, expected in cases:
        assert main(['compare', 'piqe'] + argv + FAST) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and expected in err, err
    assert main(['compare', 'piqee', '--models', f'a={gen / "clean"}', f'b={gen / "mild"}', '--out',
                 str(tmp_path / 'o')] + FAST) == 2
    assert "unknown metric 'piqee'" in capsys.readouterr().err
    assert os.listdir(tmp_path / 'mine') == ['notes.txt'] and not (tmp_path / 'o' / 'summary.csv').exists()


HOSTILE = ['<script>alert(1)</script>', '=HYPERLINK("http://evil.example","x")', 'a | b\nsecond line',
           '![x](http://evil.example/p.png) [y](javascript:alert(1)) `code` *em* back\\|slash']


def test_untrusted_text_stays_text_and_identical_models_tie(gen, tmp_path, capsys):
    """Prompts and categories from the table reach report.html escaped and report.md inert: no raw
    HTML, no image or link, no table cell broken by ``|`` or a line end; CSV cells spreadsheet-safe."""
    rows = []
    for i, image in enumerate(sorted((gen / 'clean').glob('*.png'))[:8]):
        prompt, category = HOSTILE[i % 4] + f' {i // 4}', HOSTILE[(i + 1) % 4]
        rows += [dict(model=m, image=str(image), prompt=prompt, category=category) for m in ('a', 'b')]
    rows.append(dict(model='a', image=str(sorted((gen / 'mild').glob('*.png'))[0]), prompt='=1+1', category='x'))
    pd.DataFrame(rows).to_csv(tmp_path / 'table.csv', index=False)
    out = tmp_path / 'cmp'
    assert main(['compare', 'piqe', '--table', str(tmp_path / 'table.csv'), '--out', str(out)] + FAST) == 0
    capsys.readouterr()
    page = (out / 'report.html').read_text()
    assert '<script' not in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page
    assert 'src="http' not in page and 'href="javascript' not in page
    md = (out / 'report.md').read_text()
    assert '<script' not in md and '&lt;script&gt;' in md and 'evil' in md  # the prompts are there, as text
    assert '](' not in md and '![' not in md  # no link or image
    width = None
    for line in md.splitlines():  # every row of a table has its header's number of cells
        cells = len(re.findall(r'(?<!\\)\|', line)) - 1  # cell borders: the pipes not escaped
        if not line.startswith('|'):
            width = None
        elif width is None:
            width = cells
        else:
            assert cells == width, line
    assert 'second line' in md and 'a \\| b second line' in md
    assert "'=1+1" in (out / 'left_out.csv').read_text()
    assert "'=HYPERLINK" in (out / 'scores' / 'a.csv').read_text()
    pair = pd.read_csv(out / 'pairwise.csv').iloc[0]
    assert (pair.n_prompts, pair.mean_diff, pair.win_rate, pair.verdict) == (8, 0, 0.5, 'tie')


def test_images_that_cannot_be_read_are_listed_and_the_rest_compared(gen, tmp_path, capsys):
    table = pd.read_csv(gen / 'generations.csv')
    table.loc[table['model'] == 'strong', 'image'] = 'gone/' + table.loc[table['model'] == 'strong', 'image']
    table.to_csv(gen / 'partly-gone.csv', index=False)
    out = tmp_path / 'cmp'
    assert main(['compare', 'piqe', '--table', str(gen / 'partly-gone.csv'), '--out', str(out)] + FAST) == 1
    assert '12 images not scored (failed.csv)' in capsys.readouterr().err
    assert len(pd.read_csv(out / 'failed.csv')) == 12 and len(pd.read_csv(out / 'left_out.csv')) == 6
    pair = pd.read_csv(out / 'pairwise.csv').set_index(['model_a', 'model_b'])
    assert pair.loc[('clean', 'mild'), 'n_prompts'] == 6 and pair.loc[('clean', 'strong'), 'n_prompts'] == 0
    assert (out / 'report.html').is_file() and (out / 'report.md').is_file()
    table['image'] = 'gone/' + table['image']  # no image of any model: still a report, exit 1
    table.to_csv(gen / 'all-gone.csv', index=False)
    assert main(['compare', 'piqe', '--table', str(gen / 'all-gone.csv'), '--out', str(tmp_path / 'none')] + FAST) == 1
    assert '36 images not scored (failed.csv)' in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / 'none' / 'failed.csv')) == 36 and (tmp_path / 'none' / 'report.html').is_file()


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


def test_parti_prompts_are_read_as_written_and_bad_files_are_one_line(tmp_path, capsys):
    tsv = tmp_path / 'PartiPrompts.tsv'  # the file's shapes: a prompt opening with a quote, one with a space
    tsv.write_text('Prompt\tCategory\tChallenge\tNote\n"HELLO" on a red door\tIllustrations\tWriting & Symbols\t\n'
                   ' a cat on a bike\tAnimals\tFine-grained Detail\t\na bowl of soup\tFood & Beverage\tBasic\tx\n')
    assert main(['prompts', 'parti', '--from', str(tsv), '-o', str(tmp_path / 'p.csv')]) == 0
    assert '3 prompts (3 categories)' in capsys.readouterr().err
    table = pd.read_csv(tmp_path / 'p.csv', keep_default_na=False)
    assert list(table['prompt']) == ['"HELLO" on a red door', ' a cat on a bike', 'a bowl of soup']
    assert list(table['category']) == ['Illustrations', 'Animals', 'Food & Beverage']
    cases = [('', 'is empty'), ('Prompt\tCategory\n', 'no prompts'), ('Prompt,Category\na,b\n', "missing column"),
             ('Prompt\tCategory\n\tAnimals\n', 'line 2: empty Prompt'), ('Prompt\tCategory\na\tb\tc\n', 'line 2: 3'),
             (b'Prompt\tCategory\n\xff\tb\n', 'UnicodeDecodeError')]
    for content, expected in cases:
        bad = tmp_path / 'bad.tsv'
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        assert main(['prompts', 'parti', '--from', str(bad), '-o', str(tmp_path / 'q.csv')]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and expected in err, err
    assert not (tmp_path / 'q.csv').exists()
