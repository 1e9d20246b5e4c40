"""Reading images the same way everywhere (datasets, command-line scorer).

Every image becomes an 8-bit RGB PIL image; odd modes are converted consistently:

- grey ``L`` / ``LA`` / 1-bit ``1``: grey replicated to three channels;
- 16-bit and 32-bit integer modes (``I;16``, ``I;16B``, ``I``): scaled by 255 / 65535
  (PIL's own ``convert('RGB')`` would clip them to white);
- float ``F``: taken as [0, 1] when its maximum is <= 1, else as [0, 255];
- alpha (``RGBA``, ``LA``, ``PA``, palette with transparency): composited over white;
- ``CMYK``, ``YCbCr``, palette ``P``: PIL's conversion;
- EXIF orientation (camera / phone photos, some editors) is applied, so an image is scored
  the way viewers show it (PIL alone would give the stored, possibly rotated, pixels).

Unreadable files raise :class:`ImageReadError`, which names the file.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, Image.Image, BinaryIO]


class ImageReadError(OSError):
    """An image file is missing, not an image, corrupt or of an unsupported mode."""


def _to_8bit_grey(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == 'F':
        arr = arr * 255.0 if arr.max(initial=0.0) <= 1.0 else arr
    else:  # 16-bit or 32-bit integers stored from 16-bit sources
        arr = arr * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode='L')


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any supported mode to 8-bit RGB (rules in the module doc)."""
    if img.mode == 'RGB':
        return img
    if img.mode.startswith('I') or img.mode == 'F':
        return _to_8bit_grey(img).convert('RGB')
    if img.mode == 'P' and 'transparency' in img.info:
        img = img.convert('RGBA')
    if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        rgba = img.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return img.convert('RGB')


def load_rgb(source: ImageSource, name: Optional[str] = None) -> Image.Image:
    """Open and fully decode an image (a path, an open binary file or a PIL image) as 8-bit RGB,
    or raise ImageReadError naming it (``name``: how to name a file object in the error)."""
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if hasattr(source, 'read'):
        name = name or getattr(source, 'name', 'image stream')
    else:
        source = name = os.fspath(source)
        if not os.path.isfile(source):
            raise ImageReadError(f'Image file not found: {source}')
    try:
        with Image.open(source) as img:
            img.load()
            return to_rgb(ImageOps.exif_transpose(img))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageReadError(f'Cannot read image {name}: {error}') from error


def probe_image(path: str) -> str:
    """Return '' if ``path`` is an existing file with an image header, else the reason."""
    if not os.path.isfile(path):
        return 'missing'
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as error:  # noqa: BLE001 - any failure means "unreadable"
        return f'unreadable ({type(error).__name__}: {error})'
    return ''
