"""Checks of the ``prompt=`` argument (the text prompts that come with images) of every network.

Every text-conditioned network of the plugin is called as ``net(images, prompt=...)``:
a ``str`` for a single image, or a list / tuple with one ``str`` per image of the batch.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence, Union

from .errors import AGIQAError

PromptArg = Union[str, Sequence[str], None]


class PromptError(AGIQAError, ValueError):
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
            raise PromptError(f'{metric}: got {len(prompts)} prompts for {batch_size} images; '
                              'give one prompt per image.')
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise PromptError(f'{metric}: prompt {i} is a {type(p).__name__}, not a str: {p!r}')
        if not p.strip():
            raise PromptError(f'{metric}: prompt {i} is empty; an empty prompt would give a meaningless score.')
    return prompts


def warn_truncated(texts: Sequence[str], tokens, metric: str = 'this metric') -> Optional[int]:
    """Warn (once per call) when texts fill the whole context of the text tower: those longer
    than it were truncated by the tokenizer (a text of exactly the context length is flagged
    too: the tokens cannot tell the two apart).

    Args:
        texts: the N texts.
        tokens: (N, L) token ids as the tokenizer returned them (zero-padded).
    Returns:
        the number of texts flagged, or None.
    """
    full = (tokens[:, -1] != 0).nonzero().flatten().tolist()
    if not full:
        return None
    warnings.warn(
        f'{metric}: {len(full)} of {len(texts)} texts fill the {tokens.shape[1]}-token context of the text '
        f'encoder; longer ones are truncated (e.g. "{texts[full[0]][:60]}..."). This follows the published '
        'method.',
        UserWarning,
        stacklevel=3,
    )
    return len(full)
