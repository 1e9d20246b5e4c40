"""Weights as data: the one place where the plugin reads and writes network weights.

Every load is tensors only: ``.safetensors`` through safetensors, anything else through
``torch.load(weights_only=True)``. A file whose loading would execute pickled code (a whole
pickled model, a custom class, a TorchScript archive such as OpenAI's ``ViT-B-32.pt``) is
refused with :class:`UnsafeWeightsError`, which says how to convert a file you trust::

    pyiqa-agiqa convert-pickle --trust-pickle old_checkpoint.pth -o weights.safetensors

Formats read by :func:`load_network_weights` (the ``pretrained_model_path`` of every
architecture, pyiqa's ``path.pretrain_network``, ``--weights`` of the CLI):

- ``.safetensors``: a flat state dict (what :func:`save_weights` writes; recommended);
- ``.pth`` / ``.pt`` / ``.bin``: a pyiqa checkpoint ``{'params': state_dict}`` (what pyiqa's
  training writes, e.g. ``experiments/NAME/models/net_best.pth``) or a bare state dict.

A leading ``module.`` (DataParallel / DistributedDataParallel) is removed from every key.

What is refused at load, in one line naming the file (:class:`WeightsFormatError`): a
floating-point tensor holding NaN or infinity (a run that diverged: every score would be NaN),
and weights that do not fit the network (:func:`fit_state_dict`: the first tensors of another
shape with the shape found and the one expected, missing and unexpected keys), the usual sign
of weights of another metric or CLIP model.

Files are written atomically (:func:`atomic_write`) with the permissions an ordinary ``open()``
would give: the user's umask for a new file, the old file's mode for a replaced one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import stat
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from ..errors import AGIQAError

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]
SAFETENSORS_SUFFIX = '.safetensors'


class UnsafeWeightsError(AGIQAError, RuntimeError):
    """A weights file would need pickle (code) execution to load; it is refused."""


class WeightsFormatError(AGIQAError, ValueError):
    """A weights file holds something other than a state dict of tensors."""


def sha256_file(path: Union[str, os.PathLike], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _convert_hint(path: PathLike) -> str:
    target = Path(path).with_suffix(SAFETENSORS_SUFFIX).name
    return (f'If you trust the file, convert it once: `pyiqa-agiqa convert-pickle --trust-pickle {path} '
            f'-o {target}` (or pyiqa_agiqa.weights.convert_trusted_checkpoint), then load the .safetensors file')


def load_file(path: PathLike, map_location: Union[str, torch.device] = 'cpu'):
    """Read a weights / state file as data: safetensors, or ``torch.load(weights_only=True)``.

    Returns what the file holds (a state dict, or a dict of state dicts and numbers).
    Raises FileNotFoundError, :class:`UnsafeWeightsError` (the file needs code execution)
    or :class:`WeightsFormatError` (not a torch / safetensors file, or truncated).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: '{path}'")
    if path.endswith(SAFETENSORS_SUFFIX):
        from safetensors import SafetensorError
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(path, device=str(map_location))
        except (SafetensorError, OSError) as error:
            raise WeightsFormatError(f"'{path}' is not a readable safetensors file: {error}") from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*TorchScript archive')
            return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise unsafe_or_unreadable(path, error) from None


def unsafe_or_unreadable(path: PathLike, error: Exception) -> Exception:
    """The error to raise for ``torch.load(weights_only=True)`` failing on ``path``."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(error))
    first = text.split('. ')[0].splitlines()[0] if text else type(error).__name__
    if 'TorchScript' in text:
        return UnsafeWeightsError(f"'{path}' is a TorchScript archive (such as OpenAI's clip package files): loading "
                                  f'it runs TorchScript code, and the plugin loads weights as tensors only. '
                                  f'{_convert_hint(path)}')
    if isinstance(error, pickle.UnpicklingError):
        return UnsafeWeightsError(f"'{path}' holds pickled objects other than tensors (loading it would run code "
                                  f'from the file: {first}); the plugin loads weights as tensors only. '
                                  f'{_convert_hint(path)}')
    return WeightsFormatError(f"'{path}' cannot be read as a torch checkpoint (truncated or not a checkpoint?): "
                              f'{first}')


def extract_state_dict(checkpoint, path: PathLike = '<memory>', key: Optional[str] = 'params') -> StateDict:
    """The network state dict inside a loaded checkpoint (``checkpoint[key]`` when present,
    ``checkpoint['state_dict']`` for Lightning / Dassl files, else the checkpoint itself),
    with a leading ``module.`` removed from the keys."""
    if not isinstance(checkpoint, Mapping):
        raise WeightsFormatError(f"'{path}' holds a {type(checkpoint).__name__}, not a state dict")
    for candidate in (key, 'params', 'state_dict'):
        if candidate and isinstance(checkpoint.get(candidate), Mapping):
            checkpoint = checkpoint[candidate]
            break
    bad = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsFormatError(f"'{path}' is not a state dict of tensors: entries {bad[:5]} are not tensors "
                                 f'(top-level keys: {list(checkpoint)[:10]})')
    check_finite(checkpoint, path)
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in checkpoint.items())


NONFINITE_FIX = ('weights of a run that diverged (or a damaged file) score every image NaN: use an earlier '
                 'checkpoint of that run (or its net_best), or train again with a lower learning rate')


def check_finite(state: Mapping[str, torch.Tensor], path: PathLike = '<memory>', what: str = '',
                 fix: str = NONFINITE_FIX) -> None:
    """Raise :class:`WeightsFormatError` naming ``path`` (``what``: which part of it) and the
    tensors if a floating-point tensor of ``state`` holds NaN or infinity."""
    bad = nonfinite_entries(state)
    if bad:
        more = f' and {len(bad) - 5} more' if len(bad) > 5 else ''
        raise WeightsFormatError(f"'{path}'{what} holds NaN or infinite values in {len(bad)} tensor(s) {bad[:5]}{more}:"
                                 f' {fix}')


def _shape(tensor) -> str:
    return 'x'.join(str(n) for n in tensor.shape) or 'scalar'


def fit_state_dict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], where: PathLike, strict: bool = True,
                   hint: Optional[str] = None) -> torch.nn.Module:
    """Load ``state`` into ``net`` after checking that it fits: every tensor of the shape the
    network has (always: torch cannot load another shape) and, with ``strict``, no missing or
    unexpected key. Else :class:`WeightsFormatError` naming ``where``, the first offending
    tensors (shape in the file, shape expected) and ``hint`` (by default: weights of another
    metric or CLIP model)."""
    own = net.state_dict()
    shapes = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state] if strict else []
    unexpected = [k for k in state if k not in own] if strict else []
    if shapes or missing or unexpected:
        name = type(net).__name__
        clip = getattr(getattr(net, 'backbone', None), 'model_name', None)
        parts = []
        if shapes:
            shown = '; '.join(f'{k}: {_shape(state[k])} in the file, {_shape(own[k])} expected' for k in shapes[:3])
            parts.append(f"{len(shapes)} tensor(s) of another shape ({shown}{'; ...' if len(shapes) > 3 else ''})")
        if strict:
            parts.append(f'{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) '
                         f'{unexpected[:5]}')
        if hint is None:
            built = f"{name} built with clip_model '{clip}'" if clip else name
            hint = (f'these are weights of another metric or CLIP model than this {built}: create the metric they '
                    "were made for, with the clip_model they were trained with (an exported folder's card.json, or "
                    "the run's option file, names both)")
        raise WeightsFormatError(f"'{where}' does not fit {name}: {', '.join(parts)}. {hint[:1].upper()}{hint[1:]}")
    net.load_state_dict(state, strict=strict)
    return net


def load_state_dict(path: PathLike, key: Optional[str] = 'params') -> StateDict:
    """The state dict of a weights file (see the module doc for the formats)."""
    return extract_state_dict(load_file(path), path, key)


def _fetch(path: PathLike) -> str:
    path = os.fspath(path)
    if path.startswith(('https://', 'http://')):
        from pyiqa.utils.download_util import load_file_from_url

        return load_file_from_url(path)
    return os.path.expanduser(path)


def load_network_weights(net: torch.nn.Module, path: PathLike, strict: bool = True,
                         key: Optional[str] = 'params') -> torch.nn.Module:
    """Load a weights file (local path or http(s) URL, cached by pyiqa) into ``net``.

    With ``strict`` the keys must match exactly; shapes must always match (see
    :func:`fit_state_dict`, whose error names the file and the offending tensors).
    """
    path = _fetch(path)
    return fit_state_dict(net, load_state_dict(path, key), path, strict)


def nonfinite_entries(state: Mapping[str, torch.Tensor]) -> list:
    """Names of floating-point tensors of ``state`` holding NaN or infinity."""
    return [k for k, v in state.items() if torch.is_floating_point(v) and not torch.isfinite(v).all()]


def atomic_write(path: PathLike, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk and move it to ``path`` in one step, so that a
    kill leaves either the old file or the complete new one, never a partial file.

    The file gets the permissions an ordinary ``open(path, 'w')`` would give it: those of the
    file it replaces, else ``0o666`` less the user's umask (and the folder's default ACL), even
    where ``write`` makes a private file of its own (safetensors writes 0600 temporaries)."""
    path = os.fspath(path)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        if os.path.lexists(tmp):
            os.remove(tmp)
        # created as open() creates a file, so the kernel applies the umask / ACL: its mode is the one to keep
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.isfile(path) else stat.S_IMODE(os.stat(tmp).st_mode)
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, 'rb') as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def save_weights(state: Union[torch.nn.Module, Mapping[str, torch.Tensor]], path: PathLike,
                 metadata: Optional[Mapping[str, str]] = None) -> str:
    """Write a network's weights: ``.safetensors`` (flat, recommended) or, for any other
    suffix, a pyiqa checkpoint ``{'params': state_dict}``. Refuses non-finite weights.

    Tensors are stored contiguous on the CPU; the write is atomic. Returns the path.
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v.detach().cpu().contiguous())
                        for k, v in state.items())
    bad = nonfinite_entries(state)
    if bad:
        raise ValueError(f"refusing to write '{path}': non-finite values in {bad[:5]}")
    path = os.fspath(path)
    if path.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory (e.g. tied weights): store copies
        state = OrderedDict((k, v.clone()) for k, v in state.items())
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=dict(metadata or {})))
    else:
        atomic_write(path, lambda tmp: torch.save({'params': state}, tmp))
    return path


def convert_trusted_checkpoint(src: PathLike, dst: PathLike, key: Optional[str] = 'params') -> str:
    """Convert a checkpoint that needs pickle execution (a file YOU TRUST) into a tensors-only
    file (``.safetensors`` recommended). TorchScript archives are read with ``torch.jit.load``.

    This is the only function of the plugin that runs code from a file; call it only on
    files from a source you trust.
    """
    src = os.fspath(src)
    try:
        checkpoint = dict(torch.jit.load(src, map_location='cpu').state_dict())
        for extra in ('input_resolution', 'context_length', 'vocab_size'):  # OpenAI clip archives
            checkpoint.pop(extra, None)
    except (RuntimeError, ValueError):
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if isinstance(checkpoint, torch.nn.Module):
        checkpoint = checkpoint.state_dict()
    return save_weights(extract_state_dict(checkpoint, src, key), dst)
