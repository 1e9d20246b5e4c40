"""A1111 stealth PNG info (sd-webui-stealth-pnginfo): infotext hidden in the least significant bits
of a PNG's pixels (alpha, else R, G, B), read only when no other source gave a prompt.
"""

from __future__ import annotations

import warnings
import zlib
from typing import BinaryIO, Optional

import numpy as np
from PIL import Image

from .common import (_MAX_CHUNK_BYTES, _Found, _inflate, _join_notes, _Malformed, _Metadata, _parse_a1111,
                     _warnings_as_notes)

_STEALTH_SIGNATURES = {  # pixel bits read -> {15-byte signature: gzip-compressed payload}
    'alpha': {b'stealth_pnginfo': False, b'stealth_pngcomp': True},
    'RGB': {b'stealth_rgbinfo': False, b'stealth_rgbcomp': True},
}
_STEALTH_HEADER_BITS = 8 * 15 + 32  # signature, then the payload length in bits


def _parse_stealth(source: tuple[BinaryIO, _Metadata]) -> Optional[_Found]:
    """A1111 stealth PNG info in the pixels' LSBs; None (with a note) when there is none or it cannot be read."""
    fp, meta = source
    try:
        with _warnings_as_notes(meta), warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # refused below, with a note
            fp.seek(0)
            with Image.open(fp) as img:
                return _read_stealth(img, meta)
    except _Malformed:
        raise
    except Exception as err:  # noqa: BLE001 -- truncated / corrupt pixel data, decoder errors: no stealth prompt
        meta.stealth = 'pixels not decodable'
        meta.notes.append(f'stealth PNG info not read: pixels could not be decoded ({type(err).__name__}: {err})')
        return None


def _read_stealth(img: Image.Image, meta: _Metadata) -> Optional[_Found]:
    width, height = img.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        meta.stealth = 'not read, image too large'
        meta.notes.append(f'stealth PNG info not read: {width}x{height} pixels is above '
                          f'Image.MAX_IMAGE_PIXELS ({limit})')
        return None
    bands = img.getbands()
    modes = []  # (name, band indices), alpha first
    if 'A' in bands:
        modes.append(('alpha', (bands.index('A'),)))
    if all(band in bands for band in 'RGB'):
        modes.append(('RGB', tuple(bands.index(band) for band in 'RGB')))
    if not modes:
        meta.stealth = f'none possible in mode {img.mode}'
        return None
    img.load()
    for name, channels in modes:
        found = _stealth_payload(img, name, channels)
        if found is not None:
            return found
    meta.stealth = f'no signature in {" or ".join(name for name, _ in modes)} LSBs'
    return None


def _stealth_payload(img: Image.Image, name: str, channels: tuple[int, ...]) -> Optional[_Found]:
    """The payload behind one mode's signature; None when the signature is not there."""
    width, height = img.size
    capacity = width * height * len(channels) - _STEALTH_HEADER_BITS  # payload bits the image can hold
    if capacity < 0:
        return None
    header = _lsb_bytes(img, channels, _STEALTH_HEADER_BITS)
    signature, n_bits = header[:15], int.from_bytes(header[15:19], 'big')
    if signature not in _STEALTH_SIGNATURES[name]:
        return None
    tag = signature.decode('ascii')
    if n_bits > capacity:
        raise _Malformed(f'{tag}: declared payload of {n_bits} bits is more than the {capacity} bits '
                         f'the image holds after the header')
    if n_bits > 8 * _MAX_CHUNK_BYTES:
        raise _Malformed(f'{tag}: declared payload of {n_bits} bits is larger than {_MAX_CHUNK_BYTES} bytes')
    if n_bits % 8:
        raise _Malformed(f'{tag}: declared payload of {n_bits} bits is not a whole number of bytes')
    data = _lsb_bytes(img, channels, _STEALTH_HEADER_BITS + n_bits)[_STEALTH_HEADER_BITS // 8:]
    if _STEALTH_SIGNATURES[name][signature]:
        data = _inflate(data, 16 + zlib.MAX_WBITS, f'{tag} gzip payload', whole=True)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise _Malformed(f'{tag}: payload is not valid UTF-8 ({err.reason} at byte {err.start})') from None
    prompt, note = _parse_a1111(text)
    return prompt, _join_notes([f'{tag}, {name} LSBs', note])


def _lsb_bytes(img: Image.Image, channels: tuple[int, ...], n_bits: int) -> bytes:
    """The first n_bits LSBs of the given bands, column-major (x, then y, then band), packed MSB first.

    Only the columns that hold them are copied out of the image."""
    width, height = img.size
    columns = min(width, -(-n_bits // (height * len(channels))))
    pixels = np.asarray(img.crop((0, 0, columns, height)))
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    bits = pixels[:, :, list(channels)].transpose(1, 0, 2).reshape(-1)[:n_bits] & 1
    return np.packbits(bits.astype(np.uint8, copy=False)).tobytes()
