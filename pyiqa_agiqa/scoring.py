"""Scoring images with their prompts through a pyiqa metric (used by ``pyiqa-agiqa score``).

Inputs are (image path, prompt) pairs from one file, a folder (one prompt for all) or a
CSV with columns ``image`` and ``prompt`` (paths relative to the CSV's folder unless
absolute). Consecutive images of the same size are scored in one batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import pandas as pd
import torch
import torchvision.transforms.functional as TF
from tqdm import tqdm

from pyiqa.utils.img_util import scandir_images

from .data.image_io import load_rgb, probe_image
from .prompts import PromptError

Item = Tuple[str, str]


class ScoringInputError(ValueError):
    """The images or prompts to score are missing or malformed."""


def items_from_target(target: str, prompt: Optional[str]) -> List[Item]:
    """(path, prompt) pairs for an image file or every image of a folder (sorted)."""
    if prompt is None or not str(prompt).strip():
        raise PromptError('a prompt is required: --prompt "..." (or --csv with image,prompt columns)')
    if os.path.isdir(target):
        paths = scandir_images(target)
        if not paths:
            raise ScoringInputError(f'no image files in folder {target}')
        return [(p, prompt) for p in paths]
    return [(target, prompt)]


def items_from_csv(csv_path: str) -> List[Item]:
    """(path, prompt) pairs from a CSV with columns ``image`` and ``prompt``."""
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in ('image', 'prompt') if c not in table.columns]
    if missing:
        raise ScoringInputError(f'{csv_path}: missing column(s) {missing}; found {list(table.columns)}')
    empty = [i + 1 for i, p in enumerate(table['prompt']) if not p.strip()]
    if empty:
        raise PromptError(f'{csv_path}: empty prompt in data row(s) {empty[:20]}')
    base = Path(csv_path).resolve().parent
    return [(str(p if os.path.isabs(p) else base / p), prompt) for p, prompt in zip(table['image'], table['prompt'])]


def check_readable(items: Sequence[Item]) -> None:
    """Raise ScoringInputError listing every missing or unreadable image at once."""
    bad = [(path, reason) for path, _ in items if (reason := probe_image(path))]
    if bad:
        listing = '\n'.join(f'  {path}: {reason}' for path, reason in bad[:20])
        more = f'\n  ... and {len(bad) - 20} more' if len(bad) > 20 else ''
        raise ScoringInputError(f'{len(bad)} of {len(items)} images cannot be scored:\n{listing}{more}')


def _batches(items: Sequence[Item], batch_size: int) -> Iterator[Tuple[List[Item], torch.Tensor]]:
    """Consecutive same-size images, at most batch_size at a time, as (items, (B,3,H,W))."""
    group, tensors = [], []
    for item in items:
        img = TF.to_tensor(load_rgb(item[0]))
        if tensors and (img.shape != tensors[0].shape or len(group) == batch_size):
            yield group, torch.stack(tensors)
            group, tensors = [], []
        group.append(item)
        tensors.append(img)
    if group:
        yield group, torch.stack(tensors)


def score_items(metric, items: Sequence[Item], batch_size: int = 8, progress: bool = True) -> List[float]:
    """Scores of ``items`` with a pyiqa metric called as ``metric(images, prompt=[...])``."""
    check_readable(items)
    scores = []
    with tqdm(total=len(items), unit='image', disable=not progress or len(items) < 2) as bar:
        for group, images in _batches(items, batch_size):
            out = metric(images, prompt=[p for _, p in group])
            scores.extend(float(v) for v in out.reshape(len(group), -1)[:, 0].cpu())
            bar.update(len(group))
    return scores
