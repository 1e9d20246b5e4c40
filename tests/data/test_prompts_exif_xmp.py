"""EXIF ``UserComment`` / ``ImageDescription`` and XMP ``dc:description`` in JPEG, WebP and PNG files."""

import json

from prompt_files import (A1111_NO_NEGATIVE, A1111_PARAMETERS, A1111_PROMPT, COMFY_WORKFLOW, check, exif_with,
                          write_image, write_png)


def test_exif_user_comment_unicode_big_endian_jpeg_parsed_as_a1111(tmp_path):
    comment = b'UNICODE\x00' + A1111_PARAMETERS.encode('utf-16-be')
    path = write_image(tmp_path / 'a1111.jpg', 'JPEG', exif_with(user_comment=comment))
    check(path, A1111_PROMPT, 'exif:UserComment')


def test_exif_user_comment_unicode_little_endian_webp(tmp_path):
    comment = b'UNICODE\x00' + 'a snowy owl, 雪, perched on a branch\nSteps: 30, Seed: 7'.encode('utf-16-le')
    path = write_image(tmp_path / 'le.webp', 'WEBP', exif_with(user_comment=comment))
    check(path, 'a snowy owl, 雪, perched on a branch', 'exif:UserComment')


def test_exif_user_comment_ascii_jpeg_and_png_exif(tmp_path):
    comment = b'ASCII\x00\x00\x00' + A1111_NO_NEGATIVE.encode('ascii')
    path = write_image(tmp_path / 'ascii.jpg', 'JPEG', exif_with(user_comment=comment))
    check(path, 'a red fox sleeping in the snow, golden hour', 'exif:UserComment')
    png = write_png(tmp_path / 'exif.png', exif=exif_with(user_comment=comment))
    check(png, 'a red fox sleeping in the snow, golden hour', 'exif:UserComment')


def test_exif_user_comment_jis_and_undefined(tmp_path):
    jis = b'JIS\x00\x00\x00\x00\x00' + '桜の木の下の猫'.encode('iso2022_jp')
    check(write_image(tmp_path / 'jis.jpg', 'JPEG', exif_with(user_comment=jis)), '桜の木の下の猫', 'exif:UserComment')
    undefined = b'\x00' * 8 + 'a paper boat on a puddle'.encode('utf-8')
    check(write_image(tmp_path / 'undef.jpg', 'JPEG', exif_with(user_comment=undefined)),
          'a paper boat on a puddle', 'exif:UserComment')


def test_exif_image_description(tmp_path):
    path = write_image(tmp_path / 'desc.jpg', 'JPEG', exif_with(description='a vintage car on route 66'))
    check(path, 'a vintage car on route 66', 'exif:ImageDescription')


def test_xmp_description(tmp_path):
    packet = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
              'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt>'
              '<rdf:li xml:lang="x-default">a fox &amp; a hound at dawn</rdf:li></rdf:Alt></dc:description>'
              '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    path = write_png(tmp_path / 'xmp.png', itxt=[('XML:com.adobe.xmp', packet)])
    check(path, 'a fox & a hound at dawn', 'xmp:description')
    jpeg = write_image(tmp_path / 'xmp.jpg', 'JPEG', xmp=packet.encode('utf-8'))
    check(jpeg, 'a fox & a hound at dawn', 'xmp:description')


def test_comfy_workflow_in_image_description_is_not_a_prompt(tmp_path):
    description = 'Workflow:' + json.dumps(COMFY_WORKFLOW)
    path = write_image(tmp_path / 'comfy.webp', 'WEBP', exif_with(description=description))
    result = check(path, None, 'exif:ImageDescription')
    assert 'ComfyUI graph' in result.detail
