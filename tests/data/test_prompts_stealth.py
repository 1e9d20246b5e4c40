"""A1111 stealth PNG info: infotext in the pixel LSBs (alpha or RGB, plain or gzip), read back."""

import gzip

import numpy as np
import pytest
from PIL import Image
from prompt_files import (A1111_NO_NEGATIVE, A1111_PARAMETERS, A1111_PROMPT, STEALTH_PARAMETERS, STEALTH_PROMPT,
                          check, spy_on_stealth_decodes, write_stealth_png)

from pyiqa_agiqa.data.embedded_prompts import read_embedded_prompt


@pytest.fixture
def stealth_decodes(monkeypatch):
    """Calls of the function that decodes pixels for stealth PNG info."""
    return spy_on_stealth_decodes(monkeypatch)


@pytest.mark.parametrize('mode, compressed, image_mode, payload, prompt', [
    ('alpha', False, 'RGBA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('alpha', True, 'RGBA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('alpha', False, 'LA', STEALTH_PARAMETERS, STEALTH_PROMPT),
    ('rgb', False, 'RGB', A1111_PARAMETERS, A1111_PROMPT),
    ('rgb', True, 'RGB', A1111_PARAMETERS, A1111_PROMPT),
    ('rgb', False, 'RGBA', A1111_NO_NEGATIVE, 'a red fox sleeping in the snow, golden hour'),  # alpha tried first
])
def test_stealth_round_trip_strips_negative_and_steps(tmp_path, stealth_decodes, mode, compressed, image_mode,
                                                      payload, prompt):
    path = write_stealth_png(tmp_path / 'stealth.png', payload, mode, compressed, image_mode)
    result = check(path, prompt, 'png:stealth')
    tag = f'stealth_{"png" if mode == "alpha" else "rgb"}{"comp" if compressed else "info"}'
    assert tag in result.detail and stealth_decodes == [(40, 30)]
    assert 'Negative prompt' not in result.prompt and 'Steps:' not in result.prompt


def test_undecodable_pixels_are_a_note(tmp_path):
    data = write_stealth_png(tmp_path / 'ok.png', STEALTH_PARAMETERS).read_bytes()
    start = data.index(b'IDAT') + 4
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(data[:start + 2] + b'\xff' * 198 + data[start + 200:])
    result = check(corrupt, None, 'none')
    assert 'could not be decoded (OSError' in result.detail
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:start + 300])
    result = check(cut, None, 'none')
    assert 'truncated' in result.detail and 'could not be decoded' in result.detail


def test_random_lsbs_are_no_stealth_prompt(tmp_path, stealth_decodes):
    for image_mode in ('RGBA', 'RGB'):
        pixels = np.random.default_rng(1).integers(0, 256, (30, 40, len(image_mode)), dtype=np.uint8)
        path = tmp_path / f'random_{image_mode}.png'
        Image.fromarray(pixels, image_mode).save(path)
        result = check(path, None, 'none')
        assert 'stealth' in result.detail and 'no signature' in result.detail
    assert len(stealth_decodes) == 2
    assert 'alpha or RGB' in read_embedded_prompt(tmp_path / 'random_RGBA.png').detail


def test_stealth_length_beyond_capacity_and_corrupt_payloads_are_malformed(tmp_path):
    path = write_stealth_png(tmp_path / 'long.png', 'a cat', n_bits=1_000_000)
    result = check(path, None, 'png:stealth')
    assert '1000000 bits is more than the 1048 bits' in result.detail
    broken = gzip.compress(STEALTH_PARAMETERS.encode())
    broken = broken[:12] + b'\x00junk not deflate' + broken[30:]
    result = check(write_stealth_png(tmp_path / 'gzip.png', compressed=True, data=broken), None, 'png:stealth')
    assert 'gzip payload is corrupt' in result.detail
    short = gzip.compress(STEALTH_PARAMETERS.encode())[:-20]
    result = check(write_stealth_png(tmp_path / 'short.png', compressed=True, data=short), None, 'png:stealth')
    assert 'truncated' in result.detail
    latin = write_stealth_png(tmp_path / 'latin.png', data=b'caf\xe9 \xff\nSteps: 20', mode='rgb', image_mode='RGB')
    result = check(latin, None, 'png:stealth')
    assert 'not valid UTF-8' in result.detail


def test_stealth_only_in_png_and_refused_above_max_image_pixels(tmp_path, monkeypatch):
    path = write_stealth_png(tmp_path / 'big.png', STEALTH_PARAMETERS)
    webp = tmp_path / 'stealth.webp'
    Image.open(path).save(webp, 'WEBP', lossless=True, exact=True)
    assert np.array_equal(np.asarray(Image.open(webp)), np.asarray(Image.open(path)))
    assert 'stealth' not in check(webp, None, 'none').detail
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    result = check(path, None, 'none')
    assert '40x30 pixels is above Image.MAX_IMAGE_PIXELS (1000)' in result.detail


def test_stealth_prompt_through_read_row(tmp_path):
    from pyiqa_agiqa.scoring.rows import read_row

    path = write_stealth_png(tmp_path / 'row.png', STEALTH_PARAMETERS, compressed=True)
    prompt, source, picture, error = read_row(str(path), None, '')
    assert (prompt, source, error) == (STEALTH_PROMPT, 'png:stealth', '')
    assert picture is not None and picture.size == (40, 30)
