"""InvokeAI: ``invokeai_metadata`` JSON, then the older ``sd-metadata`` JSON and ``Dream`` command
line, in which ``[...]`` groups are negative prompts and are removed.
"""

from __future__ import annotations

import re

from .common import _Found, _join_distinct, _json_object, _Malformed


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
