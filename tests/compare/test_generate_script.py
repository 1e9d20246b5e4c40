"""scripts/generate_with_diffusers.py without diffusers: the prompts CSV that ``pyiqa-agiqa prompts``
writes is read back as the original text, the file names and the table it plans are the layout
``compare --table`` reads (paths relative to the table), and the table lists only the images that
exist. The generation itself (diffusers, weights, a GPU) is not run here."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pyiqa_agiqa.cli import main
from pyiqa_agiqa.compare.inputs import from_table
from pyiqa_agiqa.compare.run import write_csv  # the prompts command's writer (spreadsheet-safe cells)

SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'generate_with_diffusers.py'


@pytest.fixture(scope='module')
def script():
    spec = importlib.util.spec_from_file_location('generate_with_diffusers', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_planned_images_and_table_are_what_compare_reads(script, tmp_path, capsys):
    assert main(['prompts', 'agiqa3k', '-o', str(tmp_path / 'agiqa.csv')]) == 0
    mine = pd.read_csv(tmp_path / 'agiqa.csv', keep_default_na=False).head(3)
    extra = pd.DataFrame([dict(prompt_id='my/odd id', prompt='=a "quoted", prompt\nover two lines', category='')])
    write_csv(pd.concat([mine, extra]), str(tmp_path / 'prompts.csv'))
    prompts = script.read_prompts(str(tmp_path / 'prompts.csv'))
    assert [p['prompt'] for p in prompts] == list(mine['prompt']) + ['=a "quoted", prompt\nover two lines']

    rows = script.plan(prompts, ['sd15', 'sdxl'], [0, 1])
    assert len(rows) == 2 * 4 * 2 and rows[0]['image'] == 'sd15/agiqa3k-000_s0.png'
    assert rows[7]['image'] == 'sd15/my_odd_id_s1.png'
    out = tmp_path / 'gen'
    for row in rows[:-1]:  # the last image "not made yet"
        (out / row['image']).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (8, 8)).save(out / row['image'])
    table = script.write_table(rows, str(out))
    generations = from_table(table)
    assert len(generations) == len(rows) - 1
    assert list(generations['model'].unique()) == ['sd15', 'sdxl']
    assert all(Path(p).is_file() and Path(p).parent.parent == out.resolve() for p in generations['image'])
    assert list(generations['prompt']) == [r['prompt'] for r in rows[:-1]]  # byte for byte
    assert list(generations['prompt_id'][:2]) == ['agiqa3k-000'] * 2 and list(generations['seed'][:2]) == ['0', '1']
    assert list(generations['category'][:4:2]) == list(mine['category'][:2])

    with pytest.raises(SystemExit, match='same file name'):
        script.plan([dict(prompt_id='a/b', prompt='x', category=''), dict(prompt_id='a_b', prompt='y', category='')],
                    ['m'], [0])
    with pytest.raises(SystemExit, match='cannot name a file'):
        script.main(['--prompts', str(tmp_path / 'prompts.csv'), '--out', str(out), '--model', '../x=repo'])
