"""Entry-point targets for pyiqa's registries (see ``[project.entry-points]`` in
pyproject.toml). pyiqa 0.1.16 (``pyiqa/utils/registry.py``) loads a registry's entry-point
group once, at that registry's first ``get`` (any name, found or not: ``create_metric('psnr')``
looking up ``PSNR`` is enough), first iteration or ``keys()``, or first ``in`` test of a name
it does not hold, and calls each target. The targets only name the plugin's classes
(``Registry.register_lazy``): a class's module is imported when its name is asked for, so
creating one of pyiqa's own metrics never imports open_clip or the plugin's architectures.
Importing this module imports ``pyiqa_agiqa`` (the metric entries, light).

These entry points cover architectures, datasets, the training model and the loss; pyiqa
has none for metrics, whose entries :mod:`pyiqa_agiqa_autoload` (beside the package, run by
the installed ``.pth``) adds when pyiqa is imported (docs/development.md, Registration).
"""

# registry -> {name the plugin registers: 'module:attribute' that defines it}
LAZY = {
    'ARCH_REGISTRY': {
        'CIANet': 'pyiqa_agiqa.archs.cianet_arch:CIANet',
        'CLIPAGIQA': 'pyiqa_agiqa.archs.clip_agiqa_arch:CLIPAGIQA',
        'DCMPL': 'pyiqa_agiqa.archs.dcmpl_arch:DCMPL',
        'IPCE': 'pyiqa_agiqa.archs.ipce_arch:IPCE',
    },
    'DATASET_REGISTRY': {'AGIQADataset': 'pyiqa_agiqa.data.agiqa_dataset:AGIQADataset'},
    'MODEL_REGISTRY': {'AGIQAModel': 'pyiqa_agiqa.training.model:AGIQAModel'},
    'LOSS_REGISTRY': {'PairwiseFidelityLoss': 'pyiqa_agiqa.losses:PairwiseFidelityLoss'},
}


def register_lazy(registry_name: str) -> list:
    """Name the plugin's classes in pyiqa's registry ``registry_name`` (a key of :data:`LAZY`)
    without importing them; a name already registered (its module was imported) is left as
    it is. Returns the names newly registered."""
    from pyiqa.utils import registry as registries

    registry, added = getattr(registries, registry_name), []
    for name, target in LAZY[registry_name].items():
        if name not in registry:
            registry.register_lazy(name, target)
            added.append(name)
    return added


def register_archs() -> None:
    register_lazy('ARCH_REGISTRY')


def register_datasets() -> None:
    register_lazy('DATASET_REGISTRY')


def register_models() -> None:
    register_lazy('MODEL_REGISTRY')


def register_losses() -> None:
    register_lazy('LOSS_REGISTRY')
