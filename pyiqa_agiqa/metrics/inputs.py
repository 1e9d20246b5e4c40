"""What a plugin metric accepts as images, beyond pyiqa's own input handling.

pyiqa's metric wrapper (``InferenceModel``) takes a (B, 3, H, W) tensor, one path or one PIL
image, reads paths with PIL's ``convert('RGB')`` (16-bit images clipped to white, EXIF
orientation ignored) and fails on a list ("Unsupported source type"). For the plugin's
metrics only, :func:`plugin_forward` (called by the adapter of pyiqa's ``InferenceModel.forward``,
:mod:`~pyiqa_agiqa.metrics.pyiqa_adapter`) makes ``metric(images, prompt=...)`` also take:

- a path or a PIL image, read with :func:`pyiqa_agiqa.data.load_rgb` (EXIF orientation
  applied, 16-bit scaled, alpha over white: the reader of the plugin's datasets and scorer);
- paths without ``prompt``: each file's own prompt (:mod:`~pyiqa_agiqa.metrics.file_prompts`),
  for the networks that read prompts (those with ``prompt_texts``: IPCE, CIA-Net);
- a list / tuple of paths, PIL images or (3, H, W) tensors, with ``prompt`` a list of one
  prompt per image (or one str for all); images of different sizes are scored in groups of
  consecutive equal sizes and the scores come back in input order, (N, 1);
- tensors of any float dtype (bf16, fp16: pyiqa's range check would reject a bf16 1.0; they
  are checked and passed as float32, float64 stays float64); the network casts them to its
  own precision.

A score that is not finite (NaN, inf: non-finite weights or input) is never returned: the call
raises :class:`~pyiqa_agiqa.errors.NonFiniteScoreError` naming the images of the batch, with
the scores attached (the scoring engines make those rows' errors).

pyiqa's own metrics are left exactly as they are (the adapter calls pyiqa's forward for them).
"""

from __future__ import annotations

import os
from typing import List

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from ..prompt_args import prompts_for_batch


def as_image_tensor(item) -> torch.Tensor:
    """A path, PIL image or (3, H, W) / (1, 3, H, W) tensor -> (3, H, W) float tensor in [0, 1]."""
    from ..data.image_io import load_rgb

    if isinstance(item, (str, os.PathLike, Image.Image)):
        return TF.to_tensor(load_rgb(item))
    if torch.is_tensor(item) and item.dim() == 4 and item.shape[0] == 1:
        return item[0]
    if torch.is_tensor(item) and item.dim() == 3:
        return item
    raise TypeError(f'an image must be a path, a PIL image or a (3, H, W) tensor, got {type(item).__name__}'
                    + (f' of shape {tuple(item.shape)}' if torch.is_tensor(item) else ''))


def _groups(images: List[torch.Tensor]):
    """(start, stop) of runs of consecutive images with the same shape."""
    start = 0
    for i in range(1, len(images) + 1):
        if i == len(images) or images[i].shape != images[start].shape:
            yield start, i
            start = i


def finite_or_raise(name: str, scores: torch.Tensor) -> torch.Tensor:
    """``scores`` (B, ...) when every value is finite; else :class:`NonFiniteScoreError` naming
    the images (batch indices) whose score is NaN or infinite, with the scores attached."""
    from ..errors import NonFiniteScoreError

    finite = torch.isfinite(scores.detach())
    bad = ~finite.reshape(scores.shape[0], -1).all(dim=1) if scores.dim() else ~finite.reshape(1)
    if not bool(bad.any()):
        return scores
    rows = bad.nonzero().flatten().tolist()
    raise NonFiniteScoreError(f'{name} gave non-finite scores for image(s) {rows[:10]} of the batch: the weights or '
                              'the input hold NaN / inf (weights files with non-finite tensors are refused at load; '
                              'check tensors passed in)', scores=scores.detach(), rows=rows)


def plugin_forward(pyiqa_forward, self, target, ref=None, **kwargs):
    """The forward of the plugin metric ``self`` (a pyiqa InferenceModel): tensors, paths, PIL
    images and lists of them, each group of equal-size images passed to ``pyiqa_forward``
    (pyiqa's own ``InferenceModel.forward``) as a (B, 3, H, W) tensor; returns (N, 1) scores
    (one per image, in input order) or what pyiqa's forward returns for one tensor."""
    from .file_prompts import with_file_prompts  # paths without a prompt: each file's own prompt

    if hasattr(getattr(self, 'net', None), 'prompt_texts'):  # a network that reads the prompt (IPCE, CIA-Net)
        kwargs = with_file_prompts(self.metric_name, target, kwargs)
    if torch.is_tensor(target):
        # pyiqa's range check compares in the input's dtype: a bf16 1.0 fails "< 1 + 1e-6"
        low = target.is_floating_point() and torch.finfo(target.dtype).bits < 32
        return pyiqa_forward(self, target.float() if low else target, ref, **kwargs)
    if not isinstance(target, (list, tuple)):
        return pyiqa_forward(self, as_image_tensor(target)[None], ref, **kwargs)
    if not target:
        raise ValueError(f'{self.metric_name}: an empty list of images')
    images = [as_image_tensor(t) for t in target]
    prompt = kwargs.pop('prompt', None)
    prompts = prompts_for_batch(prompt if not isinstance(prompt, str) else [prompt] * len(images),
                                len(images), self.metric_name)
    scores = [pyiqa_forward(self, torch.stack(images[a:b]), ref, prompt=prompts[a:b], **kwargs)
              for a, b in _groups(images)]
    return torch.cat([s.reshape(s.shape[0], -1) for s in scores])
