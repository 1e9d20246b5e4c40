"""What every source of embedded prompts shares: the result type (:class:`EmbeddedPrompt`), the
metadata gathered from one file (``_Metadata``), the errors a parser raises for an unusable
source, the size caps, small JSON / zlib / note helpers, and the A1111 infotext grammar, which
the ``parameters`` chunk, EXIF ``UserComment`` and stealth PNG info payloads all use.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]
_Found = Tuple[Any, str]  # (raw prompt, note for detail), from every parser

MAX_PROMPT_CHARS = 20_000
_MAX_CHUNK_BYTES = 32 * 1024 * 1024
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


@dataclass(frozen=True)
class EmbeddedPrompt:
    """A prompt read from an image file's metadata.

    Attributes:
        prompt (Optional[str]): the positive prompt, stripped; None when none was usable.
        source (str): where it came from: ``png:parameters``, ``png:comfyui``, ``png:invokeai``,
            ``png:novelai``, ``exif:UserComment``, ``exif:ImageDescription``,
            ``xmp:description``, ``png:stealth`` (pixel LSBs, tried last), or ``none``.
        detail (str): human-readable notes: which chunk or node, why a source was rejected,
            or what was looked at.

    Example:
        ``EmbeddedPrompt('a cat on a mat', 'png:parameters', "'parameters' PNG text chunk")``
    """

    prompt: Optional[str]
    source: str
    detail: str = ''


class _Malformed(Exception):
    """A metadata source is present but holds no usable prompt; the message says why."""


class _Empty(_Malformed):
    """A source holds only whitespace: noted in ``detail``, but not reported as ``source``."""


@dataclass
class _Metadata:
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks, keyword -> text
    exif: dict[str, Union[str, bytes]] = field(default_factory=dict)  # 'UserComment' / 'ImageDescription'
    xmp: Optional[Union[str, bytes]] = None
    exif_bytes: Optional[bytes] = None
    has_exif: bool = False
    notes: list[str] = field(default_factory=list)
    png: bool = False  # the file has the PNG signature: stealth PNG info may be looked for
    stealth: Optional[str] = None  # what looking at the pixel bits found, for detail; None: not looked


# ----------------------------------------------------------------------------- helpers

def _join_notes(notes: list[str]) -> str:
    return '; '.join(note for note in notes if note)


@contextmanager
def _warnings_as_notes(meta: _Metadata) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        yield
    for message in dict.fromkeys(str(warning.message).strip() for warning in caught):
        meta.notes.append(f'Pillow warning: {message}')


def _inflate(data: bytes, wbits: int = zlib.MAX_WBITS, what: str = 'text', whole: bool = False) -> bytes:
    """zlib (gzip with wbits=16 + MAX_WBITS) data inflated, at most _MAX_CHUNK_BYTES; whole: no truncation."""
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, _MAX_CHUNK_BYTES + 1)
    except zlib.error as err:
        raise _Malformed(f'compressed {what} is corrupt ({err})') from None
    if len(out) > _MAX_CHUNK_BYTES:
        raise _Malformed(f'decompressed {what} larger than {_MAX_CHUNK_BYTES} bytes')
    if whole and not inflater.eof:
        raise _Malformed(f'compressed {what} is truncated')
    return out


def _json_object(text: str, what: str = 'JSON object') -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _Malformed(f'invalid JSON ({err})') from None
    except RecursionError:
        raise _Malformed('invalid JSON (nested too deeply)') from None
    if not isinstance(data, dict):
        raise _Malformed(f'not a {what} ({type(data).__name__})')
    return data


def _join_distinct(texts: Iterable[Optional[str]]) -> str:
    kept = []
    for text in texts:
        if isinstance(text, str) and text.strip() and text.strip() not in kept:
            kept.append(text.strip())
    return '\n'.join(kept)


# ----------------------------------------------------------------------------- A1111 infotext

def _parse_a1111(text: str) -> _Found:
    """A1111 infotext: prompt lines, optional 'Negative prompt:' line(s), final 'Steps: ' line."""
    stripped = text.strip()
    if stripped.startswith('{'):
        from_json = _prompt_from_json_object(stripped)
        if from_json is not None:
            return from_json, 'JSON prompt field'
    lines = re.split(r'\r?\n', stripped)
    steps = [i for i, line in enumerate(lines) if line.lstrip().startswith('Steps: ')]
    if steps:
        lines = lines[:steps[-1]]
    negative = [i for i, line in enumerate(lines) if line.lstrip().startswith('Negative prompt:')]
    if negative:
        lines = lines[:negative[0]]
    return '\n'.join(lines), ''


def _prompt_from_json_object(text: str) -> Optional[str]:
    """The 'prompt' of Fooocus / SwarmUI JSON parameters, or None when text is not such JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get('sui_image_params'), dict):
        data = data['sui_image_params']
    if isinstance(data, dict) and isinstance(data.get('prompt'), str):
        return data['prompt']
    return None
