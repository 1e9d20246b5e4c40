"""Adds pyiqa-agiqa's metrics to pyiqa in every Python process, with no ``import pyiqa_agiqa``.

pyiqa 0.1.16 finds a plugin's architectures, datasets, models and losses through entry points,
but ``create_metric``, ``list_models`` and the ``pyiqa`` command read metrics only from the dict
``pyiqa.default_model_configs.DEFAULT_CONFIGS``, which no entry point fills. So pip installs
``pyiqa_agiqa-autoload.pth`` next to the package (setup.py); at interpreter start its one line
imports this module and calls :func:`install`, which puts a :class:`PyiqaImportHook` at the head
of ``sys.meta_path`` (before the path finder). The hook answers None for every other module; for ``pyiqa`` it wraps the
loader found by the other finders so that, once pyiqa's own module has run, ``pyiqa_agiqa`` is
imported (it adds the metric entries and wraps pyiqa's ``InferenceModel``; nothing heavy), and
then leaves ``sys.meta_path``.

- Cost without pyiqa: this module (``os`` and ``sys`` only) and one string comparison per import.
- Off switch: ``PYIQA_AGIQA_AUTOLOAD=0``: the .pth imports nothing (``import pyiqa_agiqa`` then
  adds the metrics, as before).
- Anything wrong (the plugin broken, a name clash) is a RuntimeWarning, never an exception; an
  error of pyiqa itself is pyiqa's, untouched.
- Upstream replacement: an entry-point group ``pyiqa.metric_configs`` read where pyiqa reads
  ``DEFAULT_CONFIGS`` (``create_metric``, ``list_models``, its command); with it, this module,
  the .pth and setup.py go, and the plugin declares a target that imports ``pyiqa_agiqa``.
"""

import os
import sys

ENV = 'PYIQA_AGIQA_AUTOLOAD'  # '0': off (the .pth then does not even import this module)
TARGET = 'pyiqa'


def enabled() -> bool:
    """Whether the hook may run: ``PYIQA_AGIQA_AUTOLOAD`` is not ``0``."""
    return os.environ.get(ENV) != '0'


def add_plugin() -> bool:
    """Import ``pyiqa_agiqa`` (its metric entries and metric wrappers); a failure is a warning."""
    try:
        import pyiqa_agiqa

        pyiqa_agiqa.add_to_pyiqa()  # idempotent; needed when pyiqa_agiqa was imported before pyiqa
    except Exception as error:  # noqa: BLE001 - never break pyiqa or the interpreter
        import warnings

        warnings.warn(f'pyiqa-agiqa: its metrics were not added to pyiqa ({type(error).__name__}: {error}); '
                      f'fix or reinstall pyiqa-agiqa, or set {ENV}=0 to turn this hook off', RuntimeWarning,
                      stacklevel=3)  # the line that imports pyiqa
        return False
    return True


class _ThenAddPlugin:
    """pyiqa's own loader, with :func:`add_plugin` run after pyiqa's module has executed."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code, ...: pyiqa's loader's
        if name == 'loader':
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec):
        create = getattr(self.loader, 'create_module', None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        module.__loader__ = self.loader  # pyiqa sees its own loader
        if getattr(module, '__spec__', None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        uninstall()
        add_plugin()


class PyiqaImportHook:
    """A ``sys.meta_path`` finder that waits for ``import pyiqa`` (see the module doc)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, 'find_spec', None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if hasattr(spec.loader, 'exec_module'):
                    spec.loader = _ThenAddPlugin(spec.loader)
                return spec
        return None


def installed() -> bool:
    """Whether a hook is waiting in ``sys.meta_path``."""
    return any(isinstance(finder, PyiqaImportHook) for finder in sys.meta_path)


def install() -> bool:
    """Put the hook at the head of ``sys.meta_path`` (once; nothing when turned off). If pyiqa is
    already imported, add the plugin now. Returns whether the plugin is or will be added."""
    if not enabled():
        return False
    if TARGET in sys.modules:
        return add_plugin()
    if not installed():
        sys.meta_path.insert(0, PyiqaImportHook())
    return True


def uninstall() -> None:
    """Take the hook out of ``sys.meta_path``."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, PyiqaImportHook)]
