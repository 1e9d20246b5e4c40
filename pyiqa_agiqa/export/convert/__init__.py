"""Converters from checkpoints of the methods' REFERENCE code to the plugin's exported-weights
folder (:mod:`pyiqa_agiqa.weights.card`), so that they load into the plugin's metrics::

    from pyiqa_agiqa.export.convert import convert_reference
    convert_reference('cianet-ref', ['quality_best_ckpt.pt'], 'cianet_agiqa3k/')
    convert_reference('ipce-ref', ['quality_best_ckpt.pt'], 'ipce_agiqa3k/')
    convert_reference('dcmpl-ref', ['AGIQA_AGIQA3k_8_tar_best.pth', 'AGIQA_AGIQA3k_8_aux_best.pth'],
                      'clip_agiqa_fu_agiqa3k/', clip_weights='ViT-B-32.safetensors')

Every file is read as data: ``torch.load(weights_only=True)`` or safetensors (through
:func:`pyiqa_agiqa.weights.load_file`); a file that needs pickle code execution is refused
with :class:`~pyiqa_agiqa.weights.UnsafeWeightsError`. Keys are renamed, every tensor is cast
to float32, and the result is loaded STRICTLY into a freshly built plugin network (random
weights, nothing downloaded): a file with missing, unexpected or mis-shaped entries is refused
with :class:`ReferenceLayoutError`, which names the file, the first few offending keys (in the
reference's naming) and the layout that was expected. Only then is the folder written.

Kinds (:data:`KINDS`) and what each accepts:

``network=`` (optional dict) overrides / completes the plugin network options: needed for CLIPs
the converter does not recognise (e.g. the tests' tiny ``AGIQA-Tiny-ViT``), or to set options
such as ``min_side``. Keys must be constructor options of the architecture, except
``pretrained``, ``pretrained_model_path``, ``output``, ``cache_dir``, ``clip_pretrained`` (and,
for ``dcmpl-ref``, ``mpa`` / ``adapter`` / ``use_aux``, fixed by the base).

The inverse, :func:`to_reference_layout`, turns a plugin state dict into the reference's
structure (for tests, and to run the reference code on plugin-trained weights).

One module per reference codebase: :mod:`.cianet`, :mod:`.ipce`, :mod:`.dcmpl` (each kind's
files, key map and inverse); :mod:`.common` holds the reading and key helpers they share.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import torch

from ..folder import architecture_defaults, new_card, write_exported
from ...weights.io import sha256_file
from .cianet import CIANET_PREFIXES
from . import cianet, dcmpl, ipce
from .common import CLIP_PREFIX, NOT_OVERRIDABLE, PathLike, ReferenceLayoutError, StateDict, _build
from .dcmpl import DCMPL_AUX, DCMPL_TAR


KINDS = ('cianet-ref', 'ipce-ref', 'dcmpl-ref')
ARCHITECTURES = {'cianet-ref': 'CIANet', 'ipce-ref': 'IPCE', 'dcmpl-ref': 'DCMPL'}
MODULES = {'cianet-ref': cianet, 'ipce-ref': ipce, 'dcmpl-ref': dcmpl}
EXPECTED = {kind: module.EXPECTED for kind, module in MODULES.items()}  # each kind's layout, for messages


def _reference_name(kind: str, key: str, files: Mapping[str, str]) -> Tuple[str, str]:
    """(file, reference key) where a plugin key of ``kind`` would come from (for messages)."""
    if kind == 'cianet-ref':
        for ref, ours in CIANET_PREFIXES:
            if key.startswith(ours):
                return files['checkpoint'], ref + key[len(ours):]
    if key.startswith(CLIP_PREFIX):
        return files.get('clip', files.get('checkpoint')), key[len(CLIP_PREFIX):]
    for prefix, role in ((DCMPL_TAR, 'tar'), (DCMPL_AUX, 'aux')):
        if key.startswith(prefix):
            return files.get(role, f'<{role} file>'), key[len(prefix):]
    return files.get('checkpoint', '?'), key


def _checked_network_options(kind: str, network: Optional[Mapping]) -> dict:
    network = dict(network or {})
    fixed = NOT_OVERRIDABLE + (('mpa', 'adapter', 'use_aux') if kind == 'dcmpl-ref' else ())
    allowed = set(architecture_defaults(ARCHITECTURES[kind])) - set(fixed)
    bad = sorted(set(network) - allowed)
    if bad:
        raise ValueError(f'{kind}: network options {bad} cannot be set here (allowed: {sorted(allowed)})')
    return network


def _fit(kind: str, net: torch.nn.Module, mapped: StateDict, origin: Mapping, unknown: list,
         files: Mapping[str, str]) -> StateDict:
    """``mapped`` ordered as ``net.state_dict()``, after a strict load into ``net``; else an error."""
    own = net.state_dict()
    unknown = list(unknown) + [origin[k] for k in mapped if k not in own]
    missing = [_reference_name(kind, k, files) for k in own if k not in mapped]
    shapes = [f'{origin[k][1]} {tuple(v.shape)} (expected {tuple(own[k].shape)})'
              for k, v in mapped.items() if k in own and v.shape != own[k].shape]
    if missing or unknown or shapes:
        def show(pairs):
            return [f'{os.path.basename(f) if os.path.isfile(f) else f}:{k}' for f, k in pairs[:5]]

        names = ', '.join(f"'{f}'" for f in dict.fromkeys(files.values()))
        raise ReferenceLayoutError(
            f'{names}: not the {kind} layout of {type(net).__name__}'
            f'({net.backbone.model_name}): {len(missing)} missing key(s) {show(missing)}, {len(unknown)} '
            f'unexpected key(s) {show(unknown)}, {len(shapes)} shape mismatch(es) {shapes[:5]}. '
            f'Expected: {EXPECTED[kind]}')
    net.load_state_dict(mapped, strict=True)
    return OrderedDict((k, mapped[k]) for k in own)


SOURCES = {'cianet-ref': 'CIA-Net reference checkpoint (TanSongBai/CIANet)',
           'ipce-ref': 'IPCE reference checkpoint (NTIRE 2024 champion solution, woshidandan/Champion-Solution-for-'
                       'CVPR-NTIRE-2024-Quality-Assessment-on-AIGC)',
           'dcmpl-ref': "prompt learners of Fu et al.'s CLIP-AGIQA (JunFu1995/CLIP-AGIQA; DCMPL's base, NOT DCMPL's "
                        "own release), as the plugin's DCMPL with mpa=False, adapter=False"}


def convert_reference(kind: str, inputs: Union[PathLike, Sequence[PathLike]], output_folder: PathLike,
                      overwrite: bool = False, clip_weights: Optional[PathLike] = None,
                      network: Optional[Mapping] = None) -> Path:
    """Convert reference checkpoint file(s) of ``kind`` into an exported-weights folder.

    Args:
        kind: one of :data:`KINDS` (see the module doc for each kind's files).
        inputs: the reference file(s): one for ``cianet-ref`` / ``ipce-ref``; the tar file and
            optionally the aux file for ``dcmpl-ref``.
        output_folder: the folder to write (``weights.safetensors``, ``card.json``, ``README.md``).
        overwrite: replace a non-empty folder.
        clip_weights: ``dcmpl-ref`` only: the frozen CLIP, a state-dict file (OpenAI / open_clip
            names, or a plugin file under ``backbone.model.``) or an open_clip tag (default
            ``'openai'``, from the local cache).
        network: network options to set / override (e.g. ``{'clip_model': 'AGIQA-Tiny-ViT'}`` for a
            CLIP the converter does not recognise); see the module doc.
    Returns:
        The folder. Raises :class:`ReferenceLayoutError` (file(s) of another layout),
        :class:`~pyiqa_agiqa.weights.UnsafeWeightsError` (a file needing code execution),
        FileNotFoundError, FileExistsError (non-empty folder without ``overwrite``), ValueError.
    """
    if kind not in KINDS:
        raise ValueError(f'unknown reference kind {kind!r}; one of {list(KINDS)}')
    if clip_weights is not None and kind != 'dcmpl-ref':
        raise ValueError(f'{kind}: the reference file holds the whole CLIP; clip_weights is for dcmpl-ref only')
    inputs = [os.fspath(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    for path in inputs:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"reference checkpoint not found: '{path}'")
    plan = MODULES[kind].plan(inputs, _checked_network_options(kind, network), clip_weights)
    architecture = ARCHITECTURES[kind]
    net = _build(architecture, plan.options)
    state = _fit(kind, net, plan.mapped, plan.origin, plan.unknown, plan.files)
    if plan.check is not None:
        plan.check(net)  # on the network with the converted weights
    hashes = ', '.join(f'{os.path.basename(p)} (sha256 {sha256_file(p)})' for p in inputs)
    source = f"converted by pyiqa_agiqa.export.convert (kind '{kind}') from the {SOURCES[kind]}: {hashes}"
    source += f'; {plan.note}' if plan.note else ''
    card_network = dict(plan.options, **({'clip_pretrained': plan.clip_pretrained} if plan.clip_pretrained else {}))
    card = new_card(architecture, card_network, plan.outputs, source=source)
    return write_exported(output_folder, state, card, overwrite)


def to_reference_layout(kind: str, plugin_sd: Mapping[str, torch.Tensor]):
    """A plugin state dict in the structure the reference code saves / loads.

    - ``cianet-ref``: ``{'epoch': 0, 'model_state_dict': sd, 'optimizer_state_dict': {},
      'all_results': {}}`` with ``sd`` in CIA-Net's names, the top-level ``logit_scale`` being the
      same tensor as ``base.logit_scale`` (as the reference registers it twice).
    - ``ipce-ref``: ``{'model_state_dict': OpenAI CLIP state dict}`` (float32; the reference's
      ``load_state_dict`` casts into its fp16 layers).
    - ``dcmpl-ref``: ``(tar_sd, aux_sd)``, Fu et al.'s prompt learner state dicts, ``aux_sd``
      None for a ``use_aux=False`` network (whose tar then has no coupling linears; the
      reference loads with ``strict=False``). ``token_prefix`` / ``token_suffix`` are computed as
      the reference does (token embeddings of the class texts from the network's CLIP); both the
      reference's ``load_model`` and the plugin ignore them on load. The frozen CLIP
      (``backbone.model.*``) is not part of these files. A network with MPA or an adapter has no
      reference layout (ValueError).
    """
    if kind not in KINDS:
        raise ValueError(f'unknown reference kind {kind!r}; one of {list(KINDS)}')
    return MODULES[kind].to_reference(OrderedDict((k, v.detach()) for k, v in plugin_sd.items()))


__all__ = ['KINDS', 'ReferenceLayoutError', 'convert_reference', 'detect_ipce_network', 'read_reference',
           'to_reference_layout']
