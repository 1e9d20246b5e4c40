"""hf:// references and the hub: one parser (a table of good and malformed references),
``push`` against an autospecced ``HfApi``, downloads through huggingface_hub's real code in its
offline mode over a cache in its real layout, and the online / offline decision left to
huggingface_hub (HF_HUB_OFFLINE, HF_ENDPOINT, proxies), its errors one line."""

import json
import os
import socket
import subprocess
import sys
from unittest import mock

import huggingface_hub
import pytest
import torch

from pyiqa_agiqa.archs.backbone.clip import WeightsUnavailableError, resolve_weights
from pyiqa_agiqa.errors import OptionError
from pyiqa_agiqa.weights import specs as weight_specs
from pyiqa_agiqa.weights.card import CARD_FILE, CARD_FORMAT
from pyiqa_agiqa.weights.hub import FORM, HubError, HubReference, parse_hub_reference, push_folder

from conftest import REPO
from hub_helpers import autospec_api, offline_hub, write_hub_cache

C = 'a' * 40  # a commit hash

GOOD = [  # spec -> repo_id, repo_type, revision, path
    ('hf://org/repo', 'org/repo', 'model', None, ''),
    ('hf://org/repo/', 'org/repo', 'model', None, ''),
    (f'hf://org/repo@{C}', 'org/repo', 'model', C, ''),
    (f'hf://org/repo@{C}/ipce_agiqa3k', 'org/repo', 'model', C, 'ipce_agiqa3k'),
    ('hf://org/repo@v1.0/a/b/w.safetensors', 'org/repo', 'model', 'v1.0', 'a/b/w.safetensors'),
    ('hf://org/repo/dir/file@2.safetensors', 'org/repo', 'model', None, 'dir/file@2.safetensors'),
    ('hf://models/org/repo@main/x', 'org/repo', 'model', 'main', 'x'),
    ('hf://datasets/o/r/x', 'o/r', 'dataset', None, 'x'),
    (f'hf://datasets/o/r@{C}/x/y', 'o/r', 'dataset', C, 'x/y'),
    ('hf://spaces/o/r@main', 'o/r', 'space', 'main', ''),
    ('hf://org/repo@refs/pr/1', 'org/repo', 'model', 'refs/pr/1', ''),
    ('hf://org/repo@refs/pr/12/ipce', 'org/repo', 'model', 'refs/pr/12', 'ipce'),
    ('hf://org/repo@refs/convert/parquet/x', 'org/repo', 'model', 'refs/convert/parquet', 'x'),
    ('hf://org/repo@feature%2Fv2/x', 'org/repo', 'model', 'feature/v2', 'x'),
    ('hf://Org-1/repo_2.v3@main/x', 'Org-1/repo_2.v3', 'model', 'main', 'x'),
]

BAD = [  # spec -> what the one-line error says
    ('', 'does not start with hf://'),
    ('org/repo', 'does not start with hf://'),
    ('hf://', 'nothing follows hf://'),
    ('hf:///x', 'empty segment'),
    ('hf:///org/repo', 'empty segment'),
    ('hf://org//repo', 'empty segment'),
    ('hf://org/repo//x', 'empty segment'),
    ('hf://org/', "'org' is not namespace/name"),
    ('hf://repo', "'repo' is not namespace/name"),
    ('hf://agiqa@abc123/x', "'agiqa' is not namespace/name"),
    ('hf://datasets', 'a repository id must follow datasets/'),
    ('hf://datasets/o', "'o' is not namespace/name"),
    ('hf://dataset/o/r', "plural ('datasets/')"),
    ('hf://buckets/o/b/x', 'buckets hold no weights'),
    ('hf://kernels/o/k', 'kernels hold no weights'),
    ('hf://org/repo@a@b/x', "'a@b' is not a revision"),
    ('hf://org/repo@/x', "the revision after '@' is empty"),
    ('hf://org/repo@', "the revision after '@' is empty"),
    ('hf://org/repo@..', "'..' is not a revision"),
    ('hf://org/repo@ma in/x', "'ma in' is not a revision"),
    ('hf://org/repo@refs/pr/x/y', "'refs/' revision is refs/pr/<number>"),
    ('hf://org/re$po/x', "alphanumeric chars"),
    ('hf://org/re--po/x', 'Cannot have -- or ..'),
    ('hf://org/repo/../x', "'.' or '..' segment"),
    (f'hf://org/repo@{C}/a/../../x', "'.' or '..' segment"),
    ('hf://org/repo/./x', "'.' or '..' segment"),
]


@pytest.mark.parametrize('spec, repo_id, repo_type, revision, path', GOOD)
def test_references_are_read_in_their_parts(spec, repo_id, repo_type, revision, path):
    ref = parse_hub_reference(spec)
    assert (ref.repo_id, ref.repo_type, ref.revision, ref.path) == (repo_id, repo_type, revision, path)
    assert parse_hub_reference(str(ref)) == ref  # the canonical form reads back the same
    assert HubReference.parse(spec) == ref
    parse_hf_uri = getattr(huggingface_hub, 'parse_hf_uri', None)
    if parse_hf_uri is not None:  # huggingface_hub's own grammar reads it the same
        uri = parse_hf_uri(spec)
        assert (uri.id, uri.type, uri.revision, uri.path_in_repo) == (repo_id, repo_type, revision, path)


@pytest.mark.parametrize('spec, why', BAD)
def test_malformed_references_are_one_line_errors(spec, why):
    with pytest.raises(OptionError) as info:
        parse_hub_reference(spec)
    message = str(info.value)
    assert '\n' not in message and message.startswith(f"'{spec}' is not a hub reference: ")
    assert why in message and FORM in message


def test_canonical_form_names_the_type_and_encodes_a_slash_of_a_branch():
    assert str(HubReference('o/r', 'feature/v2', 'x', 'dataset')) == 'hf://datasets/o/r@feature%2Fv2/x'
    assert str(HubReference('o/r', 'refs/pr/3', '', 'model')) == 'hf://o/r@refs/pr/3'
    assert str(HubReference('o/r', None, '')) == 'hf://o/r'


def test_resolve_reads_a_dataset_repository_from_the_real_cache(tmp_path, monkeypatch, no_network):
    """hf://datasets/o/r/x: the dataset o/r (not the model 'datasets/o'), fetched by
    huggingface_hub's own code (offline, from a cache in its layout)."""
    (tmp_path / 'w.safetensors').write_bytes(b'weights')
    write_hub_cache(tmp_path / 'hub', 'o/r', C, {'x/w.safetensors': tmp_path / 'w.safetensors'}, repo_type='dataset')
    offline_hub(monkeypatch, tmp_path / 'hub')
    found = weight_specs.resolve(f'hf://datasets/o/r@{C}/x/w.safetensors')
    assert open(found, 'rb').read() == b'weights' and 'datasets--o--r' in found
    with pytest.warns(UserWarning, match='not pinned'):  # refs/main of the cache
        assert weight_specs.resolve('hf://datasets/o/r/x/w.safetensors') == found
    cached = huggingface_hub.scan_cache_dir(tmp_path / 'hub').repos  # the layout is huggingface_hub's
    assert {r.repo_id: r.repo_type for r in cached} == {'o/r': 'dataset'}


def test_an_uncached_reference_offline_is_one_line_naming_it(tmp_path, monkeypatch, no_network):
    offline_hub(monkeypatch, tmp_path / 'empty')
    for spec in (f'hf://org/repo@{C}/ipce', f'hf://org/repo@{C}/w.safetensors'):
        with pytest.raises(HubError) as info:
            weight_specs.resolve(spec)
        message = str(info.value)
        assert '\n' not in message and message.startswith(f'weights {spec}: not in the local hub cache')
        assert 'HF_HUB_OFFLINE' in message and 'pass its path' in message


# --- push -------------------------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path):
    """A minimal exported folder (weights + card with their SHA-256)."""
    from safetensors.torch import save_file

    from pyiqa_agiqa.weights.io import sha256_file

    folder = tmp_path / 'ipce_tiny'
    folder.mkdir()
    save_file({'w': torch.zeros(2)}, str(folder / 'weights.safetensors'))
    card = {'format': CARD_FORMAT, 'method': 'IPCE', 'weights': {'file': 'weights.safetensors',
                                                                 'sha256': sha256_file(folder / 'weights.safetensors')}}
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def test_push_uses_the_repository_the_hub_created(exported):
    """A bare name: the hub fills in the namespace; the upload and the returned spec use the
    repository create_repo answered, and the spec is pinned to the commit."""
    api = autospec_api(namespace='me')
    spec = push_folder(exported, 'test-weights', api=api)
    assert spec == f'hf://me/test-weights@{api.commits[0]}/ipce_tiny'
    api.create_repo.assert_called_once_with('test-weights', repo_type='model', exist_ok=True, private=False)
    assert api.upload_folder.call_args.kwargs['repo_id'] == 'me/test-weights'
    api.create_branch.assert_not_called()


def test_push_to_a_branch_creates_it_and_pins_the_commit(exported):
    api = autospec_api()
    spec = push_folder(exported, 'org/w', path_in_repo='a/b', revision='weights-v2', private=True, api=api)
    assert spec == f'hf://org/w@{api.commits[0]}/a/b'
    api.create_branch.assert_called_once_with('org/w', branch='weights-v2', repo_type='model', exist_ok=True)
    assert api.upload_folder.call_args.kwargs['revision'] == 'weights-v2'


@pytest.mark.parametrize('repo_id, why', [
    ('a/b/c', "in the form 'repo_name' or 'namespace/repo_name'"),
    ('datasets/o/r', "in the form 'repo_name' or 'namespace/repo_name'"),
    ('org/bad name', 'alphanumeric chars'),
    ('org/', 'alphanumeric chars'),
    ('', 'alphanumeric chars'),
])
def test_push_refuses_a_bad_repository_id_before_any_call(exported, repo_id, why):
    api = autospec_api()
    with pytest.raises(OptionError) as info:
        push_folder(exported, repo_id, api=api)
    message = str(info.value)
    assert '\n' not in message and message.startswith(f"push: '{repo_id}' is not a repository id") and why in message
    assert api.mock_calls == []


@pytest.mark.parametrize('options, why', [(dict(path_in_repo='../x'), "'..' segment"),
                                          (dict(revision='a..b'), 'not a branch name')])
def test_push_refuses_a_bad_path_or_branch_before_any_call(exported, options, why):
    api = autospec_api()
    with pytest.raises(OptionError, match=why):
        push_folder(exported, 'org/w', api=api, **options)
    assert api.mock_calls == []


def test_push_offline_is_one_line_from_the_real_api(exported, monkeypatch, no_network):
    """The real HfApi in huggingface_hub's offline mode refuses to send anything; push says so."""
    offline_hub(monkeypatch)
    with pytest.raises(HubError) as info:
        push_folder(exported, 'org/w', token='hf_not_a_real_token')
    message = str(info.value)
    assert '\n' not in message and message.startswith(f'push of {exported} to org/w failed')
    assert 'HF_HUB_OFFLINE' in message


# --- CLIP weights of an open_clip tag ---------------------------------------------------------


def test_offline_is_huggingface_hubs_decision_not_the_environment_of_now(tmp_path, monkeypatch, no_network):
    """Offline mode as huggingface_hub reads it (HF_HUB_OFFLINE when it was imported), with no
    connection attempted, whatever os.environ says now."""
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    offline_hub(monkeypatch)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights('ViT-B-32-quickgelu', 'openai', cache_dir=str(tmp_path))
    message = str(info.value)
    assert '\n' not in message and 'offline mode (HF_HUB_OFFLINE=1)' in message
    assert 'clip_pretrained=' in message and 'pretrained=False' in message


def test_a_cached_tag_is_taken_from_the_real_cache_offline_in_open_clips_order(tmp_path, monkeypatch,
                                                                               no_network):
    """Both files of the tag cached: the safetensors one, which open_clip prefers."""
    (tmp_path / 'm.safetensors').write_bytes(b'safetensors')
    (tmp_path / 'm.bin').write_bytes(b'pickle')
    write_hub_cache(tmp_path / 'hub', 'timm/vit_base_patch32_clip_224.openai', C,
                    {'open_clip_pytorch_model.bin': tmp_path / 'm.bin',
                     'open_clip_model.safetensors': tmp_path / 'm.safetensors'})
    offline_hub(monkeypatch)
    found = resolve_weights('ViT-B-32-quickgelu', 'openai', cache_dir=str(tmp_path / 'hub'))
    assert open(found, 'rb').read() == b'safetensors'


def test_a_tag_is_downloaded_with_huggingface_hub_in_open_clips_order(tmp_path, monkeypatch):
    """Online: huggingface_hub downloads the file open_clip would take (safetensors first, the
    .bin when the hub has none); its 'no such file' answer moves on to the next name."""
    import huggingface_hub.errors as errors

    http = sys.modules.get('httpx2') or sys.modules.get('httpx')
    if http is None or 'response' not in errors.HfHubHTTPError.__init__.__code__.co_varnames:
        pytest.skip('builds an HfHubHTTPError of huggingface_hub >= 1.0')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    url = 'https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors'
    missing = errors.RemoteEntryNotFoundError('404', response=http.Response(404, request=http.Request('HEAD', url)))
    download = mock.create_autospec(huggingface_hub.hf_hub_download, side_effect=[missing, str(tmp_path / 'm.bin')])
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', download)
    assert resolve_weights('ViT-B-32-quickgelu', 'openai', cache_dir=str(tmp_path)) == str(tmp_path / 'm.bin')
    assert [c.args for c in download.call_args_list] == [
        ('timm/vit_base_patch32_clip_224.openai', 'open_clip_model.safetensors'),
        ('timm/vit_base_patch32_clip_224.openai', 'open_clip_pytorch_model.bin')]
    assert all(c.kwargs['cache_dir'] == str(tmp_path) for c in download.call_args_list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_UNREACHABLE = """
import json, sys
from unittest import mock
from pyiqa_agiqa.archs.backbone.clip import resolve_weights
from pyiqa_agiqa.weights.specs import resolve
out = []
with mock.patch('time.sleep'):  # huggingface_hub's retries, without their waits
    for call in (lambda: resolve_weights('ViT-B-32-quickgelu', 'openai', cache_dir=sys.argv[1]),
                 lambda: resolve('hf://org/repo@%s/ipce' % ('a' * 40))):
        try:
            call()
        except Exception as error:
            out.append([type(error).__name__, str(error)])
print(json.dumps(out))
"""


@pytest.mark.parametrize('where', ['HF_ENDPOINT', 'HTTPS_PROXY'])
def test_an_unreachable_hub_is_one_line_naming_it(tmp_path, where):
    """huggingface_hub goes online (HF_HUB_OFFLINE=0) to the hub HF_ENDPOINT names, through the
    proxy HTTPS_PROXY names; either unreachable (a closed local port), the error is the same
    one line, with huggingface_hub's reason."""
    closed = f'http://127.0.0.1:{_free_port()}'
    env = {k: v for k, v in os.environ.items() if 'proxy' not in k.lower() and k != 'HF_ENDPOINT'}
    env.update(HF_HUB_OFFLINE='0', HF_HUB_CACHE=str(tmp_path / 'hub'), PYTHONPATH=str(REPO), **{where: closed})
    result = subprocess.run([sys.executable, '-c', _UNREACHABLE, str(tmp_path / 'clip')], capture_output=True,
                            text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (clip_kind, clip_message), (spec_kind, spec_message) = json.loads(result.stdout)
    endpoint = closed if where == 'HF_ENDPOINT' else 'https://huggingface.co'
    assert clip_kind == 'WeightsUnavailableError' and '\n' not in clip_message
    assert clip_message.startswith("CLIP weights 'ViT-B-32-quickgelu' / 'openai' are not in the local cache and "
                                   f'cannot be downloaded from the Hugging Face hub ({endpoint} cannot be reached: ')
    assert 'clip_pretrained=' in clip_message and 'pretrained=False' in clip_message
    assert spec_kind == 'HubError' and '\n' not in spec_message
    assert f'({endpoint} cannot be reached: ' in spec_message and 'pass its path' in spec_message
