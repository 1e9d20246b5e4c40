"""Caching features that depend on a network's weights only (fixed texts, class prompts).

:class:`WeightsCache` keeps one value per key and recomputes it as soon as anything it
depends on changes: any of the given parameters (an optimiser step or ``load_state_dict``
changes them in place, which bumps torch's version counter; ``.to()`` / ``.half()`` give them
new storage), the module's training mode, the dtype / device asked for. It never caches while
autograd records (the value must then be part of the graph). So a cached value is never
stale, and the cache is invisible to training. One hole, which no code of the plugin uses:
a write through ``param.data`` (e.g. an EMA's ``p.data.mul_``) bumps no version counter;
call :meth:`WeightsCache.clear` after such writes.

Example (inside a network)::

    self._texts = WeightsCache()
    ...
    feats = self._texts.get('authenticity', self.backbone.text_parameters(),
                            lambda: self.backbone.encode_text(TEXTS))
"""

from __future__ import annotations

import uuid
from typing import Callable, Dict, Hashable, Iterable, Sequence, Tuple

import torch
from torch.multiprocessing.reductions import StorageWeakRef


def computation_context(device: torch.device) -> tuple:
    """The global modes a computation on ``device`` runs under now, for a cache key: autocast
    (a value computed under bf16 autocast is not the fp32 one), grad and inference mode (kernels
    may differ, and an inference-mode tensor must not reach autograd), so that a cached value is
    only reused where recomputing it would give the same tensor."""
    kind = device.type
    autocast = torch.is_autocast_enabled(kind)
    return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), autocast,
            torch.get_autocast_dtype(kind) if autocast else None)


def weights_token(parameters: Iterable[torch.Tensor], *extra: Hashable) -> Tuple:
    """A value that changes whenever one of ``parameters`` is modified or replaced (see
    :class:`StorageGuard` for storages replaced at the same address)."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parameters) + tuple(extra)


class StorageGuard:
    """A number that changes whenever the storage of one of the parameters is not the one seen at
    the previous call with the same key: replaced, or freed since. ``weights_token`` compares
    addresses, and a dtype / device round trip (``.half().float()``, ``set_precision``) can give
    the parameters new storages at the old addresses with the old version counters; a freed
    storage is seen through a weak reference (which keeps its address from being reused).
    A copy (``copy.deepcopy`` of the network, pickling) starts afresh, with values no copy
    of the cache can hold."""

    def __init__(self):
        self._epoch = uuid.uuid4().hex
        self._seen: Dict[str, tuple] = {}  # key: (number, [(weak ref to storage, address)])

    def __reduce__(self):  # weak references are not copied (each frees its own on deletion)
        return StorageGuard, ()

    def __call__(self, key: str, params: Sequence[torch.Tensor]) -> tuple:
        number, seen = self._seen.get(key, (0, None))
        if (seen is None or len(seen) != len(params)
                or any(ref.expired() or ptr != p.data_ptr() for (ref, ptr), p in zip(seen, params))):
            number += 1
            self._seen[key] = (number, [(StorageWeakRef(p.untyped_storage()), p.data_ptr()) for p in params])
        return self._epoch, number


class WeightsCache:
    """{key: value} of weight-only computations, each valid for one weights token."""

    def __init__(self):
        self._entries: Dict[Hashable, Tuple[Tuple, torch.Tensor]] = {}
        self._storages = StorageGuard()

    def __reduce__(self):  # a copied network starts with an empty cache
        return WeightsCache, ()

    def get(self, key: Hashable, parameters: Iterable[torch.Tensor], compute: Callable[[], torch.Tensor],
            *extra: Hashable) -> torch.Tensor:
        """``compute()``, or the value cached under ``key`` if the weights token, ``extra`` and
        the :func:`computation_context` on the parameters' device are unchanged. While autograd
        records (``torch.is_grad_enabled()`` and a parameter requires grad), nothing is cached."""
        parameters = list(parameters)
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
            self._entries.pop(key, None)
            return compute()
        context = computation_context(parameters[0].device) if parameters else ()
        token = weights_token(parameters, *extra, *context, self._storages(key, parameters))
        entry = self._entries.get(key)
        if entry is not None and entry[0] == token:
            return entry[1]
        value = compute()
        if isinstance(value, torch.Tensor):
            value = value.detach()
        self._entries[key] = (token, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
