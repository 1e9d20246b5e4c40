"""The exported-weights folder: what ``pyiqa-agiqa export`` / ``convert`` write and what
``create_metric(..., weights=SPEC)`` reads.

A folder holds three files::

    weights.safetensors   the network's state dict (float32, tensors only)
    card.json             the model card, machine-readable (fields below)
    README.md             the same card for people

``card.json`` (format ``pyiqa-agiqa-weights``, version 1):

- ``architecture`` (e.g. ``CIANet``), ``method`` (``CIA-Net``), ``metrics`` (the metric names
  these weights serve, e.g. ``["cianet", "cianet_authenticity", "cianet_consistency"]``),
  ``outputs`` (network outputs that were trained, e.g. ``["quality", "consistency"]``);
- ``network``: the network options the weights were trained / converted with (``clip_model``,
  ``min_side`` ...; a metric must be created with the same values);
- ``clip``: ``{"model", "pretrained", "licence"}``;
- ``training``: dataset, meta-info, split scheme / index, selection (dataset, key metric,
  iteration), the option file's text; ``results``: figures at the selected checkpoint
  ({dataset: {metric: value}}); ``splits``: mean / std over splits for multi-split runs;
- ``licences``: of the plugin (PolyForm Noncommercial 1.0.0, from pyiqa), the training data
  and CLIP; ``versions``: pyiqa-agiqa, pyiqa, torch, open_clip;
- ``weights``: ``{"file", "sha256", "parameters", "dtype"}``; ``source``: how it was made.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping

import torch

from .errors import AGIQAError
from .weights import load_state_dict, save_weights, sha256_file

CARD_FORMAT = 'pyiqa-agiqa-weights'
CARD_VERSION = 1
WEIGHTS_FILE = 'weights.safetensors'
CARD_FILE = 'card.json'
README_FILE = 'README.md'
METHOD_NAMES = {'IPCE': 'IPCE', 'CIANet': 'CIA-Net', 'CLIPAGIQA': 'CLIP-AGIQA', 'DCMPL': 'DCMPL'}
PLUGIN_LICENCE = 'PolyForm-Noncommercial-1.0.0 (pyiqa-agiqa builds on pyiqa, which uses this licence)'
CLIP_LICENCES = {'openai': 'MIT (OpenAI CLIP weights, github.com/openai/CLIP)'}
# network options that do not change what the weights compute
NEUTRAL_OPTIONS = ('pretrained', 'pretrained_model_path', 'weights', 'clip_pretrained', 'cache_dir', 'output',
                   'precision')


class CardMismatchError(AGIQAError, ValueError):
    """Weights whose card does not fit the metric they are loaded into."""


def architecture_defaults(architecture: str) -> dict:
    """Default constructor options of a registered architecture of the plugin."""
    from pyiqa.utils.registry import ARCH_REGISTRY

    import pyiqa_agiqa.archs  # noqa: F401

    params = inspect.signature(ARCH_REGISTRY.get(architecture)).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def metrics_for(architecture: str, network: Mapping) -> List[str]:
    """Names of the plugin's metrics that build ``architecture`` with the same CLIP model."""
    from .metric_configs import AGIQA_METRIC_CONFIGS

    defaults = architecture_defaults(architecture)
    clip = network.get('clip_model', defaults.get('clip_model'))
    return [name for name, cfg in AGIQA_METRIC_CONFIGS.items() if cfg['metric_opts']['type'] == architecture
            and cfg['metric_opts'].get('clip_model', defaults.get('clip_model')) == clip]


def versions() -> dict:
    import open_clip
    import pyiqa

    from .version import __version__

    return {'pyiqa_agiqa': __version__, 'pyiqa': pyiqa.__version__, 'torch': torch.__version__,
            'open_clip': open_clip.__version__}


def new_card(architecture: str, network: Mapping, outputs: List[str], source: str, **fields) -> dict:
    """A card with the fields every card has; ``fields`` adds training / results / licences."""
    defaults = architecture_defaults(architecture)
    clip_tag = dict(network).get('clip_pretrained', defaults.get('clip_pretrained'))
    if clip_tag and os.sep in str(clip_tag):
        clip_tag = f'local file {os.path.basename(str(clip_tag))}'
    network = {k: v for k, v in dict(network).items() if k not in NEUTRAL_OPTIONS and k != 'type'}
    card = dict(format=CARD_FORMAT, format_version=CARD_VERSION, architecture=architecture,
                method=METHOD_NAMES.get(architecture, architecture), metrics=metrics_for(architecture, network),
                outputs=list(outputs), network=network,
                clip=dict(model=network.get('clip_model', defaults.get('clip_model')), pretrained=clip_tag,
                          licence=CLIP_LICENCES.get(str(clip_tag), 'see the CLIP weights\' source')),
                licences=dict(plugin=PLUGIN_LICENCE), versions=versions(), source=source)
    licences = dict(card['licences'], **fields.pop('licences', {}))
    card.update(fields, licences=licences)
    card['licences'].setdefault('clip', card['clip']['licence'])
    return card


def write_exported(folder, state: Mapping[str, torch.Tensor], card: dict, overwrite: bool = False) -> Path:
    """Write ``weights.safetensors``, ``card.json`` (with the weights' SHA-256) and README.md."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass --overwrite (overwrite=True) to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.float() if torch.is_floating_point(v) else v for k, v in state.items()}
    weights = save_weights(state, folder / WEIGHTS_FILE, metadata={'format': CARD_FORMAT,
                                                                   'architecture': card['architecture']})
    card = dict(card, weights=dict(file=WEIGHTS_FILE, sha256=sha256_file(weights), dtype='float32',
                                   parameters=int(sum(v.numel() for v in state.values()))))
    (folder / CARD_FILE).write_text(json.dumps(card, indent=1, default=str) + '\n')
    (folder / README_FILE).write_text(card_readme(card))
    return folder


def read_card(folder) -> dict:
    """The card of an exported folder (checked to be one)."""
    path = Path(folder) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CardMismatchError(f'{path} is not a readable model card: {error}') from None
    if not isinstance(card, dict) or card.get('format') != CARD_FORMAT:
        raise CardMismatchError(f'{path} is not a pyiqa-agiqa model card (format {card.get("format")!r})')
    if card.get('format_version', 0) > CARD_VERSION:
        raise CardMismatchError(f'{path} was written by a newer pyiqa-agiqa (card version {card["format_version"]})')
    return card


def verify_weights(folder, card: Mapping) -> Path:
    """The weights file of an exported folder, after checking its SHA-256 against the card's."""
    path = Path(folder) / card['weights']['file']
    actual = sha256_file(path)
    if actual != card['weights']['sha256']:
        raise CardMismatchError(f"{path}: SHA-256 {actual[:12]}... differs from the card's "
                                f"{card['weights']['sha256'][:12]}... (a changed or damaged file; export it again)")
    return path


def read_exported(folder) -> tuple:
    """(state dict, card) of an exported folder; the weights' SHA-256 must match the card's."""
    card = read_card(folder)
    return load_state_dict(verify_weights(folder, card)), card


def _table(rows: Dict[str, Dict[str, float]]) -> List[str]:
    metrics = sorted({m for r in rows.values() for m in r})
    lines = ['| part | ' + ' | '.join(metrics) + ' |', '|---|' + '---|' * len(metrics)]
    for part, row in rows.items():
        lines.append(f'| {part} | ' + ' | '.join(_fmt(row.get(m)) for m in metrics) + ' |')
    return lines


def _fmt(value) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return '' if value is None else f'{value:.4f}'


def card_readme(card: dict) -> str:
    """The README.md of an exported folder."""
    training = card.get('training') or {}
    lines = [f"# {card['method']} weights ({card['architecture']})", '',
             f"Metrics: {', '.join(f'`{m}`' for m in card['metrics']) or 'none of the plugin'}; "
             f"trained outputs: {', '.join(card['outputs'])}.", '',
             '```python', 'import pyiqa, pyiqa_agiqa',
             f"metric = pyiqa.create_metric('{(card['metrics'] or ['<metric>'])[0]}', weights='<this folder or "
             f"hf://org/repo@revision/path>')", '```', '',
             f"- CLIP: `{card['clip']['model']}` (`{card['clip']['pretrained']}`)",
             f"- network options: `{json.dumps(card['network'])}`",
             f"- source: {card['source']}"]
    if training:
        lines.append(f"- training data: {training.get('dataset')} (meta-info `{training.get('meta_info_file')}`), "
                     f"split `{training.get('split_scheme')}` {training.get('split_index')}, selected on "
                     f"`{training.get('selected_on')}` by `{training.get('key_metric')}` at iteration "
                     f"{training.get('selected_iter')}")
    for key in ('results', 'splits'):
        if card.get(key):
            title = 'Figures at the selected checkpoint' if key == 'results' else 'Mean ± std over splits'
            lines += ['', f'## {title}', ''] + _table(card[key])
    lines += ['', '## Licences', ''] + [f'- {k}: {v}' for k, v in card['licences'].items()]
    lines += ['', f"Weights: `{card['weights']['file']}`, SHA-256 `{card['weights']['sha256']}`, "
                  f"{card['weights']['parameters']:,d} values. Versions: "
                  + ', '.join(f'{k} {v}' for k, v in card['versions'].items()) + '.', '']
    return '\n'.join(lines)


def is_exported_folder(path) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CARD_FILE))
