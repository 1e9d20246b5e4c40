"""Sidecar captions (image.txt / image.caption) and the prompt of an image file: embedded
metadata first, then the caption."""

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pyiqa_agiqa.data.captions import caption_prompt, read_caption, read_image_prompt
from pyiqa_agiqa.data.embedded_prompts import MAX_PROMPT_CHARS
from pyiqa_agiqa.scoring.contract import prompt_from_caption_file


def png(path, parameters=None):
    """A small PNG at ``path``, with an A1111 ``parameters`` chunk when given."""
    info = PngInfo()
    if parameters is not None:
        info.add_text('parameters', f'{parameters}\nSteps: 20, Sampler: Euler a, Seed: 1')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, pnginfo=info)
    return path


def test_txt_then_caption_kept_as_written(tmp_path):
    image = png(tmp_path / 'a.png')
    (tmp_path / 'a.caption').write_text('from the caption file\n')
    assert read_caption(image).prompt == 'from the caption file'
    assert read_caption(image).source == 'caption:caption'
    (tmp_path / 'a.txt').write_bytes('\ufeff  a fox,\tin snow \r\n'.encode('utf-8'))
    found = read_caption(image)
    assert (found.prompt, found.source) == ('  a fox,\tin snow ', 'caption:txt')
    assert "'a.txt'" in found.detail


def test_embedded_metadata_comes_first_then_the_caption(tmp_path):
    both = png(tmp_path / 'both.png', parameters='the generation prompt')
    (tmp_path / 'both.txt').write_text('a training caption')
    found = read_image_prompt(both)
    assert (found.prompt, found.source) == ('the generation prompt', 'png:parameters')
    only = png(tmp_path / 'only.png')
    (tmp_path / 'only.txt').write_text('a training caption')
    found = read_image_prompt(only)
    assert (found.prompt, found.source) == ('a training caption', 'caption:txt')


def test_unusable_captions_are_skipped_saying_why(tmp_path):
    image = png(tmp_path / 'a.png')
    (tmp_path / 'a.txt').write_text(' \n')
    (tmp_path / 'a.caption').write_bytes(b'caf\xe9')
    found = read_image_prompt(image)
    assert found.prompt is None and found.source == 'caption:txt'
    assert "'a.txt' skipped: empty" in found.detail and "'a.caption' skipped: invalid UTF-8 at byte 3" in found.detail
    assert found.detail.startswith('no prompt found; looked at PNG text chunks')
    (tmp_path / 'a.caption').write_text('x' * (MAX_PROMPT_CHARS + 1))
    assert f'more than {MAX_PROMPT_CHARS} characters' in read_caption(image).detail
    (tmp_path / 'a.caption').write_text('x' * (4 * MAX_PROMPT_CHARS))
    assert f'more than {MAX_PROMPT_CHARS} characters' in read_caption(image).detail


def test_no_caption_names_the_files_looked_for(tmp_path):
    found = read_image_prompt(png(tmp_path / 'a.png'))
    assert found.prompt is None and found.source == 'none'
    assert found.detail.endswith('no sidecar caption (a.txt, a.caption)')


@pytest.mark.parametrize('text', ['a fox\n', 'a fox\r\n', ' a fox \n\n', '\n', ' \t', 'a\rb'])
def test_a_sidecar_caption_is_read_as_a_shards_caption(text):
    assert caption_prompt(text) == prompt_from_caption_file(text)
