"""IPCE checkpoints of the reference code (``ipce-ref``).

``ipce-ref`` -- IPCE (woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC),
    ONE file: ``{'model_state_dict': sd, ...}`` (training scripts; ``epoch`` /
    ``optimizer_state_dict`` may be there too) or ``sd`` itself (the NTIRE inference weights).
    ``sd`` is the raw OpenAI CLIP (``clip.load(..., jit=False)``), no prefix, mixed fp16 / fp32;
    ``input_resolution`` / ``context_length`` / ``vocab_size`` entries are dropped. Plugin names:
    ``backbone.model.<key>``. The CLIP is recognised by ``visual.conv1.weight`` and
    ``visual.positional_embedding``: ViT-B/32 -> ``clip_model='ViT-B-32-quickgelu', min_side=512``
    (AGIQA-1K/3K, AIGCIQA2023), ViT-L/14 -> ``'ViT-L-14-quickgelu', min_side=768`` (AIGIQA-20K);
    anything else is an error unless ``network=`` names the options.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch

from .common import (CLIP_PREFIX, PathLike, ReferenceLayoutError, StateDict, _Plan, _clip_keys, _single, _state_dict,
                     read_reference)

EXPECTED = ("IPCE's {'model_state_dict': OpenAI CLIP state dict} or the bare OpenAI CLIP state dict "
            '(visual.*, transformer.*, token_embedding.weight, positional_embedding, ln_final.*, '
            'text_projection, logit_scale)')  # the layout, for messages


# (visual.conv1.weight shape, visual.positional_embedding shape) -> IPCE network options
IPCE_CLIPS = {
    ((768, 3, 32, 32), (50, 768)): dict(clip_model='ViT-B-32-quickgelu', min_side=512),
    ((1024, 3, 14, 14), (257, 1024)): dict(clip_model='ViT-L-14-quickgelu', min_side=768),
}


def detect_ipce_network(sd: Mapping[str, torch.Tensor], path: PathLike = '<state dict>') -> dict:
    """IPCE network options ({'clip_model', 'min_side'}) of an OpenAI CLIP state dict, from the
    shapes of ``visual.conv1.weight`` and ``visual.positional_embedding``. Raises
    :class:`ReferenceLayoutError` for any other CLIP."""
    shapes = tuple(tuple(sd[k].shape) if k in sd else None
                   for k in ('visual.conv1.weight', 'visual.positional_embedding'))
    if shapes[0] is None:
        raise ReferenceLayoutError(f"'{path}' has no visual.conv1.weight: not an OpenAI CLIP state dict (keys "
                                   f"{list(sd)[:5]} ...). Expected: {EXPECTED}")
    if shapes not in IPCE_CLIPS:
        raise ReferenceLayoutError(
            f"'{path}': CLIP with visual.conv1.weight {shapes[0]} and visual.positional_embedding {shapes[1]} is "
            f'neither OpenAI ViT-B/32 nor ViT-L/14 (the CLIPs IPCE was published with); if you know the model, '
            f"pass network={{'clip_model': ..., 'min_side': ...}}. Expected: {EXPECTED}")
    return dict(IPCE_CLIPS[shapes])


def plan(inputs, network, clip_weights) -> _Plan:
    """What the reference file(s) of this kind hold, mapped to the plugin's names."""
    path = _single('ipce-ref', inputs)
    sd = _state_dict(read_reference(path), path)
    if 'clip_model' in network:
        known = {o['clip_model']: o['min_side'] for o in IPCE_CLIPS.values()}
        options = {'min_side': known.get(network['clip_model'], 512), **network}
    else:
        options = {**detect_ipce_network(sd, path), **network}
    mapped, origin, unknown = _clip_keys(sd, path)
    return _Plan(options, ['score'], mapped, origin, unknown, {'checkpoint': path})


def to_reference(sd: StateDict):
    """A plugin state dict (detached) as ``{'model_state_dict': OpenAI CLIP state dict}``."""
    bad = [k for k in sd if not k.startswith(CLIP_PREFIX)]
    if bad:
        raise ValueError(f'ipce-ref: {bad[:5]} are not IPCE (CLIP) keys')
    return {'model_state_dict': OrderedDict((k[len(CLIP_PREFIX):], v) for k, v in sd.items())}
