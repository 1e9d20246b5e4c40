"""Getting metadata out of the file: PNG chunk walker (truncation, bad CRC, non-UTF-8 text, corrupt zTXt),
ImageMagick's raw EXIF profile, and files Pillow cannot open."""

import zlib

from prompt_files import A1111_NO_NEGATIVE, A1111_PARAMETERS, A1111_PROMPT, check, exif_with, write_image, write_png


def test_imagemagick_raw_profile_exif_in_png(tmp_path):
    data = exif_with(user_comment=b'ASCII\x00\x00\x00a bonsai tree, macro photo').tobytes()[6:]
    profile = f'\nexif\n{len(data):8d}\n' + '\n'.join(data[i:i + 36].hex() for i in range(0, len(data), 36))
    path = write_png(tmp_path / 'magick.png', ztxt=[('Raw profile type exif', profile)])
    check(path, 'a bonsai tree, macro photo', 'exif:UserComment')


def test_truncated_png_reads_chunks_before_the_cut(tmp_path):
    path = write_png(tmp_path / 'full.png', text=[('parameters', A1111_PARAMETERS)])
    data = path.read_bytes()
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:data.index(b'IDAT') + 10])
    result = check(cut, A1111_PROMPT, 'png:parameters')
    assert 'truncated' in result.detail
    inside = tmp_path / 'inside.png'
    inside.write_bytes(data[:data.index(b'Negative prompt')])
    result = check(inside, None, 'none')
    assert 'truncated' in result.detail


def test_bad_crc_chunk_skipped(tmp_path):
    data = bytearray(write_png(tmp_path / 'ok.png', text=[('parameters', A1111_NO_NEGATIVE)]).read_bytes())
    start = data.index(b'tEXtparameters')
    length = int.from_bytes(data[start - 4:start], 'big')
    data[start + 4 + length] ^= 0xFF
    bad = tmp_path / 'bad.png'
    bad.write_bytes(bytes(data))
    result = check(bad, None, 'none')
    assert 'bad CRC' in result.detail


def test_non_utf8_bytes(tmp_path):
    latin = write_png(tmp_path / 'latin.png', raw=[(b'tEXt', b'parameters\x00caf\xe9 au lait\nSteps: 20')])
    check(latin, 'café au lait', 'png:parameters')
    itxt = write_png(tmp_path / 'itxt.png', raw=[(b'iTXt', b'parameters\x00\x00\x00\x00\x00caf\xe9 \xff')])
    result = check(itxt, None, 'none')
    assert 'not valid UTF-8' in result.detail
    comment = b'ASCII\x00\x00\x00caf\xe9 \xff\xfe'
    result = check(write_image(tmp_path / 'bad.jpg', 'JPEG', exif_with(user_comment=comment)),
                   None, 'exif:UserComment')
    assert 'not valid' in result.detail


def test_corrupt_ztxt_and_not_an_image(tmp_path):
    raw = [(b'zTXt', b'parameters\x00\x00' + zlib.compress(b'a cat')[:-3] + b'junk')]
    result = check(write_png(tmp_path / 'z.png', raw=raw), None, 'none')
    assert 'zTXt chunk skipped' in result.detail
    text_file = tmp_path / 'notes.jpg'
    text_file.write_text('not an image at all')
    result = check(text_file, None, 'none')
    assert 'Pillow could not read' in result.detail
