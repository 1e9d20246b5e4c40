"""Downloading dataset images from public mirrors on the Hugging Face hub (when online).

Only AGIQA-3K has a mirror whose content is known: ``AGIQA-3K.zip`` in pyiqa's own dataset
repository, pinned to the commit that uploaded it, with the SHA-256 that the hub lists for that
file (its Git LFS object id); a download whose digest differs is an error. Third-party uploads
of the other datasets exist but their layout and content could not be checked, so they are not
used: for those datasets the message says where the authors publish them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Optional

from ..errors import AGIQAError
from ..weights.io import sha256_file

MIRRORS = {
    'agiqa3k': dict(repo_id='chaofengc/IQA-PyTorch-Datasets', filename='AGIQA-3K.zip',
                    revision='e874459ad97a21e02874115a6090722c1ce19f24',
                    sha256='96401d1f9844ef68092c7f6d5681c8ec90b20c33d238fb4d25033133f10084cf',
                    note="pyiqa's own dataset repository (about 98 MB)"),
}
OFFICIAL_SOURCES = {
    'agiqa1k': 'https://github.com/lcysyzxdxc/AGIQA-1k-Database (archive linked from its README)',
    'agiqa3k': 'https://github.com/lcysyzxdxc/AGIQA-3k-Database',
    'aigciqa2023': 'https://github.com/wangjiarui153/AIGCIQA2023',
    'pku_i2iqa': 'https://github.com/jiquan123/I2IQA',
    'aigiqa20k': 'https://www.modelscope.cn/datasets/lcysyzxdxc/AIGCQA-30K-Image (NTIRE 2024 AIGC image track)',
}


class DownloadError(AGIQAError, RuntimeError):
    """The archive cannot be obtained (offline, no mirror, or a checksum mismatch)."""


def download_dataset(key: str, dest: os.PathLike, extract: bool = True, cache_dir: Optional[str] = None) -> Path:
    """Fetch the archive of dataset ``key`` into the HF cache and unpack it into ``dest``.

    Returns the archive path (extract=False) or ``dest``. Raises DownloadError with the way
    out (the official source) when there is no mirror or the hub cannot be reached.
    """
    if key not in OFFICIAL_SOURCES:
        raise DownloadError(f"unknown dataset '{key}'; known: {sorted(OFFICIAL_SOURCES)}")
    mirror = MIRRORS.get(key)
    if mirror is None:
        raise DownloadError(f"no public mirror is known for '{key}'; download it from {OFFICIAL_SOURCES[key]} "
                            f'and unpack it into {dest}')
    from huggingface_hub import hf_hub_download

    try:
        archive = Path(hf_hub_download(mirror['repo_id'], mirror['filename'], repo_type='dataset',
                                       revision=mirror['revision'], cache_dir=cache_dir))
    except Exception as error:  # offline, hub down, file moved: all end the same way for the user
        raise DownloadError(
            f"could not download {mirror['filename']} from the Hugging Face dataset {mirror['repo_id']} "
            f"({type(error).__name__}: {str(error)[:200]}). Offline? Get it from {OFFICIAL_SOURCES[key]} "
            f'and unpack it into {dest}') from error
    digest = sha256_file(archive)
    if digest != mirror['sha256']:
        raise DownloadError(f"{archive}: SHA-256 {digest} differs from the recorded {mirror['sha256']}")
    print(f'{archive.name}: SHA-256 {digest} (as recorded)')
    if not extract:
        return archive
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest
