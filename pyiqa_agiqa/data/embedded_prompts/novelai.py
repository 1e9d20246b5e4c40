"""NovelAI: the ``Description`` PNG chunk, then the ``prompt`` field of the ``Comment`` JSON.
"""

from __future__ import annotations

from typing import Optional

from .common import _Found, _json_object, _Malformed


def _parse_novelai_description(text: str) -> _Found:
    return text, ''


def _parse_novelai_comment(text: str) -> Optional[_Found]:
    if not text.lstrip().startswith('{'):
        return None  # a plain comment from some other tool
    data = _json_object(text)
    if 'prompt' not in data:
        raise _Malformed('no prompt field')
    return data['prompt'], ''
