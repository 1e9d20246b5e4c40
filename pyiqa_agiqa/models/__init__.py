"""Training models of the plugin, registered in pyiqa's MODEL_REGISTRY on import."""

from .agiqa_model import AGIQAModel

__all__ = ['AGIQAModel']
