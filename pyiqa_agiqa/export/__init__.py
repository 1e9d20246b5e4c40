"""Exported-weights folders written (the product a training run or a conversion makes).

- :mod:`~pyiqa_agiqa.export.folder`: a folder's card filled and its three files written;
- :mod:`~pyiqa_agiqa.export.experiment`: ``pyiqa-agiqa export``, a training run's best weights
  (one split or every split of an n-splits run) with their figures;
- :mod:`~pyiqa_agiqa.export.convert`: ``pyiqa-agiqa convert-reference``, the authors' checkpoints, one
  module per reference codebase.

This package builds networks (to check converted weights, to read architecture defaults), so
it sits above :mod:`pyiqa_agiqa.archs`; reading folders is :mod:`pyiqa_agiqa.weights.card`.
"""

from .experiment import export_experiment

__all__ = ['export_experiment']
