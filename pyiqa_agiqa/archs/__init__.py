"""Architectures of the plugin, registered in pyiqa's ARCH_REGISTRY on import."""

from .cianet_arch import CIANet
from .clip_agiqa_arch import CLIPAGIQA
from .clip_backbone import CLIPBackbone, WeightsUnavailableError, create_clip
from .dcmpl_arch import DCMPL
from .ipce_arch import IPCE, IPCEViews

__all__ = ['CIANet', 'CLIPAGIQA', 'CLIPBackbone', 'DCMPL', 'WeightsUnavailableError', 'create_clip', 'IPCE',
           'IPCEViews']
