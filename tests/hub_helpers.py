"""The Hugging Face hub in tests, with no network: huggingface_hub's own offline mode over a
cache folder written in its real layout, and autospecced ``HfApi`` objects (a call the real API
would reject, such as an unknown keyword, fails the test)."""

import hashlib
import os
import shutil
from pathlib import Path
from typing import Dict, Optional
from unittest import mock


def offline_hub(monkeypatch, cache: Optional[Path] = None) -> None:
    """huggingface_hub in its offline mode (what ``HF_HUB_OFFLINE=1`` gives when it is imported),
    reading the hub cache ``cache`` if given."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    if cache is not None:
        monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))


def write_hub_cache(cache: Path, repo_id: str, commit: str, files: Dict[str, Path], repo_type: str = 'model',
                    branch: Optional[str] = 'main') -> Path:
    """Put ``files`` (path in the repository -> local file) into the hub cache ``cache`` as
    huggingface_hub leaves a download there: ``<type>s--<namespace>--<name>/blobs/<hash>``,
    ``snapshots/<commit>/<path>`` linking to its blob, and ``refs/<branch>`` holding the commit.
    Returns the snapshot folder."""
    from huggingface_hub.file_download import repo_folder_name

    storage = Path(cache) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    snapshot = storage / 'snapshots' / commit
    for path_in_repo, source in files.items():
        blob = storage / 'blobs' / hashlib.sha256(Path(source).read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, blob)
        link = snapshot / path_in_repo
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if branch:
        (storage / 'refs').mkdir(parents=True, exist_ok=True)
        (storage / 'refs' / branch).write_text(commit)
    return snapshot


def folder_files(folder: Path, path_in_repo: str = '') -> Dict[str, Path]:
    """Every file under ``folder``, keyed by its path in a repository under ``path_in_repo``."""
    folder = Path(folder)
    return {'/'.join(filter(None, [path_in_repo, str(p.relative_to(folder).as_posix())])): p
            for p in sorted(folder.rglob('*')) if p.is_file()}


def autospec_api(namespace: str = 'me', cache: Optional[Path] = None):
    """``create_autospec(HfApi, instance=True)``: ``create_repo`` answers the real ``RepoUrl``
    (the namespace filled in for a bare name, as the hub does), ``upload_folder`` a real
    ``CommitInfo`` with a new commit hash each time, and, with ``cache``, leaves the uploaded
    files in the hub cache at that commit, as if they had been pushed and then fetched."""
    from huggingface_hub import CommitInfo, HfApi, RepoUrl, constants

    api = mock.create_autospec(HfApi, instance=True)
    commits = []

    def create_repo(repo_id, **kwargs):
        full = repo_id if '/' in repo_id else f'{namespace}/{repo_id}'
        return RepoUrl(f'{constants.ENDPOINT}/{full}')

    def upload_folder(*, repo_id, folder_path, path_in_repo=None, commit_message=None, revision=None, **kwargs):
        commits.append(hashlib.sha1(f'{repo_id} {path_in_repo} {len(commits)}'.encode()).hexdigest())
        oid = commits[-1]
        if cache is not None:
            write_hub_cache(cache, repo_id, oid, folder_files(Path(folder_path), path_in_repo or ''),
                            branch=revision or 'main')
        return CommitInfo(commit_url=f'{constants.ENDPOINT}/{repo_id}/commit/{oid}', commit_message=commit_message,
                          commit_description='', oid=oid)

    api.create_repo.side_effect = create_repo
    api.upload_folder.side_effect = upload_folder
    api.commits = commits
    return api
