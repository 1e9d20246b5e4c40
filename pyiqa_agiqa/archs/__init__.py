"""Architectures of the plugin, registered in pyiqa's ARCH_REGISTRY on import.

One ``*_arch.py`` per method (pyiqa's convention); ``backbone/`` holds the CLIP towers they
share and what changes them (feature cache, precision, compilation).
"""

from ..errors import OptionError
from ..options import registry_entry
from .backbone import CLIPBackbone, WeightsUnavailableError, create_clip
from .cianet_arch import CIANet
from .clip_agiqa_arch import CLIPAGIQA
from .dcmpl_arch import DCMPL
from .ipce_arch import IPCE, IPCEViews

__all__ = ['CIANet', 'CLIPAGIQA', 'CLIPBackbone', 'DCMPL', 'WeightsUnavailableError', 'create_clip', 'IPCE',
           'IPCEViews', 'network_class']


def network_class(opt: dict):
    """The architecture class of an option file's ``network`` section (OptionError if unknown)."""
    from pyiqa.archs import _lazy_import_arch
    from pyiqa.utils.registry import ARCH_REGISTRY

    network = opt.get('network')
    if not isinstance(network, dict) or 'type' not in network:
        raise OptionError("section network needs a 'type' (e.g. IPCE, CIANet, CLIPAGIQA, DCMPL)")
    return registry_entry(ARCH_REGISTRY, network['type'], 'architecture', 'network.type', _lazy_import_arch)
