"""Architectures of the plugin, registered in pyiqa's ARCH_REGISTRY on import."""

from .clip_backbone import CLIPBackbone, WeightsUnavailableError, create_clip
from .ipce_arch import IPCE, IPCEViews

__all__ = ['CLIPBackbone', 'WeightsUnavailableError', 'create_clip', 'IPCE', 'IPCEViews']
