"""Checks of option keys, shared by the architectures, the datasets and training.

Every check raises :class:`~pyiqa_agiqa.errors.OptionError` naming the section, the
unknown key(s), the known keys and a "did you mean" when one is close.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Iterable, Optional

from .errors import OptionError


def unknown_keys_error(unknown: Iterable[str], known: Iterable[str], where: str) -> OptionError:
    """An OptionError for keys of section ``where`` that are not in ``known``."""
    unknown, known = sorted(unknown), sorted(known)
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
        if close:
            hints.append(f"'{key}' -> did you mean '{close[0]}'?")
    hint = f" ({'; '.join(hints)})" if hints else ''
    return OptionError(f'unknown option(s) {unknown} in section {where}{hint}; known: {known}')


def check_keys(section, known: Iterable[str], where: str) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        raise OptionError(f'section {where} must be a mapping of options, got {type(section).__name__}')
    unknown = set(section) - set(known)
    if unknown:
        raise unknown_keys_error(unknown, known, where)


def constructor_keys(cls) -> Optional[set]:
    """Names of the keyword arguments of ``cls`` (None if it takes **kwargs)."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_constructor_options(cls, options: dict, where: str, skip: Iterable[str] = ('type',)) -> None:
    """Every key of ``options`` (but ``skip``) must be an argument of ``cls``."""
    known = constructor_keys(cls)
    if known is not None:
        check_keys({k: v for k, v in options.items() if k not in skip}, known, where)


def registry_entry(registry, name: str, what: str, where: str, lazy=None):
    """``registry.get(name)`` or an OptionError listing close names."""
    if lazy is not None and name not in registry:
        lazy(name)
    if not isinstance(name, str) or name not in registry:
        known = list(registry.keys()) + list(getattr(registry, '_lazy_map', {}))  # named but not yet imported too
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f'; did you mean {close}?' if close else ''
        raise OptionError(f"{where}: unknown {what} '{name}'{hint}")
    return registry.get(name)
