"""The plugin's metrics inside pyiqa's metric interface.

- :mod:`~pyiqa_agiqa.metrics.pyiqa_adapter`: the one place where pyiqa is adapted (its
  ``InferenceModel.__init__`` and ``forward`` wrapped for the plugin's metrics, after a check of
  their signatures), installed on ``import pyiqa_agiqa``;
- :mod:`~pyiqa_agiqa.metrics.inputs`: what a metric call takes beyond pyiqa's (a prompt or
  one per image, lists of images);
- :mod:`~pyiqa_agiqa.metrics.file_prompts`: paths called without a prompt take each file's own;
- :mod:`~pyiqa_agiqa.metrics.readiness`: the options a metric is built with: refused when its
  output needs fine-tuned weights and has none, completed from an exported folder's card;
- :mod:`~pyiqa_agiqa.metrics.factory`: several metrics built together, every option checked
  first (``create_metrics``, used by the scoring engines).

Nothing is imported here, so ``import pyiqa_agiqa`` stays light.
"""
