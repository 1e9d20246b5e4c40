"""Numeric precision of a network: ``precision='fp32' | 'bf16' | 'fp16'``.

Every architecture of the plugin takes ``precision`` (a metric option:
``create_metric('ipce', precision='bf16')``, ``--set precision=bf16`` on the command line).
fp32 is the default and the faithful reference. For bf16 / fp16 the CLIP towers' weights are
cast ONCE (:func:`set_precision`): measured on the CPU (``scripts/benchmark.py --autocast``),
the cast ran about twice the fp32 speed, and autocast over fp32 weights was no faster (0.9 to
1.1x the cast for ViT-B/32) or far slower where attention leaves its fused path (0.14x for
CLIP-AGIQA's ViT-B/16, 0.53x for DCMPL's prompted tower). What follows the towers runs in the
dtype of the network's own parameters (:attr:`CLIPBackbone.compute_dtype`: float32 unless the
whole network was cast, e.g. float64 after ``net.double()`` for numerical checks); inputs of
any float dtype are accepted, so callers see no difference but speed and rounding (docs/speed.md,
"Precision", lists the measured score differences per metric).

Training keeps fp32 weights and uses autocast instead (``train.precision`` in an option file,
see AGIQAModel): bf16 autocast, or fp16 autocast with a gradient scaler; checkpoints stay fp32.
"""

from __future__ import annotations

import torch
from torch import nn

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def dtype_of(precision: str) -> torch.dtype:
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {list(DTYPES)}, got {precision!r}")
    return DTYPES[precision]


def set_precision(net: nn.Module, precision: str = 'fp32') -> nn.Module:
    """Run the plugin network ``net`` in ``precision``: its CLIP towers
    (:class:`CLIPBackbone`, nearly all of the work) in that dtype, everything after them
    (similarities, softmax, heads, CIA layer, prompt modules) in the dtype of the network's own
    parameters (float32 by default), so scores are not rounded to bf16's 3 significant digits
    (which would turn close scores into ties). fp32 restores float32 tower weights."""
    from .clip import CLIPBackbone

    dtype = dtype_of(precision)
    backbones = [m for m in net.modules() if isinstance(m, CLIPBackbone)]
    if not backbones:
        raise TypeError(f'set_precision applies to networks with CLIP towers (the plugin\'s), not '
                        f'{type(net).__name__}')
    net.precision = precision
    for backbone in backbones:
        backbone.set_dtype(dtype)
    return net


def autocast(device: torch.device, precision: str):
    """The autocast context of a training step (a no-op for fp32)."""
    dtype = dtype_of(precision)
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not torch.float32)
