"""pyiqa-agiqa: quality assessment of AI-generated images inside pyiqa.

``import pyiqa_agiqa`` adds the plugin's metrics to ``pyiqa.list_models()`` /
``pyiqa.create_metric`` (lets them take lists of images, see ``metrics.inputs``, and refuses
those whose output needs fine-tuned weights when none are given, see ``metrics.readiness``);
architectures, datasets and the training model are found by
pyiqa's registries through entry points (or by importing the subpackages).
"""

from .metric_configs import AGIQA_METRIC_CONFIGS, register_metric_configs
from .metrics.inputs import install as _install_metric_inputs
from .metrics.readiness import install as _install_metric_readiness
from .version import __version__

register_metric_configs()
_install_metric_inputs()
_install_metric_readiness()

__all__ = ['AGIQA_METRIC_CONFIGS', 'register_metric_configs', '__version__']
