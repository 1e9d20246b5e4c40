"""Training losses of the plugin, registered in pyiqa's LOSS_REGISTRY on import (usable in
option files as ``{type: <name>, loss_weight: ...}``, called ``loss(pred, target)`` with
(B, 1) tensors, as pyiqa's own losses).

- :class:`PairwiseFidelityLoss`: the fidelity loss over the pairs of a batch (CIA-Net's
  consistency and authenticity losses; reference ``loss_m3`` in TanSongBai/CIANet).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyiqa.utils.registry import LOSS_REGISTRY

__all__ = ['PairwiseFidelityLoss', 'pairwise_fidelity_loss']

EPS = 1e-8


def pairwise_fidelity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean fidelity loss over the unordered pairs i < j of a batch.

    For each pair: p = Phi(pred_i - pred_j) (standard normal CDF), g = 1 / 0.5 / 0 when
    target_i >, =, < target_j, and ``1 - sqrt(p g + 1e-8) - sqrt((1 - p)(1 - g) + 1e-8)``.
    The mean runs over the B (B - 1) / 2 pairs of the upper triangle (no i == j pair, each
    pair once), as the reference. A batch of one has no pair: the loss is 0 (the reference
    would give NaN), with the graph kept so that ``backward`` works.

    Args:
        pred, target: (B,) or (B, 1).
    Returns:
        a scalar tensor.
    """
    pred, target = _flat(pred, 'pred'), _flat(target, 'target')
    if pred.shape != target.shape:
        raise ValueError(f'pred and target hold {pred.numel()} and {target.numel()} values; they must match')
    n = pred.shape[0]
    if n < 2:
        return pred.sum() * 0.0
    i, j = torch.triu_indices(n, n, offset=1, device=pred.device)
    p = 0.5 * (1 + torch.erf((pred[i] - pred[j]) / math.sqrt(2.0)))
    g = 0.5 * (torch.sign(target[i] - target[j]) + 1).to(p.dtype)
    loss = 1 - torch.sqrt(p * g + EPS) - torch.sqrt((1 - p) * (1 - g) + EPS)
    return loss.mean()


def _flat(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() == 2 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 1:
        return x
    raise ValueError(f'{name} must be (B,) or (B, 1), got shape {tuple(x.shape)}')


@LOSS_REGISTRY.register()
class PairwiseFidelityLoss(nn.Module):
    """Pairwise fidelity (ranking) loss; see :func:`pairwise_fidelity_loss`.

    Args:
        loss_weight: multiplies the loss (default 1).
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight=None, **kwargs) -> torch.Tensor:
        """pred, target: (B, 1) (or (B,)); ``weight`` is not supported (pairs have no
        element-wise weight) and must be None."""
        if weight is not None:
            raise NotImplementedError('PairwiseFidelityLoss takes no element-wise weight')
        return self.loss_weight * pairwise_fidelity_loss(pred, target)
