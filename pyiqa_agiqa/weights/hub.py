"""Weights on the Hugging Face hub: ``hf://`` references, their download (huggingface_hub's
cache, so offline use works once fetched) and ``push``.

A reference follows huggingface_hub's own ``hf://`` grammar (``huggingface_hub.parse_hf_uri``,
the paths of ``HfFileSystem``), restricted to the repositories weights can be read from::

    hf://[datasets/|spaces/|models/]NAMESPACE/NAME[@REVISION][/PATH]

- the repository id is ``namespace/name`` (checked with huggingface_hub's ``validate_repo_id``);
  a model repository unless the reference starts with ``datasets/`` or ``spaces/``;
  ``kernels/`` and ``buckets/`` hold no weights and are refused;
- ``@REVISION`` comes right after the repository id (an ``@`` further on belongs to the path):
  a commit hash (pins the weights), a branch or a tag; ``refs/pr/N`` and
  ``refs/convert/NAME`` are read whole, a ``/`` of another revision is written ``%2F``;
- ``PATH`` is an exported folder, or a weights file, inside the repository (empty: its root).

Whether the hub is used at all is huggingface_hub's decision: its offline mode
(``HF_HUB_OFFLINE=1``), its endpoint (``HF_ENDPOINT``, e.g. a mirror) and the proxies its HTTP
client takes from the environment. Its errors become one line naming the reference and the way
out (:func:`hub_failure`).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

from ..errors import AGIQAError, OptionError, one_line
from .card import CARD_FILE, is_exported_folder, read_card, verify_weights
from .io import PathLike

HF_PREFIX = 'hf://'
FORM = 'hf://[datasets/|spaces/]namespace/name[@revision][/path]'
# hf:// type prefixes (huggingface_hub.constants.HF_URI_TYPE_PREFIXES) of repositories weights can be read from
REPO_TYPES = {'models': 'model', 'datasets': 'dataset', 'spaces': 'space'}
_NO_WEIGHTS_TYPES = ('kernels', 'buckets')
_PREFIX_OF_TYPE = {'dataset': 'datasets/', 'space': 'spaces/', 'model': ''}
# revisions that hold a '/' and are read whole, as huggingface_hub reads them
_SPECIAL_REVISION = re.compile(r'refs/(?:convert/[\w.-]+|pr/\d+)')
# what git (and so the hub) refuses in a branch or tag name, and '@' (two '@' in a reference)
_BAD_REVISION = re.compile(r'[\x00-\x20\x7f~^:?*\[\\@]|\.\.|//|^[/.]|[/.]$|\.lock$')


class HubError(AGIQAError, OSError):
    """The hub could not give or take weights: offline mode, the hub (or the ``HF_ENDPOINT``
    mirror) unreachable, a repository, revision or file that is not there, no access."""


@dataclass(frozen=True)
class HubReference:
    """An ``hf://`` reference in its parts (``path`` may be empty: the repository root)."""
    repo_id: str
    revision: Optional[str]
    path: str
    repo_type: str = 'model'

    @classmethod
    def parse(cls, spec: str) -> 'HubReference':
        """The same as :func:`parse_hub_reference`."""
        return parse_hub_reference(spec)

    def __str__(self) -> str:
        revision = ''
        if self.revision is not None:
            special = _SPECIAL_REVISION.fullmatch(self.revision)
            revision = '@' + (self.revision if special else self.revision.replace('/', '%2F'))
        path = f'/{self.path}' if self.path else ''
        return f'{HF_PREFIX}{_PREFIX_OF_TYPE[self.repo_type]}{self.repo_id}{revision}{path}'


def parse_hub_reference(spec: str) -> HubReference:
    """``spec`` (``hf://...``, see the module doc) in its parts, checked; an
    :class:`~pyiqa_agiqa.errors.OptionError` of one line naming ``spec`` and the expected form
    for a malformed one."""
    def bad(why: str) -> OptionError:
        return OptionError(f"'{spec}' is not a hub reference: {why}; expected {FORM}, "
                           'e.g. hf://org/agiqa-weights@<commit>/ipce_agiqa3k')

    if not isinstance(spec, str) or not spec.startswith(HF_PREFIX):
        raise bad(f'it does not start with {HF_PREFIX}')
    body = spec[len(HF_PREFIX):]
    body = body[:-1] if body.endswith('/') else body  # a trailing '/': the same folder
    if not body:
        raise bad(f'nothing follows {HF_PREFIX}')
    if any(not segment for segment in body.split('/')):
        raise bad("it has an empty segment ('//', or a '/' right after hf://)")
    head, _, location = body.partition('/')
    repo_type = 'model'
    if head in REPO_TYPES:
        repo_type = REPO_TYPES[head]
    elif head in _NO_WEIGHTS_TYPES:
        raise bad(f"{head} hold no weights to load (models, datasets and spaces do)")
    elif head in ('model', 'dataset', 'space'):
        raise bad(f"a repository type is written plural ('{head}s/')")
    else:
        location = body
    if not location:
        raise bad(f'a repository id must follow {head}/')
    at = location.find('@')
    if at < 0 or location[:at].count('/') > 1:  # no revision: an '@' further on is in the path
        repo_id, revision = '/'.join(location.split('/')[:2]), None
        path = '/'.join(location.split('/')[2:])
    else:
        repo_id, rest = location[:at], location[at + 1:]
        special = _SPECIAL_REVISION.match(rest)
        if special and rest[special.end():special.end() + 1] in ('', '/'):
            revision, path = special.group(), rest[special.end() + 1:]
        elif rest.startswith('refs/'):
            raise bad("a 'refs/' revision is refs/pr/<number> or refs/convert/<name>")
        else:
            raw, _, path = rest.partition('/')
            revision = unquote(raw)
        if not revision:
            raise bad("the revision after '@' is empty")
        if not special and _BAD_REVISION.search(revision):
            raise bad(f"'{revision}' is not a revision (a commit hash, branch or tag, without a second '@')")
    if repo_id.count('/') != 1:
        raise bad(f"the repository id '{repo_id}' is not namespace/name")
    _validate_repo_id(repo_id, bad)
    if any(segment in ('.', '..') for segment in path.split('/')):
        raise bad("its path has a '.' or '..' segment (it would leave the repository)")
    return HubReference(repo_id, revision, path, repo_type)


def _validate_repo_id(repo_id: str, bad) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise bad(one_line(error).rstrip('.')) from None


def _hub():
    import huggingface_hub

    return huggingface_hub


def hub_offline() -> bool:
    """huggingface_hub's offline mode (``HF_HUB_OFFLINE``, read by it when imported)."""
    hub = _hub()
    is_offline = getattr(hub, 'is_offline_mode', None)
    return bool(is_offline() if is_offline else hub.constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    """The hub huggingface_hub talks to (``HF_ENDPOINT``, e.g. a mirror)."""
    return _hub().constants.ENDPOINT


def _chain(error: BaseException):
    """``error`` and the errors it was raised from, outermost first."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _transport_errors() -> tuple:
    """Connection, timeout and proxy errors of the HTTP client huggingface_hub uses (httpx2,
    httpx or requests, by version), and the builtin ones."""
    found = [ConnectionError, TimeoutError]
    for name, attribute in (('httpx2', 'TransportError'), ('httpx', 'TransportError'),
                            ('requests', 'ConnectionError'), ('requests', 'Timeout')):
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, attribute, None), type):
            found.append(getattr(module, attribute))
    return tuple(found)


def hub_failure(error: BaseException) -> Optional[tuple]:
    """``(unreachable, reason)`` for an error raised by huggingface_hub, None for any other.

    ``unreachable`` is True when the hub could not be used from here (its offline mode, no
    connection to its endpoint, a proxy or timeout error, nothing in the cache to fall back on),
    False when the hub answered no (no such repository, revision or file, no access); ``reason``
    is one line."""
    from huggingface_hub import utils

    chain = _chain(error)
    if any(isinstance(e, utils.OfflineModeIsEnabled) for e in chain) or (
            isinstance(error, utils.LocalEntryNotFoundError) and hub_offline()):
        return True, 'huggingface_hub is in offline mode (HF_HUB_OFFLINE=1)'
    transport = _transport_errors()
    cut = next((e for e in chain if isinstance(e, transport)), None)
    if cut is not None or isinstance(error, utils.LocalEntryNotFoundError):
        root = cut if cut is not None else chain[-1]
        return True, f'{hub_endpoint()} cannot be reached: {type(root).__name__}: {one_line(root)}'[:400]
    if isinstance(error, (utils.HfHubHTTPError, utils.EntryNotFoundError, utils.HFValidationError)):
        return False, f'{type(error).__name__}: {one_line(error)}'[:400]
    return None


def _hub_error(error: BaseException, what: str, fix: str) -> Optional[HubError]:
    failure = hub_failure(error)
    if failure is None:
        return None
    unreachable, reason = failure
    if unreachable:
        return HubError(f'{what}: not in the local hub cache, and the hub cannot be used ({reason}). {fix}')
    return HubError(f'{what}: the hub at {hub_endpoint()} refused it ({reason})')


def fetch_from_hub(ref: HubReference) -> str:
    """Local path of ``ref`` in the hub cache (downloaded if needed)."""
    if ref.revision is None:
        warnings.warn(f'{ref} is not pinned to a revision: the weights may change under this name; '
                      'pin it as hf://org/repo@<commit>/path', UserWarning, stacklevel=3)
    hub = _hub()
    try:
        if ref.path.endswith(('.safetensors', '.pth', '.pt', '.bin')):
            return hub.hf_hub_download(ref.repo_id, ref.path, repo_type=ref.repo_type, revision=ref.revision)
        patterns = [f'{ref.path}/*'] if ref.path else None
        root = hub.snapshot_download(ref.repo_id, repo_type=ref.repo_type, revision=ref.revision,
                                     allow_patterns=patterns)
    except Exception as error:  # noqa: BLE001 - huggingface_hub's errors are translated, others go on
        translated = _hub_error(error, f'weights {ref}',
                                'Fetch them once online (HF_ENDPOINT may name a mirror), or copy the exported '
                                'folder to this machine and pass its path as the weights')
        if translated is None:
            raise
        raise translated from None
    folder = os.path.join(root, ref.path) if ref.path else root
    if not is_exported_folder(folder):
        raise OptionError(f'{ref} holds no exported weights ({CARD_FILE} missing): give the path of an '
                          'exported folder in the repository')
    return folder


def push_folder(folder: PathLike, repo_id: str, path_in_repo: Optional[str] = None, revision: Optional[str] = None,
                private: bool = False, api=None, token: Optional[str] = None) -> str:
    """Upload an exported folder to a model repository of the hub; returns its pinned
    ``hf://namespace/name@commit/path`` spec.

    ``repo_id`` is ``namespace/name``, or ``name`` for one in your own namespace (the hub fills it
    in; the spec names the repository the hub created). ``revision`` is a branch, created from
    the default branch if missing. ``api`` defaults to ``huggingface_hub.HfApi(token=token)``.
    """
    def bad(why: str) -> OptionError:
        return OptionError(f"push: '{repo_id}' is not a repository id: {why}; expected namespace/name "
                           '(or name, in your own namespace), e.g. org/agiqa-weights')

    _validate_repo_id(repo_id, bad)
    path_in_repo = (path_in_repo if path_in_repo is not None else Path(folder).name).strip('/')
    if any(segment in ('', '.', '..') for segment in path_in_repo.split('/')) and path_in_repo:
        raise OptionError(f"push: --path-in-repo '{path_in_repo}' has an empty, '.' or '..' segment: give a folder "
                          'inside the repository, e.g. ipce_agiqa3k')
    if revision is not None and (not revision or _BAD_REVISION.search(revision)):
        raise OptionError(f"push: --revision '{revision}' is not a branch name (e.g. main or weights-v2)")
    folder = Path(folder)
    card = read_card(folder)
    verify_weights(folder, card)
    try:
        api = api or _hub().HfApi(token=token)
        url = api.create_repo(repo_id, repo_type='model', exist_ok=True, private=private)
        if revision is not None:
            api.create_branch(url.repo_id, branch=revision, repo_type=url.repo_type, exist_ok=True)
        commit = api.upload_folder(repo_id=url.repo_id, repo_type=url.repo_type, folder_path=str(folder),
                                   path_in_repo=path_in_repo or None, revision=revision,
                                   commit_message=f"Add {card['method']} weights {path_in_repo}")
    except Exception as error:  # noqa: BLE001 - huggingface_hub's errors are translated, others go on
        failure = hub_failure(error)
        if failure is None:
            raise
        unreachable, reason = failure
        fix = ('push needs the hub: unset HF_HUB_OFFLINE, check the connection or HF_ENDPOINT' if unreachable else
               'log in with `hf auth login` (or set HF_TOKEN) with write access to the repository')
        raise HubError(f'push of {folder} to {repo_id} failed ({reason}): {fix}') from None
    return str(HubReference(url.repo_id, commit.oid, path_in_repo, url.repo_type))
