"""Rows to score: (image, prompt, prompt source) from an image, a folder or a CSV list, and
the reading of one row (its image bytes decoded, its prompt given or read from the file)."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import pandas as pd
from PIL import Image

from pyiqa.utils.img_util import is_image_file

from ..data.image_io import ImageReadError, load_rgb
from ..prompt_args import PromptError
from .contract import ScoringInputError, prompt_from_cell

__all__ = ['Row', 'ScoringInputError', 'open_image_file', 'read_row', 'rows_from_csv', 'rows_from_target',
           'scan_images']


class LinkOutsideWarning(UserWarning):
    """A folder scan met symbolic links whose targets lie outside the folder (not scored)."""


@dataclass
class Row:
    """One image to score. ``error`` is set when it cannot be scored."""
    image: str
    prompt: Optional[str]
    prompt_source: str
    error: str = ''


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def scan_images(folder: str) -> Tuple[List[str], List[str]]:
    """The image files under ``folder`` (sorted), each file once, and the links that were skipped.

    Symbolic links are followed while their targets lie inside ``folder`` (after resolving every
    link): a file reached by several paths (a link to a file of the folder, a linked sub-folder)
    is listed once, under its first path in sorted order, and a link back to a folder already
    walked (``loop -> .``, ``sub/up -> ..``) is not walked again, so a scan always ends. A link
    whose target is outside ``folder`` (file or folder) is not followed: it is returned in the
    second list (the caller says so), never scored silently."""
    root = os.path.realpath(folder)
    walked, outside, found = set(), [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in walked or not _inside(real, root):
            if not _inside(real, root):
                outside.append(dirpath)
            dirnames[:] = []
            continue
        walked.add(real)
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            if is_image_file(name):
                target = os.path.realpath(path)
                if _inside(target, root):
                    found.append((path, target))
                else:
                    outside.append(path)
    listed, paths = set(), []
    for path, target in sorted(found):
        if target not in listed:
            listed.add(target)
            paths.append(path)
    return paths, sorted(outside)


def rows_from_target(target: str, prompt: Optional[str] = None) -> List[Row]:
    """Rows for an image file or every image of a folder (:func:`scan_images`: sorted, each
    file once, links outside the folder skipped with a :class:`LinkOutsideWarning`); without
    ``prompt`` each image's embedded prompt is used (see :func:`read_row`). ``prompt`` is kept
    byte-exact."""
    if prompt is not None and not str(prompt).strip():
        raise PromptError('--prompt is empty; give the generation prompt, or leave --prompt out to read each '
                          "image's own embedded prompt")
    source = 'argument' if prompt is not None else ''
    if os.path.isdir(target):
        paths, outside = scan_images(target)
        if outside:
            shown = ', '.join(outside[:3]) + (f' and {len(outside) - 3} more' if len(outside) > 3 else '')
            warnings.warn(f'{len(outside)} symbolic link(s) in {target} point outside it and are not scored: {shown} '
                          '(copy the files into the folder, or list them in a --csv)', LinkOutsideWarning,
                          stacklevel=2)
        if not paths:
            raise ScoringInputError(f'no image files in folder {target}')
        return [Row(str(p), prompt, source) for p in paths]
    if not os.path.exists(target):
        raise ScoringInputError(f"no such file or folder: '{target}' (give an image, a folder of images or --csv)")
    return [Row(str(target), prompt, source)]


def rows_from_csv(csv_path: str) -> List[Row]:
    """Rows from a CSV with an ``image`` column and an optional ``prompt`` column (its cells
    byte-exact, :func:`.contract.prompt_from_cell`; an empty cell: the image's own prompt)."""
    if not os.path.isfile(csv_path):
        raise ScoringInputError(f"no such CSV file: '{csv_path}'")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if 'image' not in table.columns:
        raise ScoringInputError(f"{csv_path}: missing column(s) ['image']; found {list(table.columns)} "
                                '(columns: image, and optionally prompt)')
    base = Path(csv_path).resolve().parent
    prompts = table['prompt'] if 'prompt' in table.columns else [''] * len(table)
    rows = []
    for path, cell in zip(table['image'], prompts):
        prompt = prompt_from_cell(cell)
        rows.append(Row(str(path if os.path.isabs(path) else base / path), prompt, 'csv' if prompt else ''))
    return rows


def open_image_file(image: str, data: Optional[bytes] = None) -> io.BytesIO:
    """The bytes of ``image`` (a local path, or any URI pyarrow's filesystems read; ``data``:
    bytes already read, e.g. from a tar shard), read once."""
    if data is not None:
        return io.BytesIO(data)
    if '://' in image:
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(image)
        with fs.open_input_file(path) as handle:
            return io.BytesIO(handle.read())
    with open(image, 'rb') as handle:
        return io.BytesIO(handle.read())


def read_row(image: str, prompt: Optional[str], prompt_source: str, data: Optional[bytes] = None
             ) -> Tuple[Optional[str], str, Optional[Image.Image], str]:
    """One image file, read once, as both engines read it: the prompt embedded in it where the
    row has none (A1111, ComfyUI, InvokeAI, NovelAI, EXIF, XMP; see data/embedded_prompts/),
    else its sidecar caption (image.txt / image.caption, local files; data/captions.py),
    then its pixels as 8-bit RGB (:func:`load_rgb`: EXIF orientation, 16-bit, alpha).

    Returns (prompt, prompt_source, picture or None, error); a missing or broken file, or no
    prompt anywhere, is the error, never an exception."""
    from ..data.captions import with_caption
    from ..data.embedded_prompts import read_embedded_prompt

    try:
        stream = open_image_file(image, data)
    except OSError as error:
        return prompt, prompt_source, None, ('missing file' if isinstance(error, FileNotFoundError)
                                             else f'unreadable file: {error}')
    if not prompt:
        try:
            found = read_embedded_prompt(stream)
            if found.prompt is None and data is None and '://' not in image:  # else image.txt / image.caption
                found = with_caption(image, found)
        except Exception as error:  # noqa: BLE001 - the reader names what it can; never abort the run
            reason = f'{type(error).__name__}: {error}'
            return None, '', None, f'no prompt: the metadata of {image} cannot be read ({reason})'
        if found.prompt is None:
            return None, '', None, (f'no prompt: {found.detail}; give --prompt or a prompt column'
                                    if found.source == 'none'
                                    else f'no usable prompt in {found.source}: {found.detail}')
        prompt, prompt_source = found.prompt, found.source
        stream.seek(0)
    try:
        return prompt, prompt_source, load_rgb(stream, name=image), ''
    except ImageReadError as error:
        return prompt, prompt_source, None, str(error)
    except Exception as error:  # noqa: BLE001 - one hostile file must not end the run: it is its row's error
        return prompt, prompt_source, None, f'Cannot read image {image}: {type(error).__name__}: {error}'
