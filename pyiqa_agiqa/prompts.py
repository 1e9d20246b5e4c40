"""Checking the text prompts that come with images.

Every text-conditioned network of the plugin is called as ``net(images, prompt=...)``:
a ``str`` for a single image, or a list / tuple with one ``str`` per image of the batch.
"""

from __future__ import annotations

import warnings
from typing import Callable, List, Optional, Sequence, Union

PromptArg = Union[str, Sequence[str], None]


class PromptError(ValueError):
    """A prompt is missing, empty, of the wrong type or does not match the batch."""


def prompts_for_batch(prompt: PromptArg, batch_size: int, metric: str = 'this metric') -> List[str]:
    """Return one prompt per image, or raise :class:`PromptError` saying what is wrong.

    Args:
        prompt: a str (batch of one) or a sequence of ``batch_size`` str.
        batch_size: number of images in the batch.
        metric: name used in the messages.
    """
    if prompt is None:
        raise PromptError(
            f"{metric} is text-conditioned: pass the generation prompt, e.g. "
            f"metric(image, prompt='a red fox in the snow'), or a list with one prompt per image."
        )
    if isinstance(prompt, str):
        prompts = [prompt]
        if batch_size != 1:
            raise PromptError(
                f'{metric}: one prompt (str) was given for a batch of {batch_size} images; '
                f'pass a list of {batch_size} prompts, one per image.'
            )
    else:
        try:
            prompts = list(prompt)
        except TypeError:
            raise PromptError(f'{metric}: prompt must be a str or a list of str, got {type(prompt).__name__}') from None
        if len(prompts) != batch_size:
            raise PromptError(f'{metric}: got {len(prompts)} prompts for {batch_size} images; give one prompt per image.')
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise PromptError(f'{metric}: prompt {i} is a {type(p).__name__}, not a str: {p!r}')
        if not p.strip():
            raise PromptError(f'{metric}: prompt {i} is empty; an empty prompt would give a meaningless score.')
    return prompts


def warn_truncated(texts: Sequence[str], count_tokens: Callable[[Sequence[str]], List[int]],
                   context_length: int, metric: str = 'this metric') -> Optional[int]:
    """Warn (once per call) when texts exceed the text tower's context and will be truncated.

    Returns the number of truncated texts (None when there are none).
    """
    lengths = count_tokens(texts)
    n_long = sum(n > context_length for n in lengths)
    if n_long:
        worst = max(range(len(texts)), key=lambda i: lengths[i])
        warnings.warn(
            f'{metric}: {n_long} of {len(texts)} texts exceed the {context_length}-token context of '
            f'the text encoder and are truncated (longest: {lengths[worst]} tokens, '
            f'"{texts[worst][:60]}..."). This follows the published method.',
            UserWarning,
            stacklevel=3,
        )
        return n_long
    return None
