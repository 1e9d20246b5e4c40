"""Writing an exported-weights folder (the format is described in :mod:`pyiqa_agiqa.weights.card`).

:func:`new_card` fills the fields every card has (architecture, metrics, CLIP, licences,
versions); :func:`write_exported` writes ``weights.safetensors``, ``card.json`` and README.md.
Used by :mod:`pyiqa_agiqa.export.experiment` (a training run) and
:mod:`pyiqa_agiqa.export.convert` (the authors' checkpoints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Mapping

import torch

from ..metric_configs import AGIQA_METRIC_CONFIGS
from ..version import versions
from ..weights.card import CARD_FILE, CARD_FORMAT, METHOD_NAMES, README_FILE, WEIGHTS_FILE
from ..weights.io import atomic_write, save_weights, sha256_file
from ..weights.card import CARD_VERSION


PLUGIN_LICENCE = 'PolyForm-Noncommercial-1.0.0 (pyiqa-agiqa builds on pyiqa, which uses this licence)'
CLIP_LICENCES = {'openai': 'MIT (OpenAI CLIP weights, github.com/openai/CLIP)'}


def architecture_class(architecture: str):
    """A registered architecture of the plugin (a :class:`~pyiqa_agiqa.archs.base.CLIPNetwork`)."""
    from pyiqa.utils.registry import ARCH_REGISTRY

    import pyiqa_agiqa.archs  # noqa: F401

    return ARCH_REGISTRY.get(architecture)


def architecture_defaults(architecture: str) -> dict:
    """Default constructor options of a registered architecture of the plugin."""
    return architecture_class(architecture).constructor_defaults()


def metrics_for(architecture: str, network: Mapping) -> List[str]:
    """Names of the plugin's metrics that build ``architecture`` with the same CLIP model."""
    defaults = architecture_defaults(architecture)
    clip = network.get('clip_model', defaults.get('clip_model'))
    return [name for name, cfg in AGIQA_METRIC_CONFIGS.items() if cfg['metric_opts']['type'] == architecture
            and cfg['metric_opts'].get('clip_model', defaults.get('clip_model')) == clip]


def new_card(architecture: str, network: Mapping, outputs: List[str], source: str, **fields) -> dict:
    """A card with the fields every card has; ``fields`` adds training / results / licences."""
    defaults = architecture_defaults(architecture)
    clip_tag = dict(network).get('clip_pretrained', defaults.get('clip_pretrained'))
    if clip_tag and os.sep in str(clip_tag):
        clip_tag = f'local file {os.path.basename(str(clip_tag))}'
    network = architecture_class(architecture).card_options(network)  # every network option, defaults too
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
    text = json.dumps(card, indent=1, default=str) + '\n'
    atomic_write(folder / CARD_FILE, lambda tmp: Path(tmp).write_text(text))
    readme = card_readme(card)
    atomic_write(folder / README_FILE, lambda tmp: Path(tmp).write_text(readme))
    return folder


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
