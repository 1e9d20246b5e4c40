"""EXIF and XMP values: ``UserComment`` (8-byte charset header, then A1111 infotext), ``ImageDescription``
and XMP ``dc:description`` (plain text; JSON or a ComfyUI graph there is rejected).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from typing import Optional, Union

from .common import _Found, _join_notes, _Malformed, _parse_a1111


def _parse_user_comment(value: Union[bytes, str]) -> _Found:
    text, charset = _decode_user_comment(value)
    prompt, note = _parse_a1111(text)
    return prompt, _join_notes([charset, note])


def _decode_user_comment(value: Union[bytes, str]) -> tuple[str, str]:
    """Decode UserComment by its 8-byte charset header -> (text, charset note)."""
    data = value.encode('latin-1', 'replace') if isinstance(value, str) else bytes(value)
    charset = data[:8].rstrip(b'\x00').upper()
    body = data[8:] if charset in (b'ASCII', b'UNICODE', b'JIS', b'') and len(data) >= 8 else data
    if charset == b'UNICODE':
        return _decode_utf16(body), 'UNICODE charset'
    if charset == b'JIS':
        return _decode_first(body, ('iso2022_jp', 'shift_jis', 'euc_jp')), 'JIS charset'
    return _decode_first(body, ('utf-8',)), ('ASCII charset' if charset == b'ASCII' else '')


def _decode_first(data: bytes, encodings: tuple[str, ...]) -> str:
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _Malformed(f'text is not valid {" / ".join(encodings)}')


def _decode_utf16(data: bytes) -> str:
    """UTF-16 of either byte order: BOM first, else the decoding that looks like text."""
    if data[:2] in (b'\xfe\xff', b'\xff\xfe'):
        return _decode_first(data, ('utf-16',))
    data = data[:len(data) // 2 * 2]
    big_first = data[0::2].count(0) >= data[1::2].count(0)  # ASCII in UTF-16BE: high byte first
    order = ('utf-16-be', 'utf-16-le') if big_first else ('utf-16-le', 'utf-16-be')
    decoded = []
    for encoding in order:
        try:
            decoded.append(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    if not decoded:
        raise _Malformed('UNICODE text is not valid UTF-16')
    return min(decoded, key=_oddness)  # min keeps the first on ties


def _oddness(text: str) -> int:
    return sum(1 for char in text if char not in '\t\n\r'
               and unicodedata.category(char) in ('Cc', 'Cn', 'Co', 'Cs'))


# ----------------------------------------------------------------------------- ImageDescription and XMP

def _parse_image_description(value: Union[bytes, str]) -> _Found:
    if isinstance(value, bytes):
        text = _decode_first(value, ('utf-8',))
    else:  # Pillow decodes ASCII tags as Latin-1; many writers store UTF-8 there
        try:
            text = value.encode('latin-1').decode('utf-8')
        except (UnicodeEncodeError, UnicodeDecodeError):
            text = value
    _reject_data(text)
    return text, ''


def _reject_data(text: str) -> None:
    """Structured data stored where a description belongs is not a prompt."""
    stripped = text.strip()
    if re.match(r'(prompt|workflow)\s*:\s*[{\[]', stripped, re.I):
        raise _Malformed('holds a ComfyUI graph, not a prompt (not supported outside PNG)')
    if stripped[:1] in ('{', '['):
        try:
            json.loads(stripped)
        except (ValueError, RecursionError):
            return
        raise _Malformed('holds JSON data, not a prompt')


_XMP_ATTRIBUTE = re.compile(r'\bdc:description\s*=\s*"([^"]*)"')


def _parse_xmp(value: Union[bytes, str]) -> Optional[_Found]:
    """dc:description of an XMP packet (x-default entry first); plain string search, no XML parser."""
    text = _decode_first(value, ('utf-8',)) if isinstance(value, bytes) else value
    start = text.find('<dc:description')
    if start >= 0:
        end = text.find('</dc:description>', start)
        if end < 0:
            raise _Malformed('unclosed dc:description element')
        inner = text[text.find('>', start) + 1:end]
        items = _xmp_items(inner)
        default = [body for attrs, body in items if 'x-default' in attrs]
        description = (default or [body for _, body in items] or [inner])[0]
    else:
        attribute = _XMP_ATTRIBUTE.search(text)
        if not attribute:
            return None
        description = attribute.group(1)
    description = html.unescape(description)
    if '<' in description:
        raise _Malformed('dc:description is not simple text')
    _reject_data(description)
    return description, 'dc:description'


def _xmp_items(inner: str) -> list[tuple[str, str]]:
    """(attributes, text) of each <rdf:li ...>text</rdf:li>, in a linear scan."""
    items = []
    for piece in inner.split('</rdf:li>')[:-1]:
        opened = piece.rfind('<rdf:li')
        tag_end = piece.find('>', opened)
        if opened >= 0 and tag_end >= 0:
            items.append((piece[opened:tag_end], piece[tag_end + 1:]))
    return items
