"""The reader: which source wins when several are present, what is reported when none is usable,
and that no file makes it raise, except a missing one."""

import json
import random

import pytest
from prompt_files import (A1111_NO_NEGATIVE, A1111_PARAMETERS, COMFY_API, STEALTH_PARAMETERS, check, exif_with,
                          spy_on_stealth_decodes, write_image, write_png, write_stealth_png)

from pyiqa_agiqa.data.embedded_prompts import MAX_PROMPT_CHARS, read_embedded_prompt, read_embedded_prompts


@pytest.fixture
def stealth_decodes(monkeypatch):
    """Calls of the function that decodes pixels for stealth PNG info."""
    return spy_on_stealth_decodes(monkeypatch)


def test_broken_comfy_prompt_with_valid_parameters(tmp_path):
    path = write_png(tmp_path / 'both.png', text=[('prompt', '{not json'), ('parameters', A1111_NO_NEGATIVE)])
    check(path, 'a red fox sleeping in the snow, golden hour', 'png:parameters')


def test_user_comment_before_image_description(tmp_path):
    exif = exif_with(user_comment=b'ASCII\x00\x00\x00a glass of lemonade', description='some description')
    check(write_image(tmp_path / 'both.webp', 'WEBP', exif), 'a glass of lemonade', 'exif:UserComment')


def test_text_chunks_win_over_stealth_bits_without_decoding_pixels(tmp_path, stealth_decodes):
    path = write_stealth_png(tmp_path / 'both.png', STEALTH_PARAMETERS, text=[('parameters', A1111_NO_NEGATIVE)])
    check(path, 'a red fox sleeping in the snow, golden hour', 'png:parameters')
    assert stealth_decodes == []
    data = bytearray(path.read_bytes())  # pixel data wrecked: never looked at while a text chunk has the prompt
    start = data.index(b'IDAT') + 4
    data[start + 8:start + 200] = bytes(192)
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(bytes(data))
    check(corrupt, 'a red fox sleeping in the snow, golden hour', 'png:parameters')
    assert stealth_decodes == []


def test_no_metadata(tmp_path):
    for path in (write_png(tmp_path / 'bare.png'), write_image(tmp_path / 'bare.jpg', 'JPEG')):
        result = check(path, None, 'none')
        assert 'looked at' in result.detail


def test_prompt_too_long_is_malformed_and_later_sources_still_used(tmp_path):
    huge = 'a ' * (MAX_PROMPT_CHARS // 2 + 10) + '\nSteps: 20, Seed: 1'
    result = check(write_png(tmp_path / 'huge.png', ztxt=[('parameters', huge)]), None, 'png:parameters')
    assert str(MAX_PROMPT_CHARS) in result.detail
    exif = exif_with(user_comment=b'ASCII\x00\x00\x00a tidy prompt')
    result = check(write_png(tmp_path / 'huge2.png', text=[('parameters', huge)], exif=exif),
                   'a tidy prompt', 'exif:UserComment')
    assert 'png:parameters skipped' in result.detail


def test_empty_and_whitespace_prompts_rejected(tmp_path):
    path = write_png(tmp_path / 'empty.png', text=[('parameters', '  \nNegative prompt: x\nSteps: 20, Seed: 1'),
                                                   ('Description', 'a fallback description')])
    check(path, 'a fallback description', 'png:novelai')
    blank = write_image(tmp_path / 'blank.jpg', 'JPEG', exif_with(description='          '))
    result = check(blank, None, 'none')
    assert 'empty prompt' in result.detail


def test_mutated_files_never_raise(tmp_path):
    rng = random.Random(0)
    seeds = [write_png(tmp_path / 'a.png', text=[('parameters', A1111_PARAMETERS), ('prompt', json.dumps(COMFY_API))],
                       exif=exif_with(user_comment=b'UNICODE\x00' + 'a cat'.encode('utf-16-le'))).read_bytes(),
             write_image(tmp_path / 'b.jpg', 'JPEG', exif_with(b'ASCII\x00\x00\x00a dog', 'd')).read_bytes(),
             write_image(tmp_path / 'c.webp', 'WEBP', exif_with(b'ASCII\x00\x00\x00a dog', 'd')).read_bytes()]
    target = tmp_path / 'mutated.bin'
    for _ in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        target.write_bytes(bytes(data[:rng.randint(len(data) // 2, len(data))]))
        result = read_embedded_prompt(target)
        assert result.prompt is None or (isinstance(result.prompt, str) and result.prompt.strip())


def test_missing_file_raises_naming_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'missing.png'
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_embedded_prompt(missing)


def test_read_many_with_progress(tmp_path):
    paths = [write_png(tmp_path / 'a.png', text=[('parameters', A1111_NO_NEGATIVE)]),
             write_png(tmp_path / 'b.png')]
    results = read_embedded_prompts(paths, progress=True)
    assert [(r.prompt, r.source) for r in results] == [('a red fox sleeping in the snow, golden hour',
                                                        'png:parameters'), (None, 'none')]
    assert read_embedded_prompts([str(p) for p in paths]) == results
