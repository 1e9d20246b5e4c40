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

Unreadable files raise :class:`ImageReadError`, which names the file: a missing file, data
that is no image, a truncated or corrupt one, any exception a decoder plugin raises, running
out of memory, and an image declaring more pixels than the limit. The limit is PIL's
decompression-bomb limit, ``Image.MAX_IMAGE_PIXELS`` (89,478,485 pixels, e.g. 9459 x 9459, by
default), enforced strictly: PIL itself only warns up to twice that. :func:`set_max_pixels`
changes it for the process (``--max-pixels`` on the command line of ``score``), and a training
dataset's option ``max_pixels`` for that dataset's reads (:func:`pixel_limit`); the header is
checked before any pixel is decoded, so a 1.5 MB PNG declaring 40000 x 40000 pixels costs nothing.
An error names the file (a stream is named by the name given, never by its ``<_io.BytesIO ...>``).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from typing import BinaryIO, Iterator, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import AGIQAError, name_streams

ImageSource = Union[str, os.PathLike, Image.Image, BinaryIO]
LIMIT_FIX = '--max-pixels N (pyiqa_agiqa.data.image_io.set_max_pixels)'  # how to raise the limit, in errors


class ImageReadError(AGIQAError, OSError):
    """An image file is missing, not an image, corrupt, too large or of an unsupported mode."""


def set_max_pixels(limit: Optional[int]) -> None:
    """Refuse images of more than ``limit`` pixels in this process (PIL's
    ``Image.MAX_IMAGE_PIXELS``, which worker processes inherit when forked); None or 0: no
    limit (not recommended for files from elsewhere)."""
    if limit is not None and limit < 0:
        raise ValueError(f'the pixel limit must be >= 0 (0: none), got {limit}')
    Image.MAX_IMAGE_PIXELS = int(limit) if limit else None


@contextlib.contextmanager
def pixel_limit(limit: Optional[int]) -> Iterator[None]:
    """Reads inside the block refuse images of more than ``limit`` pixels (0: no limit; None:
    the process's limit, unchanged); the previous limit is restored after. The limit is PIL's
    process-wide ``Image.MAX_IMAGE_PIXELS``: this is for a process's own sequential reads (a
    training dataset's, in the training process or a loader worker), not for reads that other
    threads make at the same time."""
    if limit is None:
        yield
        return
    saved = Image.MAX_IMAGE_PIXELS
    set_max_pixels(limit)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(size, name: str, fix: str = LIMIT_FIX) -> None:
    """Raise ImageReadError if an image of ``size`` (width, height) exceeds the pixel limit."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = int(size[0]) * int(size[1])
    if limit and pixels > limit:
        raise _too_large(name, f'{size[0]} x {size[1]} = {pixels:,}', limit, fix)


def _too_large(name: str, pixels: str, limit: int, fix: str = LIMIT_FIX) -> ImageReadError:
    return ImageReadError(f'Cannot read image {name}: it declares {pixels} pixels, more than the limit of '
                          f'{limit:,} (a decompression bomb?); if the image is genuine, raise the limit with {fix}')


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


@contextlib.contextmanager
def open_within_limit(source, name: str, fix: str = LIMIT_FIX) -> Iterator[Image.Image]:
    """``Image.open(source)`` (lazy: the header only) of an image within the pixel limit, else
    :class:`ImageReadError` naming ``name`` (PIL's own bomb error, raised on opening beyond twice
    its limit, included) and ``fix``, the way to raise the limit where the caller reads."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # refused by check_pixels instead
            img = Image.open(source)
    except Image.DecompressionBombError as error:
        found = re.search(r'\((\d+) pixels\)', str(error))
        raise _too_large(name, f'{int(found.group(1)):,}' if found else 'too many', Image.MAX_IMAGE_PIXELS,
                         fix) from None
    with img:
        check_pixels(img.size, name, fix)
        yield img


def load_rgb(source: ImageSource, name: Optional[str] = None, fix: str = LIMIT_FIX) -> Image.Image:
    """Open and fully decode an image (a path, an open binary file or a PIL image) as 8-bit RGB,
    or raise ImageReadError naming it (``name``: how to name a file object in the error; ``fix``:
    how to raise the pixel limit)."""
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if hasattr(source, 'read'):
        name = name or getattr(source, 'name', 'image stream')
    else:
        source = name = os.fspath(source)
        if not os.path.isfile(source):
            raise ImageReadError(f'Image file not found: {source}')
    try:
        with open_within_limit(source, name, fix) as img:
            img.load()
            return to_rgb(ImageOps.exif_transpose(img))
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        # PIL names a stream by its repr (<_io.BytesIO object at 0x...>): name the file instead
        raise ImageReadError(f'Cannot read image {name}: {name_streams(str(error), repr(name))}') from error
    except MemoryError:
        raise ImageReadError(f'Cannot read image {name}: out of memory while decoding it') from None
    except Exception as error:  # noqa: BLE001 - a decoder plugin may raise anything: name the file
        raise ImageReadError(f'Cannot read image {name}: {type(error).__name__}: '
                             f'{name_streams(str(error), repr(name))}') from error


def probe_image(path: str, fix: str = LIMIT_FIX) -> str:
    """Return '' if ``path`` is an existing file with an image header within the pixel limit,
    else the reason (``fix``: how to raise the limit, for an image over it)."""
    if not os.path.isfile(path):
        return 'missing'
    try:
        with open_within_limit(path, path, fix) as img:
            img.verify()
    except ImageReadError as error:
        return f"too large ({str(error).split(': ', 1)[1]})"
    except Exception as error:  # noqa: BLE001 - any failure means "unreadable"
        return f'unreadable ({type(error).__name__}: {error})'
    return ''
