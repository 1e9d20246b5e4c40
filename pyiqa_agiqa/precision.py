"""Numeric precision of a network: ``precision='fp32' | 'bf16' | 'fp16'``.

Every architecture of the plugin takes ``precision`` (a metric option:
``create_metric('ipce', precision='bf16')``, ``--set precision=bf16`` on the command line).
fp32 is the default and the faithful reference. For bf16 / fp16 the CLIP towers' weights are
cast ONCE (:func:`set_precision`): measured on the CPU, casting runs the towers in a third of
the fp32 time, while autocast was slower than fp32 for attention-heavy towers (attention
leaves its fused path). What follows the towers stays float32; inputs of any float dtype are
accepted and outputs are float32, so callers see no difference but speed and rounding (the
README lists the measured score differences per metric).

Training keeps fp32 weights and uses autocast instead (``train.precision`` in an option file,
see AGIQAModel): bf16 autocast, or fp16 autocast with a gradient scaler; checkpoints stay fp32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_HOOKS = '_pyiqa_agiqa_precision_hooks'


def dtype_of(precision: str) -> torch.dtype:
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {list(DTYPES)}, got {precision!r}")
    return DTYPES[precision]


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    if isinstance(value, dict):
        return type(value)((k, _cast(v, dtype)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def set_precision(net: nn.Module, precision: str = 'fp32') -> nn.Module:
    """Run ``net`` in ``precision``.

    A network of the plugin runs its CLIP towers (:class:`CLIPBackbone`, nearly all of the
    work) in that dtype and everything after them (similarities, softmax, heads, CIA layer,
    prompt modules) in float32, so scores are not rounded to bf16's 3 significant digits
    (which would turn close scores into ties). Any other network is cast whole, with float
    inputs cast in and float outputs cast back to float32. fp32 restores float32 weights.
    """
    from .archs.clip_backbone import CLIPBackbone

    dtype = dtype_of(precision)
    for handle in getattr(net, _HOOKS, ()):
        handle.remove()
    setattr(net, _HOOKS, ())
    net.precision = precision
    backbones = [m for m in net.modules() if isinstance(m, CLIPBackbone)]
    if backbones:
        for backbone in backbones:
            backbone.set_dtype(dtype)
        return net
    if dtype is torch.float32:
        return net.float()
    net.to(dtype)

    def inputs(module, args, kwargs):
        return _cast(args, dtype), _cast(kwargs, dtype)

    def outputs(module, args, kwargs, result):
        return _cast(result, torch.float32)

    setattr(net, _HOOKS, (net.register_forward_pre_hook(inputs, with_kwargs=True),
                          net.register_forward_hook(outputs, with_kwargs=True)))
    return net


def autocast(device: torch.device, precision: str):
    """The autocast context of a training step (a no-op for fp32)."""
    dtype = dtype_of(precision)
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not torch.float32)
