"""What the four architectures share: the CLIP backbone, the fine-tuned weights, the precision
and the options a weights card records.

Every architecture takes these constructor options, documented here once:

    clip_model: open_clip model name (each architecture's default is its paper's CLIP).
    clip_pretrained: CLIP weights: open_clip tag (default ``openai``) or a local file.
    pretrained: False builds everything with random weights (nothing is read or
        downloaded); True loads ``clip_pretrained`` and then the fine-tuned weights.
    pretrained_model_path / weights: fine-tuned weights: an exported folder, a
        ``.safetensors`` / pyiqa ``.pth`` file, ``hf://org/repo@rev/path`` or a named entry
        (see :mod:`pyiqa_agiqa.weights.specs`); read as tensors only, checked against the
        folder's card. Not with ``pretrained=False``. When given, no CLIP weights are read:
        the fine-tuned file holds every CLIP weight.
    precision: ``fp32`` (default, the reference), ``bf16`` or ``fp16``: the CLIP towers run in
        it (weights cast once), what follows them in the dtype of the network's own parameters
        (float32; float64 after ``.double()``; see :mod:`pyiqa_agiqa.archs.backbone.precision`).
    cache_dir: download / cache folder for CLIP weights.

and its own options, each named in one of two explicit lists on its class:

- ``network_options``: options that change what the weights compute or how the network
  scores with them (the CLIP model, the sizes of the learned parts, the views an image is
  scored on). An exported folder's card records every one of them with its value
  (:meth:`CLIPNetwork.card_options`), and a metric created with that folder builds with them.
- ``runtime_options``: options that do not (which output a metric returns, memory chunking):
  free at every load.

Every constructor parameter is in exactly one of :data:`COMMON_OPTIONS`, ``network_options``
(``clip_model`` included) and ``runtime_options`` (a test checks it), so a new option has to
be classified before it can ship.
"""

from __future__ import annotations

import inspect
from typing import Mapping, Optional, Tuple

from torch import nn

from ..weights.specs import fine_tuned_source, load_weights
from .backbone.clip import CLIPBackbone, initial_clip_weights
from .backbone.precision import set_precision

# options every architecture takes, none of which a card records (they say where weights come
# from and how fast the towers run, not what the weights compute)
COMMON_OPTIONS = ('clip_pretrained', 'pretrained', 'pretrained_model_path', 'weights', 'precision', 'cache_dir')


class CLIPNetwork(nn.Module):
    """Base of the four architectures (see the module doc for the shared options).

    A subclass calls ``super().__init__(clip_model, clip_pretrained, pretrained,
    pretrained_model_path, weights, cache_dir, options, output)`` first, with ``options`` its
    values of ``network_options`` (``clip_model`` aside) and ``output`` one of ``output_names``
    or None (checked before anything is built), builds its own parts, and ends with
    :meth:`load_and_set_precision`. Attributes: ``backbone`` (:class:`CLIPBackbone`),
    ``options`` (every network option's value, what the card is checked against).
    """

    network_options: Tuple[str, ...] = ('clip_model',)
    runtime_options: Tuple[str, ...] = ()
    output_names: Tuple[str, ...] = ('score',)
    requires_fine_tuned: Tuple[str, ...] = ()  # outputs that plain CLIP weights cannot give

    def __init__(self, clip_model: str, clip_pretrained: Optional[str], pretrained: bool,
                 pretrained_model_path: Optional[str], weights: Optional[str], cache_dir: Optional[str],
                 options: Mapping, output: Optional[str] = None):
        if output is not None and output not in self.output_names:
            raise ValueError(f'{type(self).__name__}: output must be None or one of {list(self.output_names)}, '
                             f'got {output!r}')
        super().__init__()
        self.output = output  # None: forward returns every output; a name: that one, as (B, 1)
        self.options = dict(clip_model=clip_model, **options)
        if set(self.options) != set(self.network_options):
            raise TypeError(f'{type(self).__name__} records {sorted(self.options)} but its network_options are '
                            f'{sorted(self.network_options)}')
        self.fine_tuned = fine_tuned_source(pretrained, pretrained_model_path, weights, type(self).__name__)
        self.backbone = CLIPBackbone(clip_model, initial_clip_weights(pretrained, clip_pretrained, self.fine_tuned),
                                     cache_dir)

    def load_and_set_precision(self, precision: str) -> None:
        """The last step of every constructor: load the fine-tuned weights (their card checked
        against :attr:`options`), then cast the CLIP towers to ``precision``."""
        if self.fine_tuned:
            load_weights(self, self.fine_tuned, self.options)
        set_precision(self, precision)

    @classmethod
    def constructor_defaults(cls) -> dict:
        """{option: default} of the constructor."""
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    @classmethod
    def card_options(cls, given: Mapping) -> dict:
        """Every network option, its value in ``given`` (an option file's ``network`` section,
        a metric's options) or else the constructor's default: what a card records."""
        defaults = cls.constructor_defaults()
        return {k: _plain(given[k] if k in given else defaults[k]) for k in cls.network_options}


def _plain(value):
    """A value as JSON holds it (tuples as lists)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
