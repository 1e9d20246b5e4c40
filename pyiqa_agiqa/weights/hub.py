"""Weights on the Hugging Face hub: ``hf://org/repo[@revision][/path]`` references, their
download (huggingface_hub's cache, so offline use works once fetched) and ``push``."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import OptionError
from .card import CARD_FILE, is_exported_folder, read_card, verify_weights
from .io import PathLike

HF_PREFIX = 'hf://'


@dataclass
class HubReference:
    """``hf://repo_id[@revision]/path`` split in its parts (path may be empty: the repo root)."""
    repo_id: str
    revision: Optional[str]
    path: str

    @classmethod
    def parse(cls, spec: str) -> 'HubReference':
        rest = spec[len(HF_PREFIX):]
        parts = rest.split('/')
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise OptionError(f"'{spec}' is not a hub reference of the form hf://org/repo[@revision]/path")
        repo, _, revision = parts[1].partition('@')
        return cls(f'{parts[0]}/{repo}', revision or None, '/'.join(parts[2:]).strip('/'))

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}{'@' + self.revision if self.revision else ''}/{self.path}"


def _hub():
    import huggingface_hub

    return huggingface_hub


def fetch_from_hub(ref: HubReference) -> str:
    """Local path of ``ref`` in the hub cache (downloaded if needed)."""
    if ref.revision is None:
        warnings.warn(f'{ref} is not pinned to a revision: the weights may change under this name; '
                      'pin it as hf://org/repo@<commit>/path', UserWarning, stacklevel=3)
    hub = _hub()
    if ref.path.endswith(('.safetensors', '.pth', '.pt', '.bin')):
        return hub.hf_hub_download(ref.repo_id, ref.path, revision=ref.revision)
    patterns = [f'{ref.path}/*'] if ref.path else None
    root = hub.snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=patterns)
    folder = os.path.join(root, ref.path) if ref.path else root
    if not is_exported_folder(folder):
        raise OptionError(f'{ref} holds no exported weights ({CARD_FILE} missing): give the path of an '
                          'exported folder in the repository')
    return folder


def push_folder(folder: PathLike, repo_id: str, path_in_repo: Optional[str] = None, revision: Optional[str] = None,
                private: bool = False, api=None, token: Optional[str] = None) -> str:
    """Upload an exported folder to the hub; returns its pinned ``hf://repo@commit/path`` spec.

    ``api`` defaults to ``huggingface_hub.HfApi(token=token)`` (tests pass a stand-in).
    """
    folder = Path(folder)
    card = read_card(folder)
    verify_weights(folder, card)
    api = api or _hub().HfApi(token=token)
    path_in_repo = (path_in_repo if path_in_repo is not None else folder.name).strip('/')
    api.create_repo(repo_id, exist_ok=True, private=private)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=path_in_repo or None,
                               revision=revision, commit_message=f"Add {card['method']} weights {path_in_repo}")
    return str(HubReference(repo_id, commit.oid, path_in_repo))
