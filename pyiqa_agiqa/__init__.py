"""pyiqa-agiqa: quality assessment of AI-generated images inside pyiqa.

``import pyiqa_agiqa`` adds the plugin's metrics to ``pyiqa.list_models()`` /
``pyiqa.create_metric`` (lets them take lists of images and files' own prompts, refuses those
whose output needs fine-tuned weights when none are given, and builds an exported folder's
network from its card: ``metrics.pyiqa_adapter``, the one place where pyiqa is adapted): at
once when pyiqa is already imported, else as soon as pyiqa is (the post-import hook of
``pyiqa_agiqa_autoload``), so that this import itself loads neither torch nor pyiqa (the
command line's ``--help`` stays fast). An installed plugin needs no
such import: the same hook, started by a .pth file, runs it when pyiqa is imported.
Architectures, datasets, the training model and the loss are found by pyiqa's registries
through entry points that name them, imported on lookup (``plugin``).
"""

import sys

from .metric_configs import AGIQA_METRIC_CONFIGS, register_metric_configs
from .version import __version__


def add_to_pyiqa() -> None:
    """Wrap pyiqa's ``InferenceModel`` and add the metric entries (idempotent; imports pyiqa). A
    pyiqa the adapter was not written for raises its PyiqaVersionError first: no entry is added."""
    from .metrics.pyiqa_adapter import install as adapt_pyiqa

    adapt_pyiqa()
    register_metric_configs()


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
