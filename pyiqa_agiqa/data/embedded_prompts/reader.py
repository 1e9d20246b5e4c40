"""Reading the generation prompt that image generators embed in their output files.

When images are scored without prompts, the prompt is taken from the file itself. Sources are
tried in this order; the first one that yields a usable prompt wins (``source`` tag, then the
raw format with a one-line example):

1. ``png:parameters`` -- AUTOMATIC1111 / Forge / SD.Next / Fooocus (A1111 mode) ``parameters``
   text chunk: ``a cat\\nNegative prompt: blurry\\nSteps: 20, Sampler: Euler a, Seed: 1``.
   The prompt is everything before the ``Negative prompt:`` line, else before the final
   ``Steps: `` line, else the whole text. A JSON object with a ``prompt`` field (Fooocus'
   own scheme, SwarmUI's ``sui_image_params``) is also accepted.
2. ``png:comfyui`` -- ComfyUI ``prompt`` chunk (API graph)
   ``{"3": {"class_type": "KSampler", "inputs": {"positive": ["6", 0], ...}}, "6": ...}``:
   the positive conditioning of the first sampler (by node id) is followed back through
   conditioning nodes to the text encoder(s); negative inputs are never followed. Texts of
   several encoders (ConditioningCombine) and SDXL ``text_g`` / ``text_l`` (text_g first) are
   joined with newlines when distinct; a text linked from a primitive / string node is
   followed. Other samplers with a different prompt are counted in ``detail``. Falls back
   to the ``workflow`` chunk (UI graph) ``{"nodes": [{"id": 6, "type": "CLIPTextEncode",
   "widgets_values": ["a cat"], ...}], "links": [[4, 6, 0, 3, 1, "CONDITIONING"], ...]}``.
3. ``png:invokeai`` -- ``invokeai_metadata`` ``{"positive_prompt": "a cat", ...}``, then the
   older ``sd-metadata`` ``{"image": {"prompt": [{"prompt": "a cat", "weight": 1.0}]}}`` and
   ``Dream`` ``"a cat [blurry]" -s 50 -S 42``; in the two old formats ``[...]`` groups are
   negative prompts and are removed.
4. ``png:novelai`` -- NovelAI ``Description`` chunk ``a cat, best quality`` (any PNG
   ``Description`` chunk is taken), then the ``Comment`` JSON
   ``{"prompt": "a cat", "uc": "blurry", "steps": 28, ...}`` (a non-JSON comment is ignored).
5. ``exif:UserComment`` -- EXIF tag 0x9286 in the Exif IFD (A1111 JPEG / WebP), an 8-byte
   charset header then the text: ``b'UNICODE\\0' + 'a cat...'.encode('utf-16-be')``; ASCII,
   UNICODE (UTF-16, big- or little-endian), JIS and undefined headers. Parsed like 1.
6. ``exif:ImageDescription`` -- EXIF tag 0x010E in IFD0: ``a cat on a mat`` (JSON, such as
   the ``workflow:{...}`` ComfyUI writes into WebP files, is rejected, not parsed).
7. ``xmp:description`` -- ``<dc:description><rdf:Alt><rdf:li xml:lang="x-default">a cat
   </rdf:li></rdf:Alt></dc:description>`` in an XMP packet.
8. ``png:stealth`` -- AUTOMATIC1111 "stealth PNG info" (sd-webui-stealth-pnginfo, for sites
   that strip text chunks), PNG only and tried last: the infotext of 1 hidden in the least
   significant bits of the pixels, read column by column (``for x: for y:``), bytes MSB
   first. With alpha (RGBA / LA), one bit per pixel from alpha: the 15-byte signature
   ``stealth_pnginfo`` (UTF-8) or ``stealth_pngcomp`` (gzip), a 32-bit big-endian payload
   length in bits, then the payload. Otherwise (or when alpha holds no signature) three bits
   per pixel from R, G, B, as one stream: ``stealth_rgbinfo`` / ``stealth_rgbcomp``, the length,
   the payload. Parsed like 1.

Nothing found gives ``source='none'`` and a ``detail`` listing what was looked at. A source
that is present but unusable (broken JSON, invalid UTF-8, a prompt longer than
:data:`MAX_PROMPT_CHARS` characters) is skipped; if no later source succeeds, the result
names the first such source with ``prompt=None`` and the reason in ``detail``. Empty or
whitespace-only values are skipped too, but count as absent (``none``, noted in ``detail``).

PNG chunks are read by a small chunk walker (pixel data is skipped; text chunks after the
image data and truncated files are handled); other formats are opened lazily with Pillow for
their EXIF and XMP. Pixels are decoded (Pillow, then numpy) only for a PNG in which no other
source gave a usable prompt, to look for stealth PNG info; an image above Pillow's
``Image.MAX_IMAGE_PIXELS`` is not decoded, and a decoding error is a note in ``detail``.
Payloads and decompressed data are capped at 32 MiB. Nothing from the file is executed. Only
a missing or unreadable file raises (``FileNotFoundError`` / ``PermissionError`` / ``OSError``
naming the path).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Callable, Iterable, Optional

from .comfyui import _parse_comfy_api, _parse_comfy_workflow
from .common import (_PARSE_ERRORS, MAX_PROMPT_CHARS, EmbeddedPrompt, PathLike, _Empty, _Found, _join_notes,
                     _Malformed, _Metadata, _parse_a1111)
from .containers import _gather
from .exif_xmp import _parse_image_description, _parse_user_comment, _parse_xmp
from .invokeai import _parse_dream, _parse_invoke_metadata, _parse_invoke_sd_metadata
from .novelai import _parse_novelai_comment, _parse_novelai_description
from .stealth import _parse_stealth

_PNG_PARSERS: tuple = (  # (source tag, PNG text keyword, parser), in order of precedence
    ('png:parameters', 'parameters', _parse_a1111),
    ('png:comfyui', 'prompt', _parse_comfy_api),
    ('png:comfyui', 'workflow', _parse_comfy_workflow),
    ('png:invokeai', 'invokeai_metadata', _parse_invoke_metadata),
    ('png:invokeai', 'sd-metadata', _parse_invoke_sd_metadata),
    ('png:invokeai', 'Dream', _parse_dream),
    ('png:novelai', 'Description', _parse_novelai_description),
    ('png:novelai', 'Comment', _parse_novelai_comment),
)


# ----------------------------------------------------------------------------- public API

def read_embedded_prompt(path: PathLike) -> EmbeddedPrompt:
    """Read the generation prompt embedded in one image file.

    Args:
        path (str | os.PathLike | BinaryIO): image file (PNG, JPEG, WebP, or anything Pillow
            opens), or a seekable binary file object holding one.

    Returns:
        EmbeddedPrompt: ``prompt`` is None when nothing usable was found.

    Raises:
        FileNotFoundError / PermissionError / OSError: the file is missing or unreadable
            (the message names the path).

    Example:
        >>> read_embedded_prompt('a1111.png')  # doctest: +SKIP
        EmbeddedPrompt(prompt='a cat on a mat', source='png:parameters', detail=...)
    """
    if hasattr(path, 'read'):  # an open binary file (e.g. io.BytesIO of an image from a tar shard)
        return _choose(_gather(path), path)
    path = os.fspath(path)
    with open(path, 'rb') as fp:  # kept open: the pixels are decoded if only stealth PNG info is left
        return _choose(_gather(fp), fp)


def read_embedded_prompts(paths: Iterable[PathLike], progress: bool = False) -> list[EmbeddedPrompt]:
    """Read the embedded prompts of many files, in order (see :func:`read_embedded_prompt`).

    Args:
        paths (Iterable[str | os.PathLike]): image files.
        progress (bool): show a tqdm progress bar.

    Returns:
        list[EmbeddedPrompt]: one per path.

    Example:
        >>> [p.prompt for p in read_embedded_prompts(['a.png', 'b.jpg'])]  # doctest: +SKIP
        ['a cat on a mat', None]
    """
    paths = list(paths)
    if progress:
        from tqdm import tqdm
        paths = tqdm(paths, desc='reading embedded prompts', unit='image')
    return [read_embedded_prompt(path) for path in paths]


# ----------------------------------------------------------------------------- choosing

def _choose(meta: _Metadata, fp: Optional[BinaryIO] = None) -> EmbeddedPrompt:
    failures = []
    for source, label, raw, parser in _attempts(meta, fp):  # parsers run lazily, in order
        try:
            found = parser(raw)
            if found is None:
                continue
            prompt = _clean(found[0])
        except _Malformed as err:
            failures.append((source, f'{source} skipped, {label}: {err}', isinstance(err, _Empty)))
            continue
        except _PARSE_ERRORS as err:
            reason = f'unexpected structure ({type(err).__name__}: {err})'
            failures.append((source, f'{source} skipped, {label}: {reason}', False))
            continue
        head = label + (f' ({found[1]})' if found[1] else '')
        return EmbeddedPrompt(prompt, source, _join_notes([head] + [f[1] for f in failures] + meta.notes))
    reported = [source for source, _, empty in failures if not empty]
    reasons = [reason for _, reason, _ in failures]
    if reported:
        return EmbeddedPrompt(None, reported[0], _join_notes(reasons + meta.notes))
    return EmbeddedPrompt(None, 'none', _join_notes([_looked_at(meta)] + reasons + meta.notes))


def _attempts(meta: _Metadata, fp: Optional[BinaryIO] = None
              ) -> list[tuple[str, str, Any, Callable[[Any], Optional[_Found]]]]:
    attempts = [(source, f"'{key}' PNG text chunk", meta.text[key], parser)
                for source, key, parser in _PNG_PARSERS if key in meta.text]
    if 'UserComment' in meta.exif:
        attempts.append(('exif:UserComment', 'EXIF UserComment', meta.exif['UserComment'], _parse_user_comment))
    if 'ImageDescription' in meta.exif:
        attempts.append(('exif:ImageDescription', 'EXIF ImageDescription', meta.exif['ImageDescription'],
                         _parse_image_description))
    if meta.xmp is not None:
        attempts.append(('xmp:description', 'XMP packet', meta.xmp, _parse_xmp))
    if meta.png and fp is not None:  # last: only this one decodes pixels
        attempts.append(('png:stealth', 'stealth PNG info in pixel LSBs', (fp, meta), _parse_stealth))
    return attempts


def _clean(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise _Malformed(f'prompt is not text ({type(prompt).__name__})')
    prompt = prompt.strip().strip('\x00').strip()
    if not prompt:
        raise _Empty('empty prompt')
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _Malformed(f'prompt has {len(prompt)} characters, more than {MAX_PROMPT_CHARS}; treated as malformed')
    return prompt


def _looked_at(meta: _Metadata) -> str:
    keys = ', '.join(repr(key) for key in meta.text) or 'none'
    exif = 'no UserComment/ImageDescription' if meta.has_exif else 'none'
    xmp = 'no dc:description' if meta.xmp is not None else 'none'
    stealth = f', stealth PNG info in pixel LSBs ({meta.stealth})' if meta.stealth else ''
    return f'no prompt found; looked at PNG text chunks ({keys}), EXIF ({exif}), XMP ({xmp}){stealth}'
