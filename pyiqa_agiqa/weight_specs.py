"""Fine-tuned weights by name: what ``create_metric(..., weights=SPEC)`` and
``pyiqa-agiqa score METRIC --weights SPEC`` accept, and ``pyiqa-agiqa push``.

SPEC is one of (tried in this order):

- a name of :data:`NAMED_WEIGHTS` (e.g. ``'ipce-agiqa3k'``), which maps to one of the below;
- ``hf://org/repo[@revision]/path``: an exported folder (or a single weights file) in a
  Hugging Face hub repository, fetched with ``huggingface_hub`` into its cache. Give the
  revision (a commit hash) to pin it; the weights are checked against the SHA-256 of the card;
- an ``http(s)://`` URL of a weights file (downloaded and cached by pyiqa);
- a local exported folder (``pyiqa-agiqa export`` / ``convert`` output: weights.safetensors +
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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

import torch

from .errors import OptionError
from .exported import (CARD_FILE, WEIGHTS_FILE, CardMismatchError, is_exported_folder, read_card, read_exported,
                       verify_weights)
from .weights import PathLike, load_network_weights

HF_PREFIX = 'hf://'
# name -> SPEC of published weights; empty until the project publishes trained weights
NAMED_WEIGHTS: Dict[str, str] = {}


def register_weights(name: str, spec: str, overwrite: bool = False) -> None:
    """Add ``name`` to :data:`NAMED_WEIGHTS` (an existing name is replaced only with ``overwrite``)."""
    if name in NAMED_WEIGHTS and NAMED_WEIGHTS[name] != spec and not overwrite:
        raise ValueError(f"named weights '{name}' already point to {NAMED_WEIGHTS[name]}; pass overwrite=True")
    NAMED_WEIGHTS[name] = spec


@dataclass
class HubReference:
    """``hf://repo_id[@revision]/path`` split in its parts (path may be empty: the repo root)."""
    repo_id: str
    revision: Optional[str]
    path: str

    @classmethod
    def parse(cls, spec: str) -> 'HubReference':
        rest = spec[len(HF_PREFIX):]
        parts = rest.split('/')
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise OptionError(f"'{spec}' is not a hub reference of the form hf://org/repo[@revision]/path")
        repo, _, revision = parts[1].partition('@')
        return cls(f'{parts[0]}/{repo}', revision or None, '/'.join(parts[2:]).strip('/'))

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}{'@' + self.revision if self.revision else ''}/{self.path}"


def _hub():
    import huggingface_hub

    return huggingface_hub


def fetch_from_hub(ref: HubReference) -> str:
    """Local path of ``ref`` in the hub cache (downloaded if needed)."""
    if ref.revision is None:
        warnings.warn(f'{ref} is not pinned to a revision: the weights may change under this name; '
                      'pin it as hf://org/repo@<commit>/path', UserWarning, stacklevel=3)
    hub = _hub()
    if ref.path.endswith(('.safetensors', '.pth', '.pt', '.bin')):
        return hub.hf_hub_download(ref.repo_id, ref.path, revision=ref.revision)
    patterns = [f'{ref.path}/*'] if ref.path else None
    root = hub.snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=patterns)
    folder = os.path.join(root, ref.path) if ref.path else root
    if not is_exported_folder(folder):
        raise OptionError(f'{ref} holds no exported weights ({CARD_FILE} missing): give the path of an '
                          'exported folder in the repository')
    return folder


def resolve(spec: PathLike, _seen: tuple = ()) -> str:
    """The local file or exported folder that ``spec`` names (see the module doc)."""
    spec = os.fspath(spec)
    if spec in NAMED_WEIGHTS:
        if spec in _seen:
            raise OptionError(f'named weights loop: {" -> ".join(_seen + (spec,))}')
        return resolve(NAMED_WEIGHTS[spec], _seen + (spec,))
    if spec.startswith(HF_PREFIX):
        return fetch_from_hub(HubReference.parse(spec))
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


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_card(card: Mapping, net: torch.nn.Module, options: Mapping, where: str) -> None:
    """Raise CardMismatchError when the weights' card does not fit ``net`` built with ``options``."""
    arch = type(net).__name__
    if card['architecture'] != arch:
        raise CardMismatchError(f"{where} holds {card['method']} weights ({card['architecture']}), not {arch}: "
                                f"use one of the metrics {card['metrics']}")
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


def _metrics_built_with(names, options: Mapping) -> list:
    """The metrics among ``names`` whose default options already are ``options``."""
    from .metric_configs import AGIQA_METRIC_CONFIGS

    return [n for n in names if n in AGIQA_METRIC_CONFIGS and all(
        _same(AGIQA_METRIC_CONFIGS[n]['metric_opts'].get(k), v) for k, v in options.items())]


def load_weights(net: torch.nn.Module, spec: PathLike, options: Optional[Mapping] = None) -> dict:
    """Load ``spec`` into ``net`` (strict); returns the card ({} for a bare weights file).

    ``options`` are the constructor options ``net`` was built with (compared with the card).
    """
    where = resolve(spec)
    if is_exported_folder(where):
        state, card = read_exported(where)
        check_card(card, net, dict(options or {}), str(spec))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CardMismatchError(f'{spec}: the weights do not fit {type(net).__name__} (missing {missing[:5]}, '
                                    f'unexpected {unexpected[:5]})')
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


def push_folder(folder: PathLike, repo_id: str, path_in_repo: Optional[str] = None, revision: Optional[str] = None,
                private: bool = False, api=None, token: Optional[str] = None) -> str:
    """Upload an exported folder to the hub; returns its pinned ``hf://repo@commit/path`` spec.

    ``api`` defaults to ``huggingface_hub.HfApi(token=token)`` (tests pass a stand-in).
    """
    folder = Path(folder)
    card = read_card(folder)
    verify_weights(folder, card)
    api = api or _hub().HfApi(token=token)
    path_in_repo = (path_in_repo if path_in_repo is not None else folder.name).strip('/')
    api.create_repo(repo_id, exist_ok=True, private=private)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=path_in_repo or None,
                               revision=revision, commit_message=f"Add {card['method']} weights {path_in_repo}")
    return str(HubReference(repo_id, commit.oid, path_in_repo))
