"""The one place where the plugin builds CLIP backbones (open_clip), tokenises text and
normalises images. Every architecture of the plugin goes through :class:`CLIPBackbone`.

Weights (argument ``weights``):

- an open_clip pretrained tag, e.g. ``'openai'`` (the default of every method): taken from
  the Hugging Face cache if it is there, otherwise downloaded into it with huggingface_hub
  (the file open_clip would download). Whether the hub can be used is huggingface_hub's
  decision (``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, proxies); offline, or with the hub
  unreachable, and no cached copy, this fails with :class:`WeightsUnavailableError`, one line
  that says why and how to supply a local file;
- a path to a local checkpoint file (``open_clip_pytorch_model.bin``, ``.safetensors`` or any
  state dict open_clip can convert), read as tensors only: a file that needs pickle execution,
  such as the TorchScript ``ViT-B-32.pt`` of OpenAI's ``clip`` package, is refused with
  :class:`~pyiqa_agiqa.weights.UnsafeWeightsError` (convert a trusted one with
  ``pyiqa-agiqa convert-weights``);
- ``None`` / ``False``: random initialisation, no file is read and nothing is downloaded.

Networks of the plugin take images in [0, 1]; :meth:`CLIPBackbone.normalize` applies the
CLIP mean / std. Model configs shipped with the plugin (``model_configs/*.json``, e.g. the
tiny ``AGIQA-Tiny-ViT`` used by the tests and the demo) are registered with open_clip here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional, Sequence, Union

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.pretrained import get_pretrained_cfg
from torch import nn

from ...errors import AGIQAError
from ...prompt_args import warn_truncated
from ...weights.io import UnsafeWeightsError, WeightsFormatError, check_finite, unsafe_or_unreadable

_PLUGIN_CONFIG_DIR = Path(__file__).resolve().parent / 'model_configs'
_configs_registered = False

WeightsSpec = Union[str, os.PathLike, None, bool]


class WeightsUnavailableError(AGIQAError, RuntimeError):
    """Raised when CLIP weights named by a tag are neither cached nor downloadable."""


def register_plugin_model_configs() -> None:
    """Make open_clip aware of the configs in ``pyiqa_agiqa/archs/backbone/model_configs`` (once)."""
    global _configs_registered
    if not _configs_registered:
        open_clip.add_model_config(_PLUGIN_CONFIG_DIR)
        _configs_registered = True


def _tag_files(model_name: str, tag: str):
    """(hub repository, file names) of an open_clip pretrained tag, the file names in the order
    open_clip's ``download_pretrained_from_hf`` tries them (a safetensors alternative first);
    (None, []) for a tag open_clip downloads from a URL."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = get_pretrained_cfg(model_name, tag).get('hf_hub', '')
    if not hub:
        return None, []
    repo_id, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith(('.bin', '.pth')):
        return repo_id, [filename[:-4] + '.safetensors', filename]
    return repo_id, [filename]


def _cached_tag_file(model_name: str, tag: str, cache_dir: Optional[str]) -> Optional[str]:
    """Local path of the weights of ``tag`` if the HF hub cache already holds them (no network)."""
    from huggingface_hub import try_to_load_from_cache

    repo_id, names = _tag_files(model_name, tag)
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def _unavailable(model_name: str, tag: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"CLIP weights '{model_name}' / '{tag}' are not in the local cache and cannot be downloaded from the "
        f"Hugging Face hub ({reason}). Either run once online (they are then cached), "
        "or download the checkpoint elsewhere and pass its path, e.g. "
        "create_metric(..., clip_pretrained='/path/to/open_clip_pytorch_model.bin') "
        "(option `clip_pretrained` in a network config), or use pretrained=False for random "
        "weights."
    )


def _download_tag_file(model_name: str, tag: str, cache_dir: Optional[str]) -> Optional[str]:
    """Download the weights of ``tag`` into the hub cache with huggingface_hub, which decides
    whether the hub can be used: its offline mode (``HF_HUB_OFFLINE``), its endpoint
    (``HF_ENDPOINT``) and proxies. Its errors become :class:`WeightsUnavailableError`. None for a
    tag open_clip downloads from a URL itself."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    from ...weights.hub import hub_failure, hub_offline

    repo_id, names = _tag_files(model_name, tag)
    if repo_id is None:
        if hub_offline():
            raise _unavailable(model_name, tag, 'huggingface_hub is in offline mode (HF_HUB_OFFLINE=1)')
        return None
    for name in names:
        try:
            return hf_hub_download(repo_id, name, cache_dir=cache_dir, library_name='open_clip',
                                   library_version=open_clip.__version__)
        except Exception as error:  # noqa: BLE001 - huggingface_hub's errors are translated, others go on
            if isinstance(error, EntryNotFoundError) and not isinstance(error, LocalEntryNotFoundError) \
                    and name != names[-1]:
                continue  # the hub has no such file (the safetensors alternative): the next name
            failure = hub_failure(error)
            if failure is None:
                raise
            raise _unavailable(model_name, tag, failure[1]) from None
    return None


def resolve_weights(model_name: str, weights: WeightsSpec, cache_dir: Optional[str] = None) -> Optional[str]:
    """Turn ``weights`` into what ``open_clip.create_model(pretrained=...)`` takes.

    Returns None for random initialisation, or a file path: a tag's weights are taken from the
    hub cache, else downloaded into it with huggingface_hub (a tag open_clip downloads from a
    URL is returned as it is). Raises FileNotFoundError / ValueError / WeightsUnavailableError
    with a message that names the model, the value and the way out.
    """
    if weights is None or weights is False:
        return None
    if weights is True:
        raise ValueError("weights=True is ambiguous: give an open_clip tag such as 'openai', a file path, or None")
    weights = os.fspath(weights)
    if os.path.isfile(weights):
        return weights
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if weights not in tags:
        if os.sep in weights or weights.endswith(('.pt', '.pth', '.bin', '.safetensors')):
            raise FileNotFoundError(f"CLIP weights file not found: '{weights}'")
        raise ValueError(
            f"'{weights}' is neither a weights file nor a pretrained tag of open_clip model "
            f"'{model_name}' (its tags: {tags or 'none'})"
        )
    return _cached_tag_file(model_name, weights, cache_dir) or _download_tag_file(model_name, weights, cache_dir) \
        or weights


def initial_clip_weights(pretrained: bool, clip_pretrained: WeightsSpec, pretrained_model_path: Optional[str]):
    """What an architecture builds its CLIP from: nothing (random) when ``pretrained`` is False
    or when a whole fine-tuned checkpoint (``pretrained_model_path``, which holds every CLIP
    weight, frozen ones included) will overwrite it; else ``clip_pretrained``. So scoring with
    fine-tuned weights needs no CLIP download."""
    return clip_pretrained if pretrained and not pretrained_model_path else None


def create_clip(model_name: str, weights: WeightsSpec = 'openai', cache_dir: Optional[str] = None) -> nn.Module:
    """Build an open_clip CLIP model (both towers) on the CPU, in float32."""
    register_plugin_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"Unknown open_clip model '{model_name}'. Known models include: "
                         f"{', '.join(m for m in open_clip.list_models() if 'ViT-B' in m or 'AGIQA' in m)}")
    pretrained = resolve_weights(model_name, weights, cache_dir)
    # open_clip logs a root-logger warning for random init, which is what was asked for here
    quiet = _logging_disabled(logging.WARNING) if pretrained is None else contextlib.nullcontext()
    with warnings.catch_warnings(), quiet:
        warnings.filterwarnings('ignore', message='QuickGELU mismatch')
        warnings.filterwarnings('ignore', message='.*TorchScript archive')
        try:  # open_clip reads checkpoints with torch.load(weights_only=True) or safetensors
            model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
        except (pickle.UnpicklingError, RuntimeError) as error:
            if 'Error(s) in loading state_dict' in str(error):
                raise _misfit(model_name, pretrained, str(error)) from None
            refused = unsafe_or_unreadable(pretrained, error)
            if isinstance(refused, UnsafeWeightsError):
                raise refused from None
            raise
    if pretrained is not None:
        check_finite(model.state_dict(), pretrained, ' (CLIP weights)',
                     fix='a damaged file, whose scores would all be NaN: download or copy the CLIP weights again')
    return model


def _misfit(model_name: str, pretrained: str, text: str) -> WeightsFormatError:
    """One line for torch's load_state_dict error on CLIP weights of another model."""
    import re

    shapes = re.findall(r'size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) from '
                        r'checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)', text)
    found = []
    if shapes:
        shown = '; '.join(f"{k}: {f.replace(', ', 'x')} in the file, {e.replace(', ', 'x')} expected"
                          for k, f, e in shapes[:3])
        found.append(f"{len(shapes)} tensor(s) of another shape ({shown}{'; ...' if len(shapes) > 3 else ''})")
    for label in ('Missing', 'Unexpected'):
        keys = re.search(label + r' key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)', text)
        if keys:
            found.append(f"{keys.group(1).count(chr(34)) // 2} {label.lower()} key(s)")
    return WeightsFormatError(f"CLIP weights '{pretrained}' do not fit open_clip model '{model_name}': "
                              f"{', '.join(found) or ' '.join(text.split())[:300]}. They are weights of another CLIP: "
                              'give the clip_model they are for, or clip_pretrained weights of this one')


@contextlib.contextmanager
def _logging_disabled(level: int):
    previous = logging.root.manager.disable
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(previous)


class TokenCache:
    """Token ids of the most recently tokenised texts (text -> (context_length,) row), at most
    ``size`` of them, least recently used dropped first. open_clip's tokenizer takes 66 to 90
    us a text on a CPU core (ftfy, regex, BPE; ``scripts/benchmark.py``), more than the text
    tower's time per text reported for an H100 (42 us), so a prompt that comes back (the same
    prompt for many images, IPCE's level texts of a repeated prompt) is not tokenised again.
    Thread-safe: the scorer fills it from a thread while the model computes
    (:meth:`CLIPBackbone.tokenize`). Not copied with the network (a copy starts empty)."""

    def __init__(self, tokenizer, size: int = 32768):
        self.tokenizer, self.size = tokenizer, size
        self._rows: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self):
        return TokenCache, (self.tokenizer, self.size)

    def __call__(self, texts: Sequence[str]) -> torch.LongTensor:
        """(N,) texts -> (N, context_length) token ids on the CPU, as ``tokenizer(texts)``."""
        with self._lock:
            rows: List[Optional[torch.Tensor]] = [self._rows.get(t) for t in texts]
            for t, row in zip(texts, rows):
                if row is not None:
                    self._rows.move_to_end(t)
        missing = list(dict.fromkeys(t for t, row in zip(texts, rows) if row is None))
        if missing:
            # each row its own small tensor: a kept row must not keep its whole batch alive
            ids = self.tokenizer(missing).to(torch.int32)
            new = {t: row.clone() for t, row in zip(missing, ids.unbind())}
            rows = [new[t] if row is None else row for t, row in zip(texts, rows)]
            with self._lock:
                self._rows.update(new)
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        return torch.stack(rows).long() if rows else self.tokenizer([])

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


class CLIPBackbone(nn.Module):
    """An open_clip model with its tokenizer and CLIP normalisation.

    Args:
        model_name: open_clip model name, e.g. ``'ViT-B-32-quickgelu'``.
        weights: tag, checkpoint path or None (random); see the module docstring.
        cache_dir: download / cache folder handed to open_clip.

    Attributes:
        model: the open_clip ``CLIP`` module (``visual``, ``transformer``, ``logit_scale``...).
        image_size: side of the square input of the vision tower (e.g. 224).
        embed_dim: width of the joint embedding (e.g. 512).
        context_length: number of text tokens (77 for CLIP); longer texts are truncated.
    """

    def __init__(self, model_name: str = 'ViT-B-32-quickgelu', weights: WeightsSpec = 'openai',
                 cache_dir: Optional[str] = None):
        super().__init__()
        self.model_name = model_name
        self.model = create_clip(model_name, weights, cache_dir)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.token_cache = TokenCache(self.tokenizer)
        self.context_length = int(self.tokenizer.context_length)
        size = self.model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.embed_dim = int(self.model.text_projection.shape[1])
        self.register_buffer('mean', torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C, H, W) in [0, 1] -> CLIP-normalised (..., 3, H, W); grey (C=1) is repeated."""
        if x.shape[-3] == 1:
            x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        return (x - self.mean) / self.std

    def count_tokens(self, texts: Sequence[str]) -> list:
        """Number of BPE tokens of each text, start and end tokens included."""
        return [len(self.tokenizer.encode(t)) + 2 for t in texts]

    def tokenize(self, texts: Sequence[str]) -> torch.LongTensor:
        """(N,) texts -> (N, context_length) token ids on the model's device (truncated); the
        tokenizer's ids, through :attr:`token_cache`."""
        return self.token_cache(list(texts)).to(self.mean.device)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the CLIP towers run in (see :meth:`set_dtype`)."""
        return self.model.logit_scale.dtype

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of everything after the towers: every ``encode_*`` method returns its
        embeddings in it, and the networks' own parameters (heads, CIA layer, prompts) are in it.
        It is the dtype of the backbone's normalisation buffers, which ``.double()`` / ``.half()``
        / ``.to(dtype)`` of the network cast and :meth:`set_dtype` leaves alone: float32 by default
        (bf16 towers included), float64 after ``net.double()``."""
        return self.mean.dtype

    def set_dtype(self, dtype: torch.dtype) -> 'CLIPBackbone':
        """Run the CLIP towers in ``dtype`` (weights cast once). Every ``encode_*`` method still
        takes inputs of any float dtype and returns embeddings in :attr:`compute_dtype`, so
        whatever a network computes from them (similarities, softmax, heads) keeps its own dtype
        (float32 unless the whole network was cast)."""
        self.model.to(dtype)
        return self

    def encode_image(self, x: torch.Tensor, normalize_input: bool = True) -> torch.Tensor:
        """(N, 3, S, S) images in [0, 1] -> (N, embed_dim) unnormalised embeddings, in
        :attr:`compute_dtype`."""
        x = self.normalize(x) if normalize_input else x
        return self.model.encode_image(x.to(self.dtype)).to(self.compute_dtype)

    def encode_text(self, texts: Sequence[str], warn_as: Optional[str] = None) -> torch.Tensor:
        """(N,) texts -> (N, embed_dim) unnormalised embeddings. With ``warn_as`` (a metric
        name), texts that fill the context (truncated ones) are reported with a warning.

        Each distinct text is encoded once, and the text tower runs only up to the longest
        text's end token: the tower's attention is causal, so the end token's features (what
        CLIP pools) do not depend on the padding after it. Same values as open_clip's
        ``encode_text`` on the full 77-token context up to float rounding (~1e-6).
        """
        unique = list(dict.fromkeys(texts))
        tokens = self.tokenize(unique)
        if warn_as:
            warn_truncated(unique, tokens, warn_as)
        feats = self.encode_tokens(tokens)
        if len(unique) == len(texts):
            return feats
        where = {t: i for i, t in enumerate(unique)}
        return feats[torch.tensor([where[t] for t in texts], device=feats.device)]

    def encode_tokens(self, tokens: torch.LongTensor) -> torch.Tensor:
        """(N, L) token ids -> (N, embed_dim): open_clip's text tower on the first
        ``max end position + 1`` positions only (see :meth:`encode_text`)."""
        model = self.model
        if getattr(model, 'text_pool_type', 'argmax') != 'argmax' or not hasattr(model, 'token_embedding'):
            return model.encode_text(tokens).to(self.compute_dtype)
        ends = tokens.argmax(dim=-1)
        length = int(ends.max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
        x = model.ln_final(model.transformer(x, attn_mask=mask))
        x = x[torch.arange(x.shape[0], device=x.device), ends]
        projection = model.text_projection
        return (projection(x) if isinstance(projection, nn.Linear) else x @ projection).to(self.compute_dtype)

    def text_parameters(self) -> list:
        """The parameters the text features depend on (text tower, projection), for caches."""
        model = self.model
        modules = [getattr(model, name, None) for name in ('token_embedding', 'transformer', 'ln_final')]
        params = [p for m in modules if m is not None for p in m.parameters()]
        return params + [t for t in (getattr(model, 'positional_embedding', None),
                                     getattr(model, 'text_projection', None)) if isinstance(t, torch.Tensor)]

    def logit_scale(self) -> torch.Tensor:
        """exp(logit_scale) in :attr:`compute_dtype`: 100 for OpenAI weights, about 14.3 at random
        initialisation."""
        return self.model.logit_scale.to(self.compute_dtype).exp()

    # ----- learnable prompts (CoOp / deep multimodal prompts), used by CLIP-AGIQA and DCMPL -----
    def placeholder_tokens(self, n_ctx: int, texts: Sequence[str]) -> torch.LongTensor:
        """Tokens of ``'X X ... X {text}'`` (n_ctx placeholders right after the start token);
        the placeholders are the positions that text prompts overwrite. (N, context_length)."""
        return self.tokenize([' '.join(['X'] * n_ctx + [t]) for t in texts])

    def encode_text_prompted(self, tokens: torch.LongTensor, prompts: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
        """Text tower with learnable context at token positions 1..n_ctx.

        Args:
            tokens: (N, L) from :meth:`placeholder_tokens`.
            prompts: one entry per layer, from the input (0) upwards; None keeps the tokens.
                Entry 0 replaces the token embeddings (before the positional embedding, as
                CoOp); entry i > 0 replaces the same positions at the input of block i (deep
                prompts). Each is (n_ctx, width) shared by all texts or (N, n_ctx, width).
        Returns:
            (N, embed_dim) unnormalised text embeddings.
        """
        model = self.model
        blocks = model.transformer.resblocks
        if len(prompts) > len(blocks):
            raise ValueError(f'{len(prompts)} text prompt layers for a {len(blocks)}-layer text tower')
        x = model.token_embedding(tokens)
        if prompts and prompts[0] is not None:
            x = _overwrite_tokens(x, prompts[0], start=1)
        x = x + model.positional_embedding
        for i, block in enumerate(blocks):
            if 0 < i < len(prompts) and prompts[i] is not None:
                x = _overwrite_tokens(x, prompts[i], start=1)
            x = block(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return (pooled @ model.text_projection).to(self.compute_dtype)

    def encode_image_prompted(self, images: torch.Tensor, prompts: Sequence[Optional[torch.Tensor]],
                              normalize_input: bool = True) -> torch.Tensor:
        """Vision tower (ViT) with learnable prompt tokens appended after CLS + patches.

        Args:
            images: (N, 3, S, S) in [0, 1] (CLIP-normalised here unless normalize_input=False).
            prompts: one entry per layer; entry 0 ((n_ctx, width) or (N, n_ctx, width)) is
                appended after the positional embedding, before ``ln_pre``; entry i > 0
                replaces the appended tokens at the input of block i; None keeps them.
        Returns:
            (N, embed_dim) unnormalised image embeddings (CLS token pooled, as CLIP).
        """
        visual = self.model.visual
        if not hasattr(visual, 'transformer') or not hasattr(visual, 'class_embedding'):
            raise ValueError(f'visual prompts need a ViT image tower; {self.model_name} has {type(visual).__name__}')
        blocks = visual.transformer.resblocks
        if not prompts or prompts[0] is None:
            raise ValueError('visual prompts need an input-level entry (prompts[0])')
        if len(prompts) > len(blocks):
            raise ValueError(f'{len(prompts)} visual prompt layers for a {len(blocks)}-layer vision tower')
        x = self.normalize(images) if normalize_input else images
        x = visual.conv1(x.to(self.dtype)).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        first = prompts[0].expand(x.shape[0], -1, -1) if prompts[0].dim() == 2 else prompts[0]
        n_ctx = first.shape[1]
        x = visual.ln_pre(torch.cat([x, first.to(x.dtype)], dim=1))
        for i, block in enumerate(blocks):
            if 0 < i < len(prompts) and prompts[i] is not None:
                x = _overwrite_tokens(x, prompts[i], start=x.shape[1] - n_ctx)
            x = block(x)
        pooled, _ = visual._pool(x)
        return (pooled @ visual.proj).to(self.compute_dtype)


def _overwrite_tokens(x: torch.Tensor, ctx: torch.Tensor, start: int) -> torch.Tensor:
    """x (N, L, W) with positions start..start+n_ctx replaced by ctx ((n_ctx, W) or (N, n_ctx, W))."""
    ctx = ctx.to(x.dtype).expand(x.shape[0], -1, -1) if ctx.dim() == 2 else ctx.to(x.dtype)
    return torch.cat([x[:, :start], ctx, x[:, start + ctx.shape[1]:]], dim=1)
