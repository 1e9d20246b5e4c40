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

import html
import json
import os
import re
import struct
import unicodedata
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, Optional, Tuple, Union

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]
_Found = Tuple[Any, str]  # (raw prompt, note for detail), from every parser
_Nodes = Dict[str, Dict[str, Any]]  # ComfyUI node id -> node
_Links = Dict[Union[int, str], str]  # ComfyUI workflow link id -> source node id

MAX_PROMPT_CHARS = 20_000
_MAX_CHUNK_BYTES = 32 * 1024 * 1024
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TEXT_CHUNKS = (b'tEXt', b'zTXt', b'iTXt')
_EXIF_IFD, _USER_COMMENT, _IMAGE_DESCRIPTION = 0x8769, 0x9286, 0x010E
_SAMPLER_MARKERS = ('KSampler', 'SamplerCustom')
_ENCODER_MARKER = 'TextEncode'
_ENCODER_TEXT_KEYS = ('text', 'prompt')
_ENCODER_DUAL_KEYS = ('text_g', 'text_l', 't5xxl', 'clip_g', 'clip_l')
_SOURCE_TEXT_KEYS = ('text', 'string', 'value')
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)
_STEALTH_SIGNATURES = {  # pixel bits read -> {15-byte signature: gzip-compressed payload}
    'alpha': {b'stealth_pnginfo': False, b'stealth_pngcomp': True},
    'RGB': {b'stealth_rgbinfo': False, b'stealth_rgbcomp': True},
}
_STEALTH_HEADER_BITS = 8 * 15 + 32  # signature, then the payload length in bits


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


def _join_notes(notes: list[str]) -> str:
    return '; '.join(note for note in notes if note)


# ----------------------------------------------------------------------------- reading files

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


@contextmanager
def _warnings_as_notes(meta: _Metadata) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        yield
    for message in dict.fromkeys(str(warning.message).strip() for warning in caught):
        meta.notes.append(f'Pillow warning: {message}')


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
        meta.notes.append(f'Pillow could not read the file ({type(err).__name__}: {err})')
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


# ----------------------------------------------------------------------------- A1111 and JSON

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


def _id_key(node_id: str) -> tuple[int, tuple[int, ...], str]:
    parts = str(node_id).split(':')
    if all(part.isdigit() for part in parts):
        return (0, tuple(int(part) for part in parts), '')
    return (1, (), str(node_id))


def _follows(input_name: Any) -> bool:
    """Inputs that carry positive conditioning towards the text encoder."""
    name = str(input_name)
    return 'negative' not in name and (name in ('positive', 'guider') or name.startswith('cond'))


def _pick_sampler(found: list[tuple[str, str]], n_samplers: int) -> _Found:
    """found: [(node_id, prompt)] sorted by node id -> (prompt, note)."""
    if not found:
        raise _Malformed(f'no positive prompt text reachable from {n_samplers} sampler node(s)'
                         if n_samplers else 'no sampler node')
    node_id, prompt = found[0]
    note = f'sampler node {node_id}'
    disagree = sum(1 for _, other in found[1:] if other != prompt)
    if disagree:
        note += f'; {disagree} other sampler(s) with a different prompt ignored'
    return prompt, note


# ----------------------------------------------------------------------------- ComfyUI API graph

def _parse_comfy_api(text: str) -> _Found:
    graph = _json_object(text, 'ComfyUI graph')
    nodes = {str(key): node for key, node in graph.items()
             if isinstance(node, dict) and isinstance(node.get('inputs'), dict)}
    if not nodes:
        raise _Malformed('no ComfyUI nodes')
    samplers = [key for key, node in nodes.items()
                if any(marker in str(node.get('class_type', '')) for marker in _SAMPLER_MARKERS)]
    if not samplers:
        samplers = [key for key, node in nodes.items() if 'positive' in node['inputs']]
    found = []
    for node_id in sorted(samplers, key=_id_key):
        prompt = _join_distinct(_api_texts(nodes, node_id, set()))
        if prompt:
            found.append((node_id, prompt))
    return _pick_sampler(found, len(samplers))


def _is_link(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int))


def _api_texts(nodes: _Nodes, node_id: str, seen: set[str]) -> list[str]:
    if node_id in seen or node_id not in nodes:
        return []
    seen.add(node_id)
    node = nodes[node_id]
    if _ENCODER_MARKER in str(node.get('class_type', '')):
        return [_api_encoder_text(nodes, node['inputs'])]
    texts = []
    for name, value in node['inputs'].items():
        if _follows(name) and _is_link(value):
            texts += _api_texts(nodes, str(value[0]), seen)
    return texts


def _api_encoder_text(nodes: _Nodes, inputs: dict[str, Any]) -> str:
    for key in _ENCODER_TEXT_KEYS:
        if key in inputs:
            return _api_resolve(nodes, inputs[key], set()) or ''
    return _join_distinct(_api_resolve(nodes, inputs.get(key), set()) for key in _ENCODER_DUAL_KEYS)


def _api_resolve(nodes: _Nodes, value: Any, seen: set[str]) -> Optional[str]:
    """A string input, or the text of the primitive / string node it is linked to."""
    if isinstance(value, str):
        return value
    if not _is_link(value) or str(value[0]) in seen or str(value[0]) not in nodes:
        return None
    seen.add(str(value[0]))
    inputs = nodes[str(value[0])]['inputs']
    for key in _SOURCE_TEXT_KEYS:
        resolved = _api_resolve(nodes, inputs.get(key), seen)
        if resolved is not None:
            return resolved
    return None


# ----------------------------------------------------------------------------- ComfyUI UI workflow

def _parse_comfy_workflow(text: str) -> _Found:
    data = _json_object(text, 'ComfyUI workflow')
    if not isinstance(data.get('nodes'), list):
        raise _Malformed('no nodes list')
    nodes = {str(node['id']): node for node in data['nodes'] if isinstance(node, dict) and 'id' in node}
    links = _workflow_links(data.get('links'))
    samplers = [key for key, node in nodes.items()
                if any(marker in str(node.get('type', '')) for marker in _SAMPLER_MARKERS)]
    if not samplers:
        samplers = [key for key, node in nodes.items() if 'positive' in _input_links(node)]
    found = []
    for node_id in sorted(samplers, key=_id_key):
        prompt = _join_distinct(_wf_texts(nodes, links, node_id, set()))
        if prompt:
            found.append((node_id, prompt))
    if found:
        return _pick_sampler(found, len(samplers))
    return _wf_single_encoder(nodes, links), 'the only text encoder not wired to a negative input'


def _workflow_links(raw: Any) -> dict[Union[int, str], str]:
    """link id -> source node id, from [id, from, from_slot, to, to_slot, type] or dict links."""
    links = {}
    for link in raw if isinstance(raw, list) else []:
        if isinstance(link, list) and len(link) >= 4 and _is_id(link[0]):
            links[link[0]] = str(link[1])
        elif isinstance(link, dict) and _is_id(link.get('id')) and 'origin_id' in link:
            links[link['id']] = str(link['origin_id'])
    return links


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str))


def _input_links(node: dict[str, Any]) -> dict[str, Union[int, str]]:
    """input name -> link id (only linked inputs)."""
    inputs = node.get('inputs')
    return {str(inp.get('name')): inp['link'] for inp in inputs if isinstance(inp, dict)
            and _is_id(inp.get('link'))} if isinstance(inputs, list) else {}


def _wf_texts(nodes: _Nodes, links: _Links, node_id: str, seen: set[str]) -> list[str]:
    if node_id in seen or node_id not in nodes:
        return []
    seen.add(node_id)
    node = nodes[node_id]
    if _ENCODER_MARKER in str(node.get('type', '')):
        return [_wf_encoder_text(nodes, links, node)]
    texts = []
    for name, link in _input_links(node).items():
        if _follows(name) and link in links:
            texts += _wf_texts(nodes, links, links[link], seen)
    return texts


def _wf_encoder_text(nodes: _Nodes, links: _Links, node: dict[str, Any]) -> str:
    linked = _input_links(node).get('text')
    if linked in links and links[linked] in nodes:
        source = _widgets(nodes[links[linked]])
        if source and isinstance(source[0], str):
            return source[0]
    widgets = _widgets(node)
    if widgets and isinstance(widgets[0], str):
        return widgets[0]
    return _join_distinct(value for value in widgets if isinstance(value, str))


def _widgets(node: dict[str, Any]) -> list[Any]:
    values = node.get('widgets_values')
    if isinstance(values, dict):
        return [values.get('text')]
    return values if isinstance(values, list) else []


def _wf_single_encoder(nodes: _Nodes, links: _Links) -> str:
    negative_links = [link for node in nodes.values() for name, link in _input_links(node).items()
                      if 'negative' in name]
    negative_nodes = {links[link] for link in negative_links if link in links}
    encoders = [key for key, node in nodes.items()
                if _ENCODER_MARKER in str(node.get('type', '')) and key not in negative_nodes]
    if len(encoders) != 1:
        raise _Malformed(f'no sampler path to a text encoder, and {len(encoders)} candidate text encoders')
    return _wf_encoder_text(nodes, links, nodes[encoders[0]])


# ----------------------------------------------------------------------------- InvokeAI, NovelAI

def _parse_invoke_metadata(text: str) -> _Found:
    data = _json_object(text)
    if 'positive_prompt' not in data:
        raise _Malformed('no positive_prompt field')
    return data['positive_prompt'], ''


def _parse_invoke_sd_metadata(text: str) -> _Found:
    data = _json_object(text)
    image = data.get('image') if isinstance(data.get('image'), dict) else data
    prompt = image.get('prompt')
    if isinstance(prompt, list):
        prompt = _join_distinct(item.get('prompt') if isinstance(item, dict) else item for item in prompt)
    if not isinstance(prompt, str):
        raise _Malformed('no image.prompt field')
    return _drop_negative_brackets(prompt), ''


def _parse_dream(text: str) -> _Found:
    text = text.strip()
    if text.startswith('"'):
        match = re.match(r'"((?:[^"\\]|\\.)*)"', text, re.S)
        if not match:
            raise _Malformed('unterminated quoted prompt')
        prompt = match.group(1).replace('\\"', '"')
    else:
        prompt = re.split(r'\s-{1,2}[A-Za-z]', text, maxsplit=1)[0]
    return _drop_negative_brackets(prompt), ''


def _drop_negative_brackets(prompt: str) -> str:
    """Old InvokeAI: '[...]' groups (nested too) are negative prompts; one linear pass."""
    kept, depth = [], 0
    for part in re.split(r'([\[\]])', prompt):
        if part == '[':
            depth += 1
        elif part == ']':
            depth = max(depth - 1, 0)
        elif depth == 0:
            kept.append(part)
    return re.sub(r'[ \t]{2,}', ' ', ''.join(kept))


def _parse_novelai_description(text: str) -> _Found:
    return text, ''


def _parse_novelai_comment(text: str) -> Optional[_Found]:
    if not text.lstrip().startswith('{'):
        return None  # a plain comment from some other tool
    data = _json_object(text)
    if 'prompt' not in data:
        raise _Malformed('no prompt field')
    return data['prompt'], ''


# ----------------------------------------------------------------------------- EXIF and XMP

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


# ----------------------------------------------------------------------------- stealth PNG info (pixels)

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
