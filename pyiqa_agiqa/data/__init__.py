"""Datasets of the plugin, registered in pyiqa's DATASET_REGISTRY on import."""

from .agiqa_dataset import AGIQADataset, bundled_meta_info
from .image_io import ImageReadError, load_rgb

__all__ = ['AGIQADataset', 'bundled_meta_info', 'ImageReadError', 'load_rgb']
