"""CIA-Net checkpoints of the reference code (``cianet-ref``).

``cianet-ref`` -- CIA-Net (TanSongBai/CIANet), ONE file, as its ``train.py`` saves it
    (``checkpoints/{dataset}/MTD_IQAv6/{session}/{quality|authenticity|correspondence}_best_ckpt.pt``)::

        {'epoch': int, 'model_state_dict': sd, 'optimizer_state_dict': ..., 'all_results': ...}

    ``sd``: ``base.*`` (OpenAI CLIP ViT-B/32, OpenAI names, fp32 or fp16), ``CIALayer.*`` (six
    attention blocks), ``MLP.fc1.0.*`` [256, 1024] / ``MLP.fc2.0.*`` [1, 256], and usually a
    top-level ``logit_scale`` (the reference registers CLIP's parameter twice: ``self.logit_scale
    = self.base.logit_scale``): it must equal ``base.logit_scale`` (else an error) and is dropped.
    Plugin names: ``backbone.model.*``, ``cia_layer.*``, ``head.*``. ``all_results`` may hold
    numpy scalars: for this kind only, numpy's scalar reconstruction is allow-listed (see
    :func:`read_reference`). A flat state dict in the same naming (e.g. a ``.safetensors`` made
    with ``pyiqa-agiqa convert-pickle --trust-pickle --key model_state_dict``) is accepted too.
    Each file is the reference's best epoch FOR ONE OUTPUT (its file name; ``correspondence`` is
    the plugin's ``consistency``) but holds the whole network: the card records which.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Mapping

import torch

from .common import (CLIP_PREFIX, OPENAI_EXTRAS, PathLike, ReferenceLayoutError, StateDict, _Plan, _fp32, _single,
                     _state_dict, read_reference)

EXPECTED = ("CIA-Net's {'model_state_dict': {base.* (OpenAI CLIP ViT-B/32), CIALayer.*, MLP.fc1.0.*, "
            'MLP.fc2.0.*, logit_scale}, ...} (TanSongBai/CIANet train.py); a CLIP other than ViT-B/32 needs '
            "network={'clip_model': ...}")  # the layout, for messages


# reference prefix -> plugin prefix
CIANET_PREFIXES = (('base.', CLIP_PREFIX), ('CIALayer.', 'cia_layer.'), ('MLP.', 'head.'))
CIANET_FILE = re.compile(r'^(quality|authenticity|correspondence)_best_ckpt\.pt$')
CIANET_OUTPUT_OF_FILE = {'quality': 'quality', 'authenticity': 'authenticity', 'correspondence': 'consistency'}


def _cianet_keys(sd: StateDict, path: PathLike):
    mapped, origin, unknown = OrderedDict(), {}, []
    for key, value in sd.items():
        if key == 'logit_scale' or (key.startswith('base.') and key[len('base.'):] in OPENAI_EXTRAS):
            continue  # the duplicate of base.logit_scale (checked below); OpenAI archive metadata
        prefix = next(((ref, ours) for ref, ours in CIANET_PREFIXES if key.startswith(ref)), None)
        if prefix is None:
            unknown.append(key)
            continue
        name = prefix[1] + key[len(prefix[0]):]
        mapped[name], origin[name] = _fp32(value), (path, key)
    if 'logit_scale' in sd and 'base.logit_scale' in sd and not torch.equal(
            _fp32(sd['logit_scale']), _fp32(sd['base.logit_scale'])):
        raise ReferenceLayoutError(
            f"'{path}': the top-level logit_scale ({float(sd['logit_scale'])}) differs from base.logit_scale "
            f"({float(sd['base.logit_scale'])}); in CIA-Net they are one parameter registered twice, so this "
            f'file was not saved by the reference model')
    return mapped, origin, [(path, k) for k in unknown]


def plan(inputs, network, clip_weights) -> _Plan:
    """What the reference file(s) of this kind hold, mapped to the plugin's names."""
    path = _single('cianet-ref', inputs)
    obj = read_reference(path, allow_numpy_scalars=True)
    mapped, origin, unknown = _cianet_keys(_state_dict(obj, path), path)
    match = CIANET_FILE.match(os.path.basename(path))
    note = (f"selected by the reference for output '{CIANET_OUTPUT_OF_FILE[match.group(1)]}' (file name)"
            if match else 'the output it was selected for is unknown (file name not <output>_best_ckpt.pt)')
    if isinstance(obj, Mapping) and isinstance(obj.get('epoch'), int):
        note += f', epoch {obj["epoch"]}'
    return _Plan({'clip_model': 'ViT-B-32-quickgelu', **network}, ['quality', 'authenticity', 'consistency'],
                 mapped, origin, unknown, {'checkpoint': path}, note)


def to_reference(sd: StateDict):
    """A plugin state dict (detached) as CIA-Net's ``{'epoch', 'model_state_dict', ...}`` (see
    :func:`pyiqa_agiqa.export.convert.to_reference_layout`)."""
    ref = OrderedDict()
    for key, value in sd.items():
        prefix = next(((r, o) for r, o in CIANET_PREFIXES if key.startswith(o)), None)
        if prefix is None:
            raise ValueError(f'cianet-ref: {key!r} is not a CIANet key')
        ref[prefix[0] + key[len(prefix[1]):]] = value
    ref['logit_scale'] = ref['base.logit_scale']
    return {'epoch': 0, 'model_state_dict': ref, 'optimizer_state_dict': {}, 'all_results': {}}
