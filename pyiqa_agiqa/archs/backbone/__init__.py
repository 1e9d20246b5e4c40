"""The CLIP towers the four architectures share, and what changes them.

``clip`` (open_clip model resolution, offline weights, token cache, the towers' passes),
``feature_cache`` (frozen-tower features kept across calls), ``precision`` (tower dtypes,
autocast) and ``compilation`` (torch.compile of the towers' blocks).
"""

from .clip import CLIPBackbone, WeightsUnavailableError, create_clip, initial_clip_weights

__all__ = ['CLIPBackbone', 'WeightsUnavailableError', 'create_clip', 'initial_clip_weights']
