"""``torch.compile`` for a network's CLIP towers: ``pyiqa-agiqa score ... --compile``.

Regional compilation: every transformer block of the image and text towers is compiled in
place (``nn.Module.compile``), not the whole network. Parameter names, state dicts, weights
loading, precision changes and the plugin's feature caches are unchanged; the blocks of a
tower have one structure, so torch compiles it once and reuses it for every block; the
plugin's own Python around the towers (view cutting, caches, heads, prompts of CLIP-AGIQA
and DCMPL, which call the blocks one by one) stays eager. A tower without blocks (a ResNet
image tower) is compiled whole.

Off by default: compiling takes tens of seconds to minutes (on the first batch and again
for each new shape), and whether it pays depends on the device. docs/speed.md ("torch.compile,
channels_last") gives what was measured (``python scripts/benchmark.py --compile``).
Scores equal the eager ones up to float rounding (tested).
"""

from __future__ import annotations

from typing import Iterator, Optional

from torch import nn

MODES = (None, 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


def _blocks_or_whole(tower: Optional[nn.Module]) -> Iterator[nn.Module]:
    transformer = getattr(tower, 'transformer', tower)
    blocks = getattr(transformer, 'resblocks', None)
    if blocks is not None:
        yield from blocks
    elif tower is not None:
        yield tower


def compile_towers(net: nn.Module, mode: Optional[str] = None) -> nn.Module:
    """Compile the transformer blocks of every CLIP tower in ``net`` (a plugin network, or a
    pyiqa metric: its ``net`` is used) with ``torch.compile(mode=mode)``; returns ``net``.

    Raises:
        ValueError: ``net`` holds no CLIP tower, or ``mode`` is not one of torch's modes.
    """
    from .clip import CLIPBackbone

    if mode not in MODES:
        raise ValueError(f'compile mode must be one of {[m for m in MODES if m]}, got {mode!r}')
    net = getattr(net, 'net', net)
    backbones = [m for m in net.modules() if isinstance(m, CLIPBackbone)]
    if not backbones:
        raise ValueError(f'{type(net).__name__} holds no CLIP tower to compile')
    for backbone in backbones:
        model = backbone.model
        text = model.transformer if hasattr(model, 'token_embedding') else getattr(model, 'text', None)
        for tower in (model.visual, text):
            for block in _blocks_or_whole(tower):
                block.compile(mode=mode)
    return net


def is_compiled(module: nn.Module) -> bool:
    """True if any submodule of ``module`` was compiled in place."""
    return any(getattr(m, '_compiled_call_impl', None) is not None for m in module.modules())


__all__ = ['compile_towers', 'is_compiled', 'MODES']
