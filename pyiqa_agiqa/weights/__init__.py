"""Weights as data, and where they come from.

- :mod:`~pyiqa_agiqa.weights.io`: the one place that reads and writes network weights
  (tensors only: safetensors or ``torch.load(weights_only=True)``); its public functions are
  re-exported here (``pyiqa_agiqa.weights.save_weights`` ...).
- :mod:`~pyiqa_agiqa.weights.card`: the exported folder's model card, read and checked
  against the network it is loaded into.
- :mod:`~pyiqa_agiqa.weights.specs`: ``weights=SPEC`` resolved (named entry, ``hf://``, URL,
  exported folder, file) and loaded; :mod:`~pyiqa_agiqa.weights.hub`: the Hugging Face side.

Writing exported folders (which builds networks) is :mod:`pyiqa_agiqa.export`, above the
architectures; everything here sits below them, because an architecture loads its own
fine-tuned weights (pyiqa's ``pretrained_model_path`` convention).
"""

from .io import (PathLike, StateDict, UnsafeWeightsError, WeightsFormatError, atomic_write, check_finite,
                 convert_trusted_checkpoint, extract_state_dict, fit_state_dict, load_file, load_network_weights,
                 load_state_dict, nonfinite_entries, save_weights, sha256_file, unsafe_or_unreadable)

__all__ = ['PathLike', 'StateDict', 'UnsafeWeightsError', 'WeightsFormatError', 'atomic_write', 'check_finite',
           'convert_trusted_checkpoint', 'extract_state_dict', 'fit_state_dict', 'load_file', 'load_network_weights',
           'load_state_dict', 'nonfinite_entries', 'save_weights', 'sha256_file', 'unsafe_or_unreadable']
