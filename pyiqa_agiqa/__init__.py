"""pyiqa-agiqa: quality assessment of AI-generated images inside pyiqa.

``import pyiqa_agiqa`` adds the plugin's metrics to ``pyiqa.list_models()`` /
``pyiqa.create_metric`` (lets them take lists of images and files' own prompts, refuses those
whose output needs fine-tuned weights when none are given, and builds an exported folder's
network from its card: ``metrics.pyiqa_adapter``, the one place where pyiqa is adapted). An
installed plugin needs no such import: the hook of ``pyiqa_agiqa_autoload`` (a .pth file) runs
it when pyiqa is imported. Architectures, datasets,
the training model and the loss are found by pyiqa's registries through entry points that name
them, imported on lookup (``plugin``). This import stays light: no model, no open_clip.
"""

from .metric_configs import AGIQA_METRIC_CONFIGS, register_metric_configs
from .metrics.pyiqa_adapter import install as _adapt_pyiqa
from .version import __version__

_adapt_pyiqa()  # first: with a pyiqa it cannot adapt, no metric entry is added
register_metric_configs()

__all__ = ['AGIQA_METRIC_CONFIGS', 'register_metric_configs', '__version__']
