"""What the converters of the reference codebases share: reading a reference file as data,
the CLIP key map, building the plugin network with random weights, the plan a converter returns."""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from ...errors import AGIQAError
from ...weights.io import UnsafeWeightsError, WeightsFormatError, extract_state_dict, load_file

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]

CLIP_PREFIX = 'backbone.model.'
OPENAI_EXTRAS = ('input_resolution', 'context_length', 'vocab_size')  # in OpenAI's archives, not weights
NOT_OVERRIDABLE = ('pretrained', 'pretrained_model_path', 'output', 'cache_dir', 'clip_pretrained')


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
            f'{error}. A reference checkpoint you trust: `pyiqa-agiqa convert-pickle --trust-pickle {path} --key '
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


def _clip_keys(sd: StateDict, path: PathLike):
    """An OpenAI / open_clip CLIP state dict -> ``backbone.model.*`` (archive metadata dropped)."""
    mapped, origin = OrderedDict(), {}
    for key, value in sd.items():
        if key not in OPENAI_EXTRAS:
            mapped[CLIP_PREFIX + key], origin[CLIP_PREFIX + key] = _fp32(value), (path, key)
    return mapped, origin, []


# ----- networks -----

def _build(architecture: str, network: Mapping) -> torch.nn.Module:
    """The plugin network with random weights (nothing read or downloaded)."""
    from ...archs import CIANet, DCMPL, IPCE

    return {'CIANet': CIANet, 'IPCE': IPCE, 'DCMPL': DCMPL}[architecture](pretrained=False, **network)


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


# ----- plugin -> reference -----
