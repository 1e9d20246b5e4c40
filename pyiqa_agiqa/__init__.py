"""pyiqa-agiqa: quality assessment of AI-generated images inside pyiqa.

``import pyiqa_agiqa`` adds the plugin's metrics to ``pyiqa.list_models()`` /
``pyiqa.create_metric`` (lets them take lists of images and files' own prompts, see
``metrics.inputs``, and refuses those whose output needs fine-tuned weights when none are
given, see ``metrics.readiness``): at once when pyiqa is already imported, else as soon as
pyiqa is (the post-import hook of ``pyiqa_agiqa_autoload``), so that this import itself loads
neither torch nor pyiqa (the command line's ``--help`` stays fast). An installed plugin needs no
such import: the same hook, started by a .pth file, runs it when pyiqa is imported.
Architectures, datasets, the training model and the loss are found by pyiqa's registries
through entry points that name them, imported on lookup (``plugin``).
"""

import sys

from .metric_configs import AGIQA_METRIC_CONFIGS, register_metric_configs
from .version import __version__


def add_to_pyiqa() -> None:
    """Add the metric entries to pyiqa and wrap its ``InferenceModel`` (idempotent; imports pyiqa)."""
    from .metrics.inputs import install as install_metric_inputs
    from .metrics.readiness import install as install_metric_readiness

    register_metric_configs()
    install_metric_inputs()
    install_metric_readiness()


def _add_when_pyiqa_is_imported() -> None:
    try:
        import pyiqa_agiqa_autoload
    except ImportError:  # the hook module is not installed next to the package: add now
        add_to_pyiqa()
        return
    if not pyiqa_agiqa_autoload.installed():  # also with PYIQA_AGIQA_AUTOLOAD=0: this import asks for it
        sys.meta_path.insert(0, pyiqa_agiqa_autoload.PyiqaImportHook())


if 'pyiqa' in sys.modules:
    add_to_pyiqa()
else:
    _add_when_pyiqa_is_imported()

__all__ = ['AGIQA_METRIC_CONFIGS', 'add_to_pyiqa', 'register_metric_configs', '__version__']
