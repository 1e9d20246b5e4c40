"""DCMPL's base (``dcmpl-ref``): Fu et al.'s CLIP-AGIQA prompt learners.

``dcmpl-ref`` -- NOT DCMPL's own release: the layout of the ``.pth`` its authors published (a
    binary on Google Drive) is unknown, and it is not supported. This kind converts DCMPL's
    BASE, Fu et al.'s CLIP-AGIQA (IEEE SPL 2024, JunFu1995/CLIP-AGIQA), whose
    ``train_test_clip_auxiliary.py`` saves two bare state dicts per run:
    ``{model}_{dataset}_{n_ctx}_tar_best.pth`` (``prompt_learner_tar``: ``ctx`` [8, 512],
    ``token_prefix`` [2, 1, 512], ``token_suffix`` [2, 68, 512], ``proj.*`` [768, 1536],
    ``prompts_text.0-10`` [8, 512], ``prompts_vis.0-11`` [8, 768],
    ``compound_prompt_projections.0-10.*``) and ``..._aux_best.pth`` (``prompt_learner_aux``:
    the same without the coupling linears). Give the tar file, and the aux file for a run with
    ``use_aux=1`` (order free; the tar file is the one with ``proj.weight``). The frozen OpenAI
    CLIP ViT-B/32 is not in those files: ``clip_weights`` supplies it (a state-dict file in
    OpenAI / open_clip naming, optionally prefixed ``backbone.model.``, or an open_clip tag;
    default: ``'openai'``, built as the plugin builds ``clip_pretrained``). The result is the
    plugin's DCMPL with the base's options: ``mpa=False, adapter=False`` (the base has neither),
    ``use_aux=True`` with an aux file (outputs quality and alignment), else ``use_aux=False``
    (quality only; the tar file's coupling linears, which that branch does not use, are dropped).
    ``token_prefix`` / ``token_suffix`` are FIXED token embeddings of the class texts (the
    reference's own ``load_model`` deletes them; the plugin recomputes them from its tokenizer and
    CLIP): their shapes are checked, and a warning says when their values differ from the token
    embeddings of the CLIP used (a different CLIP than the prompts were trained with). When the
    reference's run folder ``use_aux_{a}_textdepth_{t}_visiondepth_{v}_lamda_{l}`` is in the
    path, it is checked against the files given (a ``use_aux=1`` tar without its aux file, or a
    ``use_aux=0`` run with depth 0, is refused); renamed folders cannot be checked.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence, Tuple

import torch

from ...archs.dcmpl_arch import ALIGNMENT_TEXTS, QUALITY_TEXTS
from ...weights.io import sha256_file
from .common import (CLIP_PREFIX, PathLike, ReferenceLayoutError, StateDict, _Plan, _clip_keys, _fp32, _state_dict,
                     read_reference)

EXPECTED = ("Fu et al.'s CLIP-AGIQA prompt learners (JunFu1995/CLIP-AGIQA): *_tar_best.pth {ctx, "
            'token_prefix, token_suffix, proj.*, prompts_text.i, prompts_vis.i, '
            'compound_prompt_projections.i.*} and *_aux_best.pth {ctx, token_prefix, token_suffix, '
            "prompts_text.i, prompts_vis.i}, plus the frozen CLIP (clip_weights, OpenAI naming); DCMPL's own "
            'released .pth is not supported')  # the layout, for messages


DCMPL_TAR, DCMPL_AUX = 'prompt_learner_tar.', 'prompt_learner_aux.'
DCMPL_BUFFERS = ('token_prefix', 'token_suffix')
DCMPL_RUN = re.compile(r'use_aux_(\d+)_textdepth_(\d+)_visiondepth_(\d+)')


def _prompt_keys(sd: StateDict, path: PathLike, prefix: str, keep_coupling: bool):
    """A prompt learner of Fu et al. -> ``prefix + key``, without the fixed token buffers (and
    without the coupling linears unless ``keep_coupling``)."""
    mapped, origin = OrderedDict(), {}
    for key, value in sd.items():
        if key in DCMPL_BUFFERS or (not keep_coupling and key.split('.')[0] in ('proj', 'compound_prompt_projections')):
            continue
        mapped[prefix + key], origin[prefix + key] = _fp32(value), (path, key)
    return mapped, origin


def _dcmpl_split(inputs: Sequence[str]):
    """(tar path, aux path or None, tar state dict, aux state dict or None)."""
    if len(inputs) not in (1, 2):
        raise ValueError(f'dcmpl-ref converts the tar file and optionally the aux file, got {len(inputs)} files')
    files = [(p, _state_dict(read_reference(p), p)) for p in inputs]
    tars = [i for i, (_, sd) in enumerate(files) if 'proj.weight' in sd]
    if len(tars) != 1:
        raise ReferenceLayoutError(
            f'dcmpl-ref: {len(tars)} of the files {inputs} hold proj.weight; exactly one must (the *_tar_best.pth '
            f"prompt learner). Expected: {EXPECTED}")
    tar = files.pop(tars[0])
    aux = files[0] if files else (None, None)
    return tar[0], aux[0], tar[1], aux[1]


def _dcmpl_check_run(tar_path: str, has_aux: bool) -> None:
    """Refuse file sets that contradict the reference's run folder name (when it is in the path)."""
    match = next((m for m in map(DCMPL_RUN.search, Path(tar_path).resolve().parts) if m), None)
    if match is None:
        return
    use_aux, text_depth, vision_depth = (int(g) for g in match.groups())
    if use_aux and not has_aux:
        raise ValueError(f"'{tar_path}' comes from a use_aux=1 run ({match.group(0)}): its main visual prompts are "
                         f'coupled to the auxiliary ones, so give the *_aux_best.pth file of the same run too')
    if not use_aux and has_aux:
        raise ValueError(f"'{tar_path}' comes from a use_aux=0 run ({match.group(0)}): its aux file was never "
                         f'trained; give the tar file only')
    if not use_aux and 0 in (text_depth, vision_depth):
        raise ValueError(f"'{tar_path}' comes from a run with text or vision prompt depth 0 ({match.group(0)}); "
                         f'the plugin has deep prompts in every layer and cannot reproduce it')


def _dcmpl_clip(clip_weights, clip_model: str) -> Tuple[StateDict, str, str, str]:
    """(CLIP state dict in OpenAI naming, its name in messages, note for the card, clip_pretrained)."""
    spec = os.fspath('openai' if clip_weights is None else clip_weights)
    if os.path.isfile(spec):
        sd = _state_dict(read_reference(spec), spec)
        if any(k.startswith(CLIP_PREFIX) for k in sd):  # a plugin weights file
            sd = OrderedDict((k[len(CLIP_PREFIX):], v) for k, v in sd.items() if k.startswith(CLIP_PREFIX))
        return sd, spec, f'CLIP {os.path.basename(spec)} (sha256 {sha256_file(spec)})', os.path.abspath(spec)
    from ...archs.backbone.clip import create_clip

    return create_clip(clip_model, spec).state_dict(), f'CLIP {clip_model}/{spec}', \
        f"CLIP open_clip {clip_model} / '{spec}'", spec


def _check_token_buffers(net, parts) -> None:
    """The fixed token embeddings of the files against the CLIP used: shape -> error; values ->
    warning (the reference ignores them on load; a difference means another CLIP or texts)."""
    emb = net.backbone.model.token_embedding.weight.detach()
    for sd, tokens, path in parts:
        full = emb[tokens]
        for name, want in (('token_prefix', full[:, :1]), ('token_suffix', full[:, 1 + net.n_ctx:])):
            if name not in sd:
                continue
            if tuple(sd[name].shape) != tuple(want.shape):
                raise ReferenceLayoutError(
                    f"'{path}': {name} has shape {tuple(sd[name].shape)}, expected {tuple(want.shape)} (two class "
                    f"texts, context {tokens.shape[1]}, n_ctx {net.n_ctx}). Expected: {EXPECTED}")
            if not torch.allclose(_fp32(sd[name]), want, rtol=1e-3, atol=1e-5):
                warnings.warn(f"'{path}': {name} differs from the token embeddings of the CLIP used (max "
                              f'{(_fp32(sd[name]) - want).abs().max():.3g}): the prompts were probably trained '
                              f'with another CLIP or other class texts', stacklevel=4)


def plan(inputs, network, clip_weights) -> _Plan:
    """What the reference file(s) of this kind hold, mapped to the plugin's names."""
    tar_path, aux_path, tar, aux = _dcmpl_split(inputs)
    _dcmpl_check_run(tar_path, aux is not None)
    options = {'clip_model': 'ViT-B-32-quickgelu', **network, 'use_aux': aux is not None, 'mpa': False,
               'adapter': False}
    if 'n_ctx' not in network and 'ctx' in tar and tar['ctx'].dim() == 2 and tar['ctx'].shape[0] != 8:
        options['n_ctx'] = int(tar['ctx'].shape[0])
    clip_sd, clip_name, note, clip_tag = _dcmpl_clip(clip_weights, options['clip_model'])
    files = {'tar': tar_path, 'clip': clip_name, **({'aux': aux_path} if aux is not None else {})}
    mapped, origin, unknown = _clip_keys(clip_sd, clip_name)
    for sd, path, prefix in ((tar, tar_path, DCMPL_TAR), (aux, aux_path, DCMPL_AUX)):
        if sd is not None:
            more, more_origin = _prompt_keys(sd, path, prefix, keep_coupling=aux is not None)
            mapped.update(more)
            origin.update(more_origin)

    def check(net):
        _check_token_buffers(net, [(tar, net.tokens_quality, tar_path)]
                             + ([(aux, net.tokens_alignment, aux_path)] if aux is not None else []))

    return _Plan(options, ['quality', 'alignment'] if aux is not None else ['quality'], mapped, origin, unknown,
                 files, note, clip_tag, check)


def _token_buffers(plugin_sd: Mapping[str, torch.Tensor], n_ctx: int, texts: Sequence[str]):
    """(token_prefix, token_suffix) as the reference computes them: token embeddings of
    ``'X X ... X {text}'`` (CLIP tokenizer), the start token and everything after the context."""
    import open_clip

    emb = plugin_sd[CLIP_PREFIX + 'token_embedding.weight'].detach().float()
    length = plugin_sd[CLIP_PREFIX + 'positional_embedding'].shape[0]
    full = emb[open_clip.tokenize([' '.join(['X'] * n_ctx + [t]) for t in texts], context_length=length)]
    return full[:, :1].clone(), full[:, 1 + n_ctx:].clone()


def to_reference(sd: StateDict):
    """A plugin state dict (detached) as ``(tar_sd, aux_sd)``, Fu et al.'s prompt learners."""
    extra = [k for k in sd if not k.startswith((CLIP_PREFIX, DCMPL_TAR, DCMPL_AUX))]
    if extra:
        raise ValueError(f'dcmpl-ref: the base has no place for {extra[:5]} (MPA / adapter weights)')
    n_ctx = sd[DCMPL_TAR + 'ctx'].shape[-2]
    parts = []
    for prefix, texts in ((DCMPL_TAR, QUALITY_TEXTS), (DCMPL_AUX, ALIGNMENT_TEXTS)):
        own = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        if not own:
            parts.append(None)
            continue
        prefix_emb, suffix_emb = _token_buffers(sd, n_ctx, texts)
        parts.append(OrderedDict([('ctx', own.pop('ctx')), ('token_prefix', prefix_emb),
                                  ('token_suffix', suffix_emb), *own.items()]))
    return parts[0], parts[1]
