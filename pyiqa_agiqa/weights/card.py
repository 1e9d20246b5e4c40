"""The exported-weights folder, read and checked: what ``pyiqa-agiqa export`` / ``convert-reference`` write
(see :mod:`pyiqa_agiqa.export.folder`) and what ``create_metric(..., weights=SPEC)`` reads.

A folder holds three files::

    weights.safetensors   the network's state dict (float32, tensors only)
    card.json             the model card, machine-readable (fields below)
    README.md             the same card for people

``card.json`` (format ``pyiqa-agiqa-weights``, version 2):

- ``architecture`` (e.g. ``CIANet``), ``method`` (``CIA-Net``), ``metrics`` (the metric names
  these weights serve, e.g. ``["cianet", "cianet_authenticity", "cianet_consistency"]``),
  ``outputs`` (network outputs that were trained, e.g. ``["quality", "consistency"]``);
- ``network``: the network options the weights were trained / converted with: since card
  version 2, every option of the architecture's ``network_options`` (``clip_model``,
  ``min_side``, ``patch_size`` ...), defaults included; a version-1 card holds only those its
  option file set. ``create_metric(name, weights=FOLDER)`` builds with them
  (:func:`network_from_card`), and an option given explicitly with another value is an error;
- ``clip``: ``{"model", "pretrained", "licence"}``;
- ``training``: dataset, meta-info, split scheme / index, selection (dataset, key metric,
  iteration), the option file's text; ``results``: figures at the selected checkpoint
  ({dataset: {metric: value}}); ``splits``: mean / std over splits for multi-split runs;
- ``licences``: of the plugin (PolyForm Noncommercial 1.0.0, from pyiqa), the training data
  and CLIP; ``versions``: pyiqa-agiqa, pyiqa, torch, open_clip;
- ``weights``: ``{"file", "sha256", "parameters", "dtype"}``; ``source``: how it was made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..errors import AGIQAError
from ..metric_configs import AGIQA_METRIC_CONFIGS
from .io import load_state_dict, sha256_file

CARD_FORMAT = 'pyiqa-agiqa-weights'
CARD_VERSION = 2  # 2: ``network`` holds every network option (1: those the option file set)
WEIGHTS_FILE = 'weights.safetensors'
CARD_FILE = 'card.json'
README_FILE = 'README.md'
METHOD_NAMES = {'IPCE': 'IPCE', 'CIANet': 'CIA-Net', 'CLIPAGIQA': 'CLIP-AGIQA', 'DCMPL': 'DCMPL'}


class CardMismatchError(AGIQAError, ValueError):
    """Weights whose card does not fit the metric they are loaded into."""


def read_card(folder) -> dict:
    """The card of an exported folder (checked to be one)."""
    path = Path(folder) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CardMismatchError(f'{path} is not a readable model card: {error}') from None
    if not isinstance(card, dict):
        raise CardMismatchError(f'{path} is not a pyiqa-agiqa model card (a JSON {type(card).__name__}, not an '
                                'object); export the weights again')
    if card.get('format') != CARD_FORMAT:
        raise CardMismatchError(f'{path} is not a pyiqa-agiqa model card (format {card.get("format")!r})')
    if card.get('format_version', 0) > CARD_VERSION:
        raise CardMismatchError(f'{path} was written by a newer pyiqa-agiqa (card version {card["format_version"]})')
    return card


def weights_file(folder, card: Mapping) -> Path:
    """The weights file a card names: a file name in the card's own folder (a card is data
    from elsewhere: a path that leaves its folder is refused)."""
    name = (card.get('weights') or {}).get('file') if isinstance(card.get('weights'), Mapping) else None
    if not isinstance(name, str) or not name or name in ('.', '..') or '/' in name or '\\' in name or '\0' in name:
        raise CardMismatchError(f"{Path(folder) / CARD_FILE}: weights.file must be the name of a file in the card's "
                                f"own folder (such as {WEIGHTS_FILE!r}), got {name!r}; export the weights again")
    return Path(folder) / name


def verify_weights(folder, card: Mapping) -> Path:
    """The weights file of an exported folder, after checking its SHA-256 against the card's."""
    path = weights_file(folder, card)
    if not path.is_file():
        raise CardMismatchError(f"{path} is missing: the card of {folder} names it (weights.file); export the "
                                'weights again')
    actual = sha256_file(path)
    if actual != card['weights']['sha256']:
        raise CardMismatchError(f"{path}: SHA-256 {actual[:12]}... differs from the card's "
                                f"{card['weights']['sha256'][:12]}... (a changed or damaged file; export it again)")
    return path


def read_exported(folder) -> tuple:
    """(state dict, card) of an exported folder; the weights' SHA-256 must match the card's."""
    card = read_card(folder)
    return load_state_dict(verify_weights(folder, card)), card


def is_exported_folder(path) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CARD_FILE))


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_architecture(card: Mapping, architecture: str, where: str) -> None:
    """Raise CardMismatchError unless the card's weights are of ``architecture`` (a class name)."""
    if card.get('architecture') != architecture:
        raise CardMismatchError(f"{where} holds {card.get('method')} weights ({card.get('architecture')}), not "
                                f"{architecture}: use one of the metrics {card.get('metrics')}")


def check_card(card: Mapping, net: torch.nn.Module, options: Mapping, where: str) -> None:
    """Raise CardMismatchError when the weights' card does not fit ``net`` built with ``options``."""
    check_architecture(card, type(net).__name__, where)
    differ = {k: v for k, v in card['network'].items() if k in options and not _same(options[k], v)}
    if differ:
        fix = ', '.join(f'{k}={v!r}' for k, v in differ.items())
        now = ', '.join(f'{k}={options[k]!r}' for k in differ)
        fitting = _metrics_built_with(card['metrics'], differ)
        use = f"use {' / '.join(repr(m) for m in fitting)} or " if fitting else ''
        raise CardMismatchError(f'{where} was made with {fix}, but this metric builds {now}: {use}pass {fix} to '
                                'create_metric (--set KEY=VALUE on the command line)')
    output = getattr(net, 'output', None)
    if output is not None and output not in card['outputs']:
        raise CardMismatchError(f"{where} was trained for outputs {card['outputs']}; the '{output}' output was not "
                                f'trained (its training data had no such label). Load the weights file itself to use '
                                f'it anyway: weights={os.path.join(where, WEIGHTS_FILE)!r}')


def network_from_card(card: Mapping, network_options: Sequence[str], given: Mapping, where: str) -> dict:
    """The network options to build the weights of ``card`` with: the card's values of
    ``network_options`` (the architecture's, see :mod:`pyiqa_agiqa.archs.base`); an option of
    ``given`` (the caller's explicit options) with another value is a CardMismatchError naming
    both. A version-1 card records only some options: the others keep their usual defaults."""
    recorded = card.get('network') if isinstance(card.get('network'), Mapping) else {}
    network = {k: v for k, v in recorded.items() if k in network_options}
    differ = {k: v for k, v in network.items() if k in given and not _same(given[k], v)}
    if differ:
        asked = ', '.join(f'{k}={given[k]!r}' for k in differ)
        trained = ', '.join(f'{k}={v!r}' for k, v in differ.items())
        raise CardMismatchError(f'{where} was trained with {trained}, but {asked} was asked for: drop '
                                f"{', '.join(differ)} to build the network these weights were trained with, "
                                'or give weights trained with the options you want')
    return network


def _metrics_built_with(names, options: Mapping) -> list:
    """The metrics among ``names`` whose default options already are ``options``."""
    return [n for n in names if n in AGIQA_METRIC_CONFIGS and all(
        _same(AGIQA_METRIC_CONFIGS[n]['metric_opts'].get(k), v) for k, v in options.items())]
