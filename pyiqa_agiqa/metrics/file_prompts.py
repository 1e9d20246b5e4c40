"""The prompt of an image given to a metric as a file, when the call gives none.

pyiqa's command (``pyiqa ipce -t generated/``) calls a metric with one path and no prompt.
For the plugin's metrics, a path (or a list of paths) called without ``prompt`` takes each
file's own prompt, as ``pyiqa-agiqa score`` does: its embedded generator metadata, else its
sidecar caption (``image.txt`` / ``image.caption``; see :mod:`pyiqa_agiqa.data.captions`). A
file with neither is a :class:`~pyiqa_agiqa.prompt_args.PromptError` naming it and the ways to
give one. Tensors and PIL images carry no file: they still need ``prompt=``.
"""

from __future__ import annotations

import os
from typing import Mapping

from ..prompt_args import PromptError


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def prompt_of_file(metric: str, path) -> str:
    """The prompt of the image file ``path`` (embedded, else sidecar caption), or PromptError."""
    from ..data.captions import caption_paths, read_image_prompt

    found = read_image_prompt(path)
    if found.prompt is None:
        sidecar = caption_paths(path)[0].name
        raise PromptError(f"{metric}: no prompt for {os.fspath(path)} ({found.detail}); pass it as "
                          f"prompt='...', or write it into {sidecar} next to the image")
    return found.prompt


def with_file_prompts(metric: str, target, kwargs: Mapping) -> dict:
    """``kwargs`` of a metric call, with ``prompt`` read from the files when ``target`` is a
    path or a list of paths and no prompt was given; otherwise ``kwargs`` unchanged."""
    kwargs = dict(kwargs)
    if kwargs.get('prompt') is not None:
        return kwargs
    if _is_path(target):
        kwargs['prompt'] = prompt_of_file(metric, target)
    elif isinstance(target, (list, tuple)) and target and all(_is_path(t) for t in target):
        kwargs['prompt'] = [prompt_of_file(metric, t) for t in target]
    return kwargs
