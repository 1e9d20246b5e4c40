"""Entry-point targets for pyiqa's registries (see ``[project.entry-points]`` in
pyproject.toml). pyiqa loads a group on the first registry miss and calls each target;
importing the modules registers their classes with pyiqa's decorators. Importing any of
them also imports ``pyiqa_agiqa``, which adds the metric entries to DEFAULT_CONFIGS.
"""

import importlib


def register_archs() -> None:
    importlib.import_module('pyiqa_agiqa.archs')


def register_datasets() -> None:
    importlib.import_module('pyiqa_agiqa.data')


def register_models() -> None:
    importlib.import_module('pyiqa_agiqa.training.model')


def register_losses() -> None:
    importlib.import_module('pyiqa_agiqa.losses')
