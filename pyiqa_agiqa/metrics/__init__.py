"""The plugin's metrics inside pyiqa's metric interface.

- :mod:`~pyiqa_agiqa.metrics.inputs`: what a metric call takes beyond pyiqa's (a prompt or
  one per image, lists of images), installed on ``import pyiqa_agiqa``;
- :mod:`~pyiqa_agiqa.metrics.file_prompts`: paths called without a prompt take each file's own;
- :mod:`~pyiqa_agiqa.metrics.readiness`: a metric whose output needs fine-tuned weights is
  refused without them (installed on ``import pyiqa_agiqa``);
- :mod:`~pyiqa_agiqa.metrics.factory`: several metrics built together, every option checked
  first (``create_metrics``, used by the scoring engines).

Nothing is imported here, so ``import pyiqa_agiqa`` stays light.
"""
