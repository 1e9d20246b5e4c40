"""Getting the metadata out of one file into ``_Metadata``: a PNG chunk walker (tEXt / zTXt / iTXt and
eXIf kept, image data skipped, bad CRCs and truncation noted), ImageMagick's raw EXIF profile, and
EXIF / XMP of other formats through a lazily opened Pillow image. Nothing here parses a prompt.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO, Optional

from PIL import Image

from ...errors import name_streams
from .common import _MAX_CHUNK_BYTES, _Malformed, _Metadata, _inflate, _warnings_as_notes

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TEXT_CHUNKS = (b'tEXt', b'zTXt', b'iTXt')
_EXIF_IFD, _USER_COMMENT, _IMAGE_DESCRIPTION = 0x8769, 0x9286, 0x010E


def _gather(fp: BinaryIO) -> _Metadata:
    meta = _Metadata()
    with _warnings_as_notes(meta):  # Pillow warns about corrupt EXIF; keep them with the result
        if fp.read(8) == _PNG_SIGNATURE:
            meta.png = True
            _scan_png(fp, meta)
            exif_bytes = meta.exif_bytes or _raw_profile_exif(meta.text.get('Raw profile type exif'))
            exif = _load_exif_bytes(exif_bytes, meta) if exif_bytes else None
            meta.xmp = meta.text.get('XML:com.adobe.xmp')
        else:
            fp.seek(0)
            exif = _pillow_metadata(fp, meta)
        if exif is not None:
            meta.has_exif = len(exif) > 0
            _exif_fields(exif, meta)
    return meta


# ----------------------------------------------------------------------------- PNG chunks

def _scan_png(fp: BinaryIO, meta: _Metadata) -> None:
    """Walk PNG chunks, keeping text chunks and eXIf; image data is skipped, not read."""
    while True:
        head = fp.read(8)
        if len(head) < 8:
            meta.notes.append('PNG file truncated (no IEND chunk); chunks before the cut were read')
            return
        length, ctype = struct.unpack('>I4s', head)
        if ctype == b'IEND':
            return
        wanted = ctype in _TEXT_CHUNKS or ctype == b'eXIf'
        if not wanted or length > _MAX_CHUNK_BYTES:
            if wanted:
                meta.notes.append(f'{ctype.decode("latin-1")} chunk of {length} bytes skipped (too large)')
            fp.seek(length + 4, os.SEEK_CUR)
            continue
        if not _read_png_chunk(fp, ctype, length, meta):
            return


def _read_png_chunk(fp: BinaryIO, ctype: bytes, length: int, meta: _Metadata) -> bool:
    data, crc = fp.read(length), fp.read(4)
    name = ctype.decode('latin-1')
    if len(data) < length or len(crc) < 4:
        meta.notes.append(f'PNG file truncated inside a {name} chunk; chunks before it were read')
        return False
    if zlib.crc32(ctype + data) != int.from_bytes(crc, 'big'):
        meta.notes.append(f'{name} chunk skipped (bad CRC)')
    elif ctype == b'eXIf':
        meta.exif_bytes = meta.exif_bytes or data
    else:
        try:
            keyword, text = _decode_text_chunk(ctype, data)
        except _Malformed as err:
            meta.notes.append(f'{name} chunk skipped ({err})')
        else:
            meta.text.setdefault(keyword, text)
    return True


def _decode_text_chunk(ctype: bytes, data: bytes) -> tuple[str, str]:
    keyword, sep, rest = data.partition(b'\x00')
    if not sep or not 1 <= len(keyword) <= 79:
        raise _Malformed('no valid keyword')
    name = keyword.decode('latin-1')
    if ctype == b'tEXt':
        return name, _utf8_or_latin1(rest)
    if ctype == b'zTXt':
        if rest[:1] != b'\x00':
            raise _Malformed(f"'{name}': unknown compression method")
        return name, _utf8_or_latin1(_inflate(rest[1:]))
    flag, method, parts = rest[:1], rest[1:2], rest[2:].split(b'\x00', 2)
    if len(parts) < 3 or flag not in (b'\x00', b'\x01') or (flag == b'\x01' and method != b'\x00'):
        raise _Malformed(f"'{name}': malformed iTXt header")
    text = _inflate(parts[2]) if flag == b'\x01' else parts[2]
    try:
        return name, text.decode('utf-8')
    except UnicodeDecodeError as err:
        raise _Malformed(f"'{name}': iTXt text is not valid UTF-8 ({err.reason} at byte {err.start})") from None


def _utf8_or_latin1(data: bytes) -> str:
    """tEXt / zTXt are Latin-1 by the spec, but many tools write UTF-8: accept both."""
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return data.decode('latin-1')


# ----------------------------------------------------------------------------- EXIF and XMP

def _raw_profile_exif(text: Optional[str]) -> Optional[bytes]:
    """ImageMagick's 'Raw profile type exif' text: '\\nexif\\n   LENGTH\\nHEX...'."""
    if not text:
        return None
    try:
        return bytes.fromhex(''.join(text.split('\n')[3:]))
    except ValueError:
        return None


def _load_exif_bytes(data: bytes, meta: _Metadata) -> Optional[Image.Exif]:
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception as err:  # noqa: BLE001 -- any parse failure of foreign bytes is a note, not a crash
        meta.notes.append(f'EXIF unreadable ({type(err).__name__}: {err})')
        return None
    return exif


def _pillow_metadata(fp: BinaryIO, meta: _Metadata) -> Optional[Image.Exif]:
    """Open a non-PNG file lazily (no pixel decoding) and return its EXIF; sets meta.xmp."""
    try:
        img = Image.open(fp)
        meta.xmp = img.info.get('xmp')
        return img.getexif()
    except Exception as err:  # noqa: BLE001 -- not an image / corrupt header / decompression bomb: no prompt
        name = getattr(fp, 'name', None)
        text = name_streams(str(err), repr(os.fspath(name)) if isinstance(name, (str, os.PathLike)) else '')
        meta.notes.append(f'Pillow could not read the file ({type(err).__name__}: {text})')
        return None


def _exif_fields(exif: Image.Exif, meta: _Metadata) -> None:
    try:
        comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except Exception as err:  # noqa: BLE001 -- a corrupt Exif IFD only loses UserComment
        meta.notes.append(f'Exif IFD unreadable ({type(err).__name__}: {err})')
        comment = None
    if comment is None:
        comment = exif.get(_USER_COMMENT)  # some writers put it in IFD0
    if comment is not None:
        meta.exif['UserComment'] = comment
    if exif.get(_IMAGE_DESCRIPTION) is not None:
        meta.exif['ImageDescription'] = exif.get(_IMAGE_DESCRIPTION)
