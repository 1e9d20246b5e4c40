"""pyiqa-agiqa: quality assessment of AI-generated images inside pyiqa.

``import pyiqa_agiqa`` adds the plugin's metrics to ``pyiqa.list_models()`` /
``pyiqa.create_metric`` (lets them take lists of images and files' own prompts, see
``metrics.inputs``, and refuses those whose output needs fine-tuned weights when none are
given, see ``metrics.readiness``). An installed plugin needs no such import: the hook of
``pyiqa_agiqa_autoload`` (a .pth file) runs it when pyiqa is imported. Architectures, datasets,
the training model and the loss are found by pyiqa's registries through entry points that name
them, imported on lookup (``plugin``). This import stays light: no model, no open_clip.
"""

from .metric_configs import AGIQA_METRIC_CONFIGS, register_metric_configs
from .metrics.inputs import install as _install_metric_inputs
from .metrics.readiness import install as _install_metric_readiness
from .version import __version__

register_metric_configs()
_install_metric_inputs()
_install_metric_readiness()

__all__ = ['AGIQA_METRIC_CONFIGS', 'register_metric_configs', '__version__']
