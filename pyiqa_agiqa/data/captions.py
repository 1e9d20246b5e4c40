"""Sidecar captions, and the prompt of an image file: its embedded generator metadata, else
its sidecar caption.

A sidecar caption is a text file next to the image with the image's name and another suffix:
``image.txt``, then ``image.caption`` for ``image.png`` (the convention of training sets, e.g.
kohya's ``caption_extension``). Its prompt is the text as written, decoded as UTF-8 (a BOM
dropped), less the one line end that closes a text file (the rule of
:func:`pyiqa_agiqa.scoring.contract.prompt_from_caption_file`); an empty or all-whitespace
file, invalid UTF-8 or more than :data:`MAX_PROMPT_CHARS` characters is not a prompt (noted in
``detail``, the next suffix is tried).

Results are :class:`~pyiqa_agiqa.data.embedded_prompts.EmbeddedPrompt`; a caption's ``source``
is ``caption:txt`` / ``caption:caption``. (``caption`` alone names prompts an input listing
gives; a sidecar caption is read with the image, like its metadata.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .embedded_prompts import MAX_PROMPT_CHARS, EmbeddedPrompt, PathLike, read_embedded_prompt

__all__ = ['CAPTION_SUFFIXES', 'caption_paths', 'caption_prompt', 'read_caption', 'read_image_prompt', 'with_caption']

CAPTION_SUFFIXES = ('.txt', '.caption')
_MAX_BYTES = 3 + 4 * MAX_PROMPT_CHARS + 2  # a BOM, the longest prompt in UTF-8, CR LF


def caption_paths(image: PathLike) -> list:
    """The sidecar caption files of ``image``, in the order they are tried."""
    path = Path(os.fspath(image))
    return [path.with_suffix(suffix) for suffix in CAPTION_SUFFIXES]


def caption_prompt(text: str) -> Optional[str]:
    """A caption file's prompt: ``text`` less one closing line end; None when only whitespace."""
    for end in ('\r\n', '\n'):
        if text.endswith(end):
            text = text[:-len(end)]
            break
    return text if text.strip() else None


def _read_one(path: Path) -> tuple:
    """(prompt or None, note) of one caption file that exists."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as error:
        return None, f"sidecar caption '{path.name}' skipped: cannot be read ({error.strerror or error})"
    if len(data) > _MAX_BYTES:
        return None, f"sidecar caption '{path.name}' skipped: more than {MAX_PROMPT_CHARS} characters"
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        return None, f"sidecar caption '{path.name}' skipped: invalid UTF-8 at byte {error.start}"
    prompt = caption_prompt(text)
    if prompt is None:
        return None, f"sidecar caption '{path.name}' skipped: empty"
    if len(prompt) > MAX_PROMPT_CHARS:
        return None, f"sidecar caption '{path.name}' skipped: more than {MAX_PROMPT_CHARS} characters"
    return prompt, f"sidecar caption file '{path.name}'"


def read_caption(image: PathLike) -> EmbeddedPrompt:
    """The prompt of ``image``'s sidecar caption (``image.txt``, then ``image.caption``).

    ``prompt`` is None when no caption file holds a usable prompt; ``source`` then names the
    first unusable caption file's kind, or is ``none`` when there is no caption file."""
    notes, unusable = [], None
    for path in caption_paths(image):
        if not path.is_file():
            continue
        prompt, note = _read_one(path)
        source = f'caption:{path.suffix[1:]}'
        if prompt is not None:
            return EmbeddedPrompt(prompt, source, '; '.join([note] + notes))
        notes.append(note)
        unusable = unusable or source
    names = ', '.join(p.name for p in caption_paths(image))
    return EmbeddedPrompt(None, unusable or 'none', '; '.join(notes) or f'no sidecar caption ({names})')


def with_caption(image: PathLike, embedded: EmbeddedPrompt) -> EmbeddedPrompt:
    """``embedded`` (what :func:`read_embedded_prompt` found in ``image``) if it holds a prompt,
    else ``image``'s sidecar caption; with neither, the result's ``detail`` says what was tried."""
    if embedded.prompt is not None:
        return embedded
    caption = read_caption(image)
    if caption.prompt is not None:
        return caption
    source = caption.source if embedded.source == 'none' else embedded.source
    return EmbeddedPrompt(None, source, f'{embedded.detail}; {caption.detail}')


def read_image_prompt(image: PathLike) -> EmbeddedPrompt:
    """The prompt of an image file: its embedded generator metadata (see
    :mod:`pyiqa_agiqa.data.embedded_prompts`), else its sidecar caption.

    Raises FileNotFoundError / OSError naming the path when the image cannot be read."""
    return with_caption(image, read_embedded_prompt(image))
