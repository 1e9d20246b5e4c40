"""Converters from official dataset releases to the package meta-info format.

``prepare_meta_info(key, output, ...)`` runs the converter of one dataset and writes its CSV
(``pyiqa-agiqa prepare KEY ...``). Each converter module documents its source, licence,
label scales, defects and splits in its docstring and in ``DATASET_INFO``.

Split columns: every meta-info gets the project default ``default_split_01..10``. Then the
published split manifests are applied, in this order (a later one replaces the columns it
holds, column by column; the columns it lacks keep their earlier values):

1. the manifest shipped for the dataset, ``pyiqa_agiqa/data/split_manifests/<key>.csv``
   (all five datasets; image names and published split values only), unless
   ``shipped_splits=False``;
2. ``splits`` (``--splits-csv``), the user's own manifest, if given.

The val-carved variants (``ipcev_*``, ``cianetv_*``) are always computed from the final
published columns, so a meta-info built from the official release files alone has every split
scheme of the shipped option files, with the same values as the bundled meta-info. Coverage
problems are warnings naming the images (an unlisted image is ``'excluded'``: in no part of
that split; a manifest name missing from the release is ignored); a manifest that matches no
image, bad values, a missing column or a split that breaks its published rule (prompt-disjoint,
one test image per group) is an error. See ``tables.read_split_manifests``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..tables import write_meta_info
from ..split_manifests import shipped_manifest

DATASETS = ('agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k')


def split_manifests_for(key: str, splits: Optional[str] = None, shipped_splits: bool = True) -> List[Path]:
    """The manifests ``prepare`` applies to dataset ``key``, in order (later ones win)."""
    paths = []
    if shipped_splits and shipped_manifest(key) is not None:
        paths.append(shipped_manifest(key))
    if splits:
        paths.append(Path(splits))
    return paths


def _build(key: str, data: Optional[str], release: Optional[str], manifests: Optional[Sequence[Path]],
           **extra) -> Tuple:
    module = importlib.import_module(f'{__name__}.{key}')
    if key in ('aigciqa2023', 'pku_i2iqa'):
        if key == 'pku_i2iqa' and data:
            extra['annotation_xlsx'] = data
        if not release and not data:
            raise ValueError(f'{key}: give --release (the unpacked release folder)')
        result = getattr(module, f'build_{key}_meta_info')(release, manifests, **extra)
    else:
        if not data:
            raise ValueError(f'{key}: give --data (the official metadata file)')
        if key == 'agiqa3k':
            extra['return_warnings'] = True
        result = getattr(module, f'build_{key}_meta_info')(data, manifests, **extra)
    return result if isinstance(result, tuple) else (result, [])


def prepare_meta_info(key: str, output: str, data: Optional[str] = None, release: Optional[str] = None,
                      splits: Optional[str] = None, overwrite: bool = False, shipped_splits: bool = True,
                      **extra) -> List[str]:
    """Build and write the meta-info of dataset ``key``; returns the converter's warnings.

    Args:
        data: the official metadata file (agiqa3k ``data.csv``, agiqa1k ``AIGC_MOS_Zscore.xlsx``,
            aigiqa20k ``info_train.csv``, pku_i2iqa ``I2IQA_annotation.xlsx``).
        release: the unpacked release folder (aigciqa2023, pku_i2iqa).
        splits: optional split manifest of the user (``--splits-csv``), applied after the
            shipped one: its published columns replace the shipped values (see module doc).
        shipped_splits: apply the manifest shipped for ``key`` first (default True); with
            False only ``splits`` (if given) is applied.
        extra: converter-specific keyword arguments (e.g. agiqa1k ``duplicate_policy``).
    """
    if key not in DATASETS:
        raise ValueError(f"unknown dataset '{key}'; known: {list(DATASETS)}")
    manifests = split_manifests_for(key, splits, shipped_splits)
    table, warnings = _build(key, data, release, manifests or None, **extra)
    write_meta_info(table, output, overwrite=overwrite)
    return list(warnings)
