"""Fine-tuned weights by name: what ``create_metric(..., weights=SPEC)`` and
``pyiqa-agiqa score METRIC --weights SPEC`` accept (the hub side, and ``push``, are in
:mod:`pyiqa_agiqa.weights.hub`).

SPEC is one of (tried in this order):

- a name of :data:`NAMED_WEIGHTS` (e.g. ``'ipce-agiqa3k'``), which maps to one of the below;
- ``hf://[datasets/|spaces/]org/repo[@revision][/path]``: an exported folder (or a single
  weights file) in a Hugging Face hub repository, fetched with ``huggingface_hub`` into its
  cache (the grammar, and who decides offline use: :mod:`pyiqa_agiqa.weights.hub`). Give the
  revision (a commit hash) to pin it; the weights are checked against the SHA-256 of the card;
- an ``http(s)://`` URL of a weights file (downloaded and cached by pyiqa);
- a local exported folder (``pyiqa-agiqa export`` / ``convert-reference`` output: weights.safetensors +
  card.json): the card is checked against the metric (architecture, network options such as
  the CLIP model, trained outputs) and the weights against the card's SHA-256;
- a local weights file: ``.safetensors`` or a pyiqa ``.pth`` (``{'params': ...}``), loaded as
  tensors only, with no card to check.

:data:`NAMED_WEIGHTS` is empty until weights are published; an entry is added with
:func:`register_weights` (``register_weights('my-ipce', 'hf://me/agiqa@3f2a.../ipce_agiqa3k')``).
"""

from __future__ import annotations

import difflib
import os
from typing import Dict, Mapping, Optional

import torch

from ..errors import OptionError
from .card import CardMismatchError, check_card, is_exported_folder, read_exported
from .hub import HF_PREFIX, fetch_from_hub, parse_hub_reference
from .io import PathLike, WeightsFormatError, fit_state_dict, load_network_weights

# name -> SPEC of published weights; empty until the project publishes trained weights
NAMED_WEIGHTS: Dict[str, str] = {}


def register_weights(name: str, spec: str, overwrite: bool = False) -> None:
    """Add ``name`` to :data:`NAMED_WEIGHTS` (an existing name is replaced only with ``overwrite``)."""
    if name in NAMED_WEIGHTS and NAMED_WEIGHTS[name] != spec and not overwrite:
        raise ValueError(f"named weights '{name}' already point to {NAMED_WEIGHTS[name]}; pass overwrite=True")
    NAMED_WEIGHTS[name] = spec


def resolve(spec: PathLike, _seen: tuple = ()) -> str:
    """The local file or exported folder that ``spec`` names (see the module doc)."""
    spec = os.fspath(spec)
    if spec in NAMED_WEIGHTS:
        if spec in _seen:
            raise OptionError(f'named weights loop: {" -> ".join(_seen + (spec,))}')
        return resolve(NAMED_WEIGHTS[spec], _seen + (spec,))
    if spec.startswith(HF_PREFIX):
        return fetch_from_hub(parse_hub_reference(spec))
    if spec.startswith(('https://', 'http://')):
        from pyiqa.utils.download_util import load_file_from_url

        return load_file_from_url(spec)
    path = os.path.expanduser(spec)
    if is_exported_folder(path) or os.path.isfile(path):
        return path
    close = difflib.get_close_matches(spec, list(NAMED_WEIGHTS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    raise FileNotFoundError(f"weights '{spec}' are not a file, an exported folder, an {HF_PREFIX} reference or a "
                            f'named entry{hint}; named weights: {sorted(NAMED_WEIGHTS) or "none published yet"}')


def load_weights(net: torch.nn.Module, spec: PathLike, options: Optional[Mapping] = None) -> dict:
    """Load ``spec`` into ``net`` (strict); returns the card ({} for a bare weights file).

    ``options`` are the constructor options ``net`` was built with (compared with the card).
    """
    where = resolve(spec)
    if is_exported_folder(where):
        state, card = read_exported(where)
        check_card(card, net, dict(options or {}), str(spec))
        try:
            fit_state_dict(net, state, os.path.join(str(spec), card['weights']['file']),
                           hint=f"its card says {card['method']} ({card['architecture']}) with network options "
                                f"{card['network']}: create one of the metrics {card['metrics']} with them")
        except WeightsFormatError as error:
            raise CardMismatchError(str(error)) from None
        return card
    load_network_weights(net, where)
    return {}


def fine_tuned_source(pretrained: bool, pretrained_model_path: Optional[str], weights: Optional[str],
                      network: str) -> Optional[str]:
    """The one fine-tuned weights source of a network's options, checked: ``weights`` and
    ``pretrained_model_path`` are the same thing (give one), and neither goes with
    ``pretrained=False`` (random weights)."""
    if weights and pretrained_model_path and os.fspath(weights) != os.fspath(pretrained_model_path):
        raise OptionError(f'{network}: give weights or pretrained_model_path, not both')
    source = weights or pretrained_model_path
    if source and not pretrained:
        raise OptionError(f"{network}: pretrained=False builds random weights, but weights '{source}' were given: "
                          'drop pretrained=False to load them, or drop the weights for random ones')
    return os.fspath(source) if source else None
