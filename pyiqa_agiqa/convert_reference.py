"""Converters from checkpoints of the methods' REFERENCE code to the plugin's exported-weights
folder (:mod:`pyiqa_agiqa.exported`), so that they load into the plugin's metrics::

    from pyiqa_agiqa.convert_reference import convert_reference
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
    with ``pyiqa-agiqa convert-weights --trust-pickle --key model_state_dict``) is accepted too.
    Each file is the reference's best epoch FOR ONE OUTPUT (its file name; ``correspondence`` is
    the plugin's ``consistency``) but holds the whole network: the card records which.

``ipce-ref`` -- IPCE (woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC),
    ONE file: ``{'model_state_dict': sd, ...}`` (training scripts; ``epoch`` /
    ``optimizer_state_dict`` may be there too) or ``sd`` itself (the NTIRE inference weights).
    ``sd`` is the raw OpenAI CLIP (``clip.load(..., jit=False)``), no prefix, mixed fp16 / fp32;
    ``input_resolution`` / ``context_length`` / ``vocab_size`` entries are dropped. Plugin names:
    ``backbone.model.<key>``. The CLIP is recognised by ``visual.conv1.weight`` and
    ``visual.positional_embedding``: ViT-B/32 -> ``clip_model='ViT-B-32-quickgelu', min_side=512``
    (AGIQA-1K/3K, AIGCIQA2023), ViT-L/14 -> ``'ViT-L-14-quickgelu', min_side=768`` (AIGIQA-20K);
    anything else is an error unless ``network=`` names the options.

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

``network=`` (optional dict) overrides / completes the plugin network options: needed for CLIPs
the converter does not recognise (e.g. the tests' tiny ``AGIQA-Tiny-ViT``), or to set options
such as ``min_side``. Keys must be constructor options of the architecture, except
``pretrained``, ``pretrained_model_path``, ``output``, ``cache_dir``, ``clip_pretrained`` (and,
for ``dcmpl-ref``, ``mpa`` / ``adapter`` / ``use_aux``, fixed by the base).

The inverse, :func:`to_reference_layout`, turns a plugin state dict into the reference's
structure (for tests, and to run the reference code on plugin-trained weights).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from .errors import AGIQAError
from .archs.dcmpl_arch import ALIGNMENT_TEXTS, QUALITY_TEXTS
from .exported import architecture_defaults, new_card, write_exported
from .weights import UnsafeWeightsError, WeightsFormatError, extract_state_dict, load_file, sha256_file

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]

KINDS = ('cianet-ref', 'ipce-ref', 'dcmpl-ref')
ARCHITECTURES = {'cianet-ref': 'CIANet', 'ipce-ref': 'IPCE', 'dcmpl-ref': 'DCMPL'}
CLIP_PREFIX = 'backbone.model.'
OPENAI_EXTRAS = ('input_resolution', 'context_length', 'vocab_size')  # in OpenAI's archives, not weights
# reference prefix -> plugin prefix
CIANET_PREFIXES = (('base.', CLIP_PREFIX), ('CIALayer.', 'cia_layer.'), ('MLP.', 'head.'))
CIANET_FILE = re.compile(r'^(quality|authenticity|correspondence)_best_ckpt\.pt$')
CIANET_OUTPUT_OF_FILE = {'quality': 'quality', 'authenticity': 'authenticity', 'correspondence': 'consistency'}
# (visual.conv1.weight shape, visual.positional_embedding shape) -> IPCE network options
IPCE_CLIPS = {
    ((768, 3, 32, 32), (50, 768)): dict(clip_model='ViT-B-32-quickgelu', min_side=512),
    ((1024, 3, 14, 14), (257, 1024)): dict(clip_model='ViT-L-14-quickgelu', min_side=768),
}
DCMPL_TAR, DCMPL_AUX = 'prompt_learner_tar.', 'prompt_learner_aux.'
DCMPL_BUFFERS = ('token_prefix', 'token_suffix')
DCMPL_RUN = re.compile(r'use_aux_(\d+)_textdepth_(\d+)_visiondepth_(\d+)')
NOT_OVERRIDABLE = ('pretrained', 'pretrained_model_path', 'output', 'cache_dir', 'clip_pretrained')
EXPECTED = {
    'cianet-ref': "CIA-Net's {'model_state_dict': {base.* (OpenAI CLIP ViT-B/32), CIALayer.*, MLP.fc1.0.*, "
                  "MLP.fc2.0.*, logit_scale}, ...} (TanSongBai/CIANet train.py); a CLIP other than ViT-B/32 "
                  "needs network={'clip_model': ...}",
    'ipce-ref': "IPCE's {'model_state_dict': OpenAI CLIP state dict} or the bare OpenAI CLIP state dict "
                "(visual.*, transformer.*, token_embedding.weight, positional_embedding, ln_final.*, "
                "text_projection, logit_scale)",
    'dcmpl-ref': "Fu et al.'s CLIP-AGIQA prompt learners (JunFu1995/CLIP-AGIQA): *_tar_best.pth {ctx, "
                 "token_prefix, token_suffix, proj.*, prompts_text.i, prompts_vis.i, "
                 "compound_prompt_projections.i.*} and *_aux_best.pth {ctx, token_prefix, token_suffix, "
                 "prompts_text.i, prompts_vis.i}, plus the frozen CLIP (clip_weights, OpenAI naming); "
                 "DCMPL's own released .pth is not supported",
}


class ReferenceLayoutError(AGIQAError, ValueError):
    """A reference checkpoint that does not have the layout its kind expects."""


# ----- reading -----

def _numpy_scalar_globals() -> list:
    """The pickle globals numpy needs to rebuild a numeric scalar (``np.float64(0.9)``)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    names = ('Float16DType', 'Float32DType', 'Float64DType', 'Int32DType', 'Int64DType', 'BoolDType')
    dtypes = [getattr(np.dtypes, n) for n in names if hasattr(getattr(np, 'dtypes', None), n)]
    # files written under numpy 1 name the function numpy.core.multiarray.scalar, under numpy 2
    # numpy._core.multiarray.scalar: both names map to the same function
    return [scalar, (scalar, 'numpy.core.multiarray.scalar'), (scalar, 'numpy._core.multiarray.scalar'),
            np.dtype, *dtypes]


def read_reference(path: PathLike, allow_numpy_scalars: bool = False):
    """What a reference file holds, read as data (``torch.load(weights_only=True)`` / safetensors).

    With ``allow_numpy_scalars`` (CIA-Net's ``all_results``), numpy's scalar reconstruction is
    added to torch's allow-list for this one load: ``numpy.core.multiarray.scalar(dtype, bytes)``,
    ``numpy.dtype`` and the numeric dtype classes (float16/32/64, int32/64, bool), whose state is
    set with ``dtype.__setstate__``. None of them imports a module, looks an attribute up by name
    or calls anything given in the file: they turn a dtype code and raw bytes into a number. Every
    other global is still refused by torch's weights-only unpickler, so a payload anywhere in the
    file still raises :class:`UnsafeWeightsError` without running (numpy ARRAYS, which need
    ``_reconstruct``, are refused as well).
    """
    context = (torch.serialization.safe_globals(_numpy_scalar_globals()) if allow_numpy_scalars
               else contextlib.nullcontext())
    try:
        with context:
            return load_file(path)
    except UnsafeWeightsError as error:
        raise UnsafeWeightsError(
            f'{error}. A reference checkpoint you trust: `pyiqa-agiqa convert-weights --trust-pickle {path} --key '
            f'model_state_dict -o ref.safetensors` (the key of CIA-Net / IPCE training files; bare state dicts '
            f'need none), then convert ref.safetensors with this converter') from None


def _state_dict(obj, path: PathLike) -> StateDict:
    """The state dict inside a loaded reference file (``model_state_dict`` / ``params`` /
    ``state_dict`` entry, else the object itself), tensors only, ``module.`` removed."""
    try:
        return extract_state_dict(obj, path, key='model_state_dict')
    except WeightsFormatError as error:
        raise ReferenceLayoutError(str(error)) from None


def _fp32(v: torch.Tensor) -> torch.Tensor:
    return v.detach().float() if torch.is_floating_point(v) else v.detach()


# ----- reference -> plugin key maps (each returns {plugin key: tensor}, {plugin key: (file, ref key)}) -----

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


def _clip_keys(sd: StateDict, path: PathLike):
    """An OpenAI / open_clip CLIP state dict -> ``backbone.model.*`` (archive metadata dropped)."""
    mapped, origin = OrderedDict(), {}
    for key, value in sd.items():
        if key not in OPENAI_EXTRAS:
            mapped[CLIP_PREFIX + key], origin[CLIP_PREFIX + key] = _fp32(value), (path, key)
    return mapped, origin, []


def _prompt_keys(sd: StateDict, path: PathLike, prefix: str, keep_coupling: bool):
    """A prompt learner of Fu et al. -> ``prefix + key``, without the fixed token buffers (and
    without the coupling linears unless ``keep_coupling``)."""
    mapped, origin = OrderedDict(), {}
    for key, value in sd.items():
        if key in DCMPL_BUFFERS or (not keep_coupling and key.split('.')[0] in ('proj', 'compound_prompt_projections')):
            continue
        mapped[prefix + key], origin[prefix + key] = _fp32(value), (path, key)
    return mapped, origin


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


# ----- networks -----

def _build(architecture: str, network: Mapping) -> torch.nn.Module:
    """The plugin network with random weights (nothing read or downloaded)."""
    from .archs import CIANet, DCMPL, IPCE

    return {'CIANet': CIANet, 'IPCE': IPCE, 'DCMPL': DCMPL}[architecture](pretrained=False, **network)


def _checked_network_options(kind: str, network: Optional[Mapping]) -> dict:
    network = dict(network or {})
    fixed = NOT_OVERRIDABLE + (('mpa', 'adapter', 'use_aux') if kind == 'dcmpl-ref' else ())
    allowed = set(architecture_defaults(ARCHITECTURES[kind])) - set(fixed)
    bad = sorted(set(network) - allowed)
    if bad:
        raise ValueError(f'{kind}: network options {bad} cannot be set here (allowed: {sorted(allowed)})')
    return network


def detect_ipce_network(sd: Mapping[str, torch.Tensor], path: PathLike = '<state dict>') -> dict:
    """IPCE network options ({'clip_model', 'min_side'}) of an OpenAI CLIP state dict, from the
    shapes of ``visual.conv1.weight`` and ``visual.positional_embedding``. Raises
    :class:`ReferenceLayoutError` for any other CLIP."""
    shapes = tuple(tuple(sd[k].shape) if k in sd else None
                   for k in ('visual.conv1.weight', 'visual.positional_embedding'))
    if shapes[0] is None:
        raise ReferenceLayoutError(f"'{path}' has no visual.conv1.weight: not an OpenAI CLIP state dict (keys "
                                   f"{list(sd)[:5]} ...). Expected: {EXPECTED['ipce-ref']}")
    if shapes not in IPCE_CLIPS:
        raise ReferenceLayoutError(
            f"'{path}': CLIP with visual.conv1.weight {shapes[0]} and visual.positional_embedding {shapes[1]} is "
            f'neither OpenAI ViT-B/32 nor ViT-L/14 (the CLIPs IPCE was published with); if you know the model, '
            f"pass network={{'clip_model': ..., 'min_side': ...}}. Expected: {EXPECTED['ipce-ref']}")
    return dict(IPCE_CLIPS[shapes])


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


# ----- the three kinds -----

class _Plan(NamedTuple):
    """What a kind's reader found: network options, trained outputs, the mapped state dict with
    each key's origin (file, reference key), unmapped reference keys, the files by role, a note
    for the card's source, the CLIP tag for the card, and a check of the network holding the
    converted weights."""
    options: dict
    outputs: List[str]
    mapped: StateDict
    origin: dict
    unknown: list
    files: Dict[str, str]
    note: str = ''
    clip_pretrained: Optional[str] = None
    check: Optional[Callable[[torch.nn.Module], None]] = None


def _single(kind: str, inputs: Sequence[str]) -> str:
    if len(inputs) != 1:
        raise ValueError(f'{kind} converts one checkpoint file, got {len(inputs)}')
    return inputs[0]


def _cianet(inputs, network, clip_weights) -> _Plan:
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


def _ipce(inputs, network, clip_weights) -> _Plan:
    path = _single('ipce-ref', inputs)
    sd = _state_dict(read_reference(path), path)
    if 'clip_model' in network:
        known = {o['clip_model']: o['min_side'] for o in IPCE_CLIPS.values()}
        options = {'min_side': known.get(network['clip_model'], 512), **network}
    else:
        options = {**detect_ipce_network(sd, path), **network}
    mapped, origin, unknown = _clip_keys(sd, path)
    return _Plan(options, ['score'], mapped, origin, unknown, {'checkpoint': path})


def _dcmpl_split(inputs: Sequence[str]):
    """(tar path, aux path or None, tar state dict, aux state dict or None)."""
    if len(inputs) not in (1, 2):
        raise ValueError(f'dcmpl-ref converts the tar file and optionally the aux file, got {len(inputs)} files')
    files = [(p, _state_dict(read_reference(p), p)) for p in inputs]
    tars = [i for i, (_, sd) in enumerate(files) if 'proj.weight' in sd]
    if len(tars) != 1:
        raise ReferenceLayoutError(
            f'dcmpl-ref: {len(tars)} of the files {inputs} hold proj.weight; exactly one must (the *_tar_best.pth '
            f"prompt learner). Expected: {EXPECTED['dcmpl-ref']}")
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
    from .archs.clip_backbone import create_clip

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
                    f"texts, context {tokens.shape[1]}, n_ctx {net.n_ctx}). Expected: {EXPECTED['dcmpl-ref']}")
            if not torch.allclose(_fp32(sd[name]), want, rtol=1e-3, atol=1e-5):
                warnings.warn(f"'{path}': {name} differs from the token embeddings of the CLIP used (max "
                              f'{(_fp32(sd[name]) - want).abs().max():.3g}): the prompts were probably trained '
                              f'with another CLIP or other class texts', stacklevel=4)


def _dcmpl(inputs, network, clip_weights) -> _Plan:
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


CONVERTERS = {'cianet-ref': _cianet, 'ipce-ref': _ipce, 'dcmpl-ref': _dcmpl}
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
    plan = CONVERTERS[kind](inputs, _checked_network_options(kind, network), clip_weights)
    architecture = ARCHITECTURES[kind]
    net = _build(architecture, plan.options)
    state = _fit(kind, net, plan.mapped, plan.origin, plan.unknown, plan.files)
    if plan.check is not None:
        plan.check(net)  # on the network with the converted weights
    hashes = ', '.join(f'{os.path.basename(p)} (sha256 {sha256_file(p)})' for p in inputs)
    source = f"converted by pyiqa_agiqa.convert_reference (kind '{kind}') from the {SOURCES[kind]}: {hashes}"
    source += f'; {plan.note}' if plan.note else ''
    card_network = dict(plan.options, **({'clip_pretrained': plan.clip_pretrained} if plan.clip_pretrained else {}))
    card = new_card(architecture, card_network, plan.outputs, source=source)
    return write_exported(output_folder, state, card, overwrite)


# ----- plugin -> reference -----

def _token_buffers(plugin_sd: Mapping[str, torch.Tensor], n_ctx: int, texts: Sequence[str]):
    """(token_prefix, token_suffix) as the reference computes them: token embeddings of
    ``'X X ... X {text}'`` (CLIP tokenizer), the start token and everything after the context."""
    import open_clip

    emb = plugin_sd[CLIP_PREFIX + 'token_embedding.weight'].detach().float()
    length = plugin_sd[CLIP_PREFIX + 'positional_embedding'].shape[0]
    full = emb[open_clip.tokenize([' '.join(['X'] * n_ctx + [t]) for t in texts], context_length=length)]
    return full[:, :1].clone(), full[:, 1 + n_ctx:].clone()


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
    sd = OrderedDict((k, v.detach()) for k, v in plugin_sd.items())
    if kind == 'cianet-ref':
        ref = OrderedDict()
        for key, value in sd.items():
            prefix = next(((r, o) for r, o in CIANET_PREFIXES if key.startswith(o)), None)
            if prefix is None:
                raise ValueError(f'cianet-ref: {key!r} is not a CIANet key')
            ref[prefix[0] + key[len(prefix[1]):]] = value
        ref['logit_scale'] = ref['base.logit_scale']
        return {'epoch': 0, 'model_state_dict': ref, 'optimizer_state_dict': {}, 'all_results': {}}
    if kind == 'ipce-ref':
        bad = [k for k in sd if not k.startswith(CLIP_PREFIX)]
        if bad:
            raise ValueError(f'ipce-ref: {bad[:5]} are not IPCE (CLIP) keys')
        return {'model_state_dict': OrderedDict((k[len(CLIP_PREFIX):], v) for k, v in sd.items())}
    if kind == 'dcmpl-ref':
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
    raise ValueError(f'unknown reference kind {kind!r}; one of {list(KINDS)}')


__all__ = ['KINDS', 'ReferenceLayoutError', 'convert_reference', 'detect_ipce_network', 'read_reference',
           'to_reference_layout']
