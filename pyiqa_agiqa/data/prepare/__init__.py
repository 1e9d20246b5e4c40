"""Converters from official dataset releases to the package meta-info format.

``prepare_meta_info(key, output, ...)`` runs the converter of one dataset and writes its CSV
(``pyiqa-agiqa prepare KEY ...``). Each converter module documents its source, licence,
label scales, defects and splits in its docstring and in ``DATASET_INFO``.
"""

from __future__ import annotations

import importlib
from typing import List, Optional, Tuple

from ..metadata import write_meta_info

DATASETS = ('agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k')


def _build(key: str, data: Optional[str], release: Optional[str], splits: Optional[str], **extra) -> Tuple:
    module = importlib.import_module(f'{__name__}.{key}')
    if key in ('aigciqa2023', 'pku_i2iqa'):
        if key == 'pku_i2iqa' and data:
            extra['annotation_xlsx'] = data
        if not release and not data:
            raise ValueError(f'{key}: give --release (the unpacked release folder)')
        result = getattr(module, f'build_{key}_meta_info')(release, splits, **extra)
    else:
        if not data:
            raise ValueError(f'{key}: give --data (the official metadata file)')
        result = getattr(module, f'build_{key}_meta_info')(data, splits, **extra)
    return result if isinstance(result, tuple) else (result, [])


def prepare_meta_info(key: str, output: str, data: Optional[str] = None, release: Optional[str] = None,
                      splits: Optional[str] = None, overwrite: bool = False, **extra) -> List[str]:
    """Build and write the meta-info of dataset ``key``; returns the converter's warnings.

    Args:
        data: the official metadata file (agiqa3k ``data.csv``, agiqa1k ``AIGC_MOS_Zscore.xlsx``,
            aigiqa20k ``info_train.csv``, pku_i2iqa ``I2IQA_annotation.xlsx``).
        release: the unpacked release folder (aigciqa2023, pku_i2iqa).
        splits: optional published split manifest to copy into the meta-info.
        extra: converter-specific keyword arguments (e.g. agiqa1k ``duplicate_policy``).
    """
    if key not in DATASETS:
        raise ValueError(f"unknown dataset '{key}'; known: {list(DATASETS)}")
    table, warnings = _build(key, data, release, splits, **extra)
    write_meta_info(table, output, overwrite=overwrite)
    return list(warnings)
