"""CIA-Net: cross-modality interactive attention network (Zhou, Tan, Li, Zhao, Jiang, Yue,
Pattern Recognition 2025, article 111693; reference code TanSongBai/CIANet).

One CLIP (both towers) and three outputs per image, for image ``x`` with generation prompt ``p``::

    i = CLIP_image(x), t = CLIP_text(p)                   unnormalised embeddings (D = 512)
    s = exp(logit_scale)                                  CLIP's own logit scale (100 for OpenAI
                                                          weights, ~14.3 at random init)
    consistency  = s * cos(i, t)                          range [-s, s]
    a_k          = CLIP_text('The authenticity of the image is {d_k}'),
                   d = (bad, poor, fair, good, excellent)
    authenticity = sum_k k * softmax_k(s * cos(i, a_k))   range [1, 5]
    quality      = ReLU(W2 ReLU(W1 [CIA(i, t)] + b1) + b2) range [0, inf): raw MOS scale

The scale ``s`` is CLIP's ``logit_scale`` parameter, not a constant: the reference keeps
``self.logit_scale = clip.logit_scale`` and uses ``logit_scale.exp()``; it is frozen with the
rest of CLIP in stage 1 and trainable in stage 2 (the reference's ``freeze_model(opt=4)`` sets
``requires_grad`` on every CLIP parameter, the logit scale included). It is not clamped.
Here it is ``backbone.model.logit_scale`` and trainable by default, so freezing the prefix
``backbone.`` freezes it with CLIP.

CIA layer (:class:`CIALayer`): six pre-LayerNorm ``nn.MultiheadAttention`` blocks (d_model =
CLIP embed dim, 8 heads, 4x QuickGELU MLP) on the UNnormalised embeddings::

    I = SelfAttn_img(i),   T = SelfAttn_txt(t)
    v_t2i = I + Attn(q=LN(T), k=v=LN(I));  v_t2i = v_t2i + MLP(LN(v_t2i))   (residual on the
    v_i2t = T + Attn(q=LN(I), k=v=LN(T));  v_i2t = v_i2t + MLP(LN(v_i2t))    key/value input)
    quality head input = [SelfAttn(v_t2i), SelfAttn(v_i2t)]                  (2 D)

As published, each embedding enters as a sequence of length ONE per sample, shape (1, B, D)
with ``batch_first=False``: the softmax runs over a single key, so samples never attend to each
other, and an attention output is ``out_proj(v_proj(LN(kv)))`` whatever the query. Consequence
(faithful, and worth knowing): the "text->image" branch depends on the image embedding only
and the "image->text" branch on the prompt embedding only; the two modalities meet in the
final MLP. A variant that attends over token sequences is not implemented.

Preprocessing (in ``forward``, so images of any size can be scored): the shorter side is
resized to the CLIP input size (224; bilinear, antialiased) and, for non-square images, the
centre square is cut (the reference resizes the shorter side to 224 and does not crop, which
works for square images only; it also leaves images with a side below 224 unresized, which
CLIP cannot take: here they are upsampled). Images already at the input size pass untouched,
so a dataset may do the same resize / crop on PIL images (pyiqa augment ``resize: 224,
center_crop: 224``, which batching needs anyway). Then CLIP mean / std (by the backbone).
Horizontal flips in training are the dataset's job (augment ``hflip``).

Work done per batch (same scores, nothing wasted): the five authenticity texts do not depend on
the input, so their embeddings are computed once and kept (:class:`~.feature_cache.WeightsCache`)
until a weight of the text tower changes (optimiser step, ``load_state_dict``, ``.to()`` /
``set_precision``) or a mode changes (train / eval, grad / no grad / inference, autocast); while
autograd records through the text tower (training stage 2) they are recomputed in the graph at
every call, as before. Each distinct prompt of a batch is encoded once. A network with ``output``
set computes only that output: ``authenticity`` runs the image tower and the (cached)
authenticity texts, no prompt encoding, no CIA layer; ``consistency`` runs the image tower and
the prompts, no CIA layer, no authenticity texts; ``quality`` runs both towers, the CIA layer
and the head, no authenticity texts. ``output=None`` (training) computes all three.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from pyiqa.utils.registry import ARCH_REGISTRY

from ..prompt_args import PromptArg, prompts_for_batch
from .base import CLIPNetwork
from .backbone.feature_cache import WeightsCache

AUTHENTICITY_LEVELS = ('bad', 'poor', 'fair', 'good', 'excellent')
AUTHENTICITY_TEMPLATE = 'The authenticity of the image is {level}'
OUTPUT_NAMES = ('quality', 'authenticity', 'consistency')


def authenticity_texts() -> list:
    """The five authenticity texts, worst to best."""
    return [AUTHENTICITY_TEMPLATE.format(level=level) for level in AUTHENTICITY_LEVELS]


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), CLIP's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _mlp(d_model: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ('c_fc', nn.Linear(d_model, 4 * d_model)),
        ('gelu', QuickGELU()),
        ('c_proj', nn.Linear(4 * d_model, d_model)),
    ]))


class SelfAttentionBlock(nn.Module):
    """Pre-LN self-attention block (CLIP's residual block): x + Attn(LN(x)), then + MLP(LN(.)).

    Input / output: (L, B, D) sequences (``batch_first=False``).
    """

    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = _mlp(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class CrossAttentionBlock(nn.Module):
    """Pre-LN cross-attention block with the residual on the key / value input (as published):

        v = kv + Attn(LN_1(q), LN_2(kv), LN_2(kv));   v = v + MLP(LN_3(v))

    Inputs: q and kv, (L, B, D) each (same length: the residual adds the attention output,
    which has the query's length, to kv). Output: (L, B, D).
    """

    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = _mlp(d_model)
        self.ln_3 = nn.LayerNorm(d_model)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv_n = self.ln_2(kv)
        v = kv + self.attn(self.ln_1(q), kv_n, kv_n, need_weights=False)[0]
        return v + self.mlp(self.ln_3(v))


class CIALayer(nn.Module):
    """The cross-modality interactive attention layer (attribute names as in the reference).

    ``forward(img, txt)``: (L, B, D) image and text sequences -> (t2i, i2t), each (L, B, D):
    t2i is the text->image branch (query text, key/value and residual image), i2t the
    image->text branch.
    """

    def __init__(self, d_model: int = 512, n_head: int = 8):
        super().__init__()
        self.self_attention11 = SelfAttentionBlock(d_model, n_head)  # image, before
        self.self_attention21 = SelfAttentionBlock(d_model, n_head)  # text, before
        self.cross_attention1 = CrossAttentionBlock(d_model, n_head)  # text -> image
        self.cross_attention2 = CrossAttentionBlock(d_model, n_head)  # image -> text
        self.self_attention12 = SelfAttentionBlock(d_model, n_head)  # t2i, after
        self.self_attention22 = SelfAttentionBlock(d_model, n_head)  # i2t, after

    def forward(self, img: torch.Tensor, txt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        img = self.self_attention11(img)
        txt = self.self_attention21(txt)
        t2i = self.cross_attention1(txt, img)
        i2t = self.cross_attention2(img, txt)
        return self.self_attention12(t2i), self.self_attention22(i2t)


class QualityHead(nn.Module):
    """Linear(2D -> 256) ReLU Linear(256 -> 1) ReLU: quality >= 0 on the raw MOS scale."""

    def __init__(self, in_features: int = 1024, hidden: int = 256):
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(hidden, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


def _consistency(scale: torch.Tensor, img_n: torch.Tensor, txt_n: torch.Tensor) -> torch.Tensor:
    """s * cos from L2-normalised (B, D) embeddings."""
    return scale * (img_n * txt_n).sum(dim=-1)


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) -> (..., size, size): shorter side to ``size`` (bilinear, antialiased), then
    the centre square. Images already ``size`` x ``size`` are returned unchanged."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if min(h, w) != size:
        x = TF.resize(x, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(x, [size, size])


@ARCH_REGISTRY.register()
class CIANet(CLIPNetwork):
    """CIA-Net: visual quality, authenticity and image-prompt consistency (see module doc).

    Args:
        clip_model: open_clip model name (published: ``ViT-B-32-quickgelu``).
        (clip_pretrained, pretrained, pretrained_model_path / weights, precision, cache_dir:
            shared by the four architectures, see :mod:`pyiqa_agiqa.archs.base`.)
        n_head: heads of the CIA layer's attention (8); d_model is the CLIP embed dim.
        head_hidden: width of the quality head's hidden layer (256).
        output: None -> forward returns {output name: (B,)}; one of ``output_names`` ->
            forward returns that output as (B, 1) (what a pyiqa metric uses).

    Forward:
        x: (B, C, H, W) images in [0, 1], any size (resized here, see module doc).
        prompt: the generation prompt, one str per image. Required for every output (a
            missing, empty or miscounted prompt raises :class:`~pyiqa_agiqa.prompt_args.PromptError`),
            ``authenticity`` included: CIA-Net is text-conditioned and all its metrics are called
            alike, so a bad call fails the same way whichever output is asked. The authenticity
            score does not read the prompt, though: with ``output='authenticity'`` it is checked,
            not encoded (so no truncation warning either).
        Returns {'quality': (B,) >= 0, 'authenticity': (B,) in [1, 5],
        'consistency': (B,) in [-s, s], s = exp(logit_scale)} or one of them as (B, 1); with
        ``output`` set only that output is computed (see the module doc).
    """

    network_options = ('clip_model', 'n_head', 'head_hidden')
    runtime_options = ('output',)
    output_names = OUTPUT_NAMES
    # outputs computed by parts that plain CLIP weights do not provide (the CIA layer and head)
    requires_fine_tuned = ('quality',)

    def __init__(self, clip_model: str = 'ViT-B-32-quickgelu', clip_pretrained: Optional[str] = 'openai',
                 pretrained: bool = True, pretrained_model_path: Optional[str] = None,
                 weights: Optional[str] = None, precision: str = 'fp32', n_head: int = 8,
                 head_hidden: int = 256, cache_dir: Optional[str] = None, output: Optional[str] = None):
        super().__init__(clip_model, clip_pretrained, pretrained, pretrained_model_path, weights, cache_dir,
                         dict(n_head=n_head, head_hidden=head_hidden), output)
        d_model = self.backbone.embed_dim
        self.cia_layer = CIALayer(d_model, n_head)
        self.head = QualityHead(2 * d_model, head_hidden)
        self.register_buffer('levels', torch.arange(1, len(AUTHENTICITY_LEVELS) + 1, dtype=torch.float32),
                             persistent=False)
        self._fixed_texts = WeightsCache()  # the authenticity text embeddings
        self.load_and_set_precision(precision)

    # ----- pieces, each usable on its own -----
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, S, S), S the CLIP input size (see module doc)."""
        return resize_center_crop(x, self.backbone.image_size)

    def image_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, D) unnormalised image embeddings."""
        return self.backbone.encode_image(self.preprocess(x))

    def prompt_texts(self, prompts: Sequence[str]) -> List[str]:
        """The texts the text tower encodes for ``prompts``: the prompts themselves, none for
        the authenticity output (which never reads them)."""
        return [] if self.output == 'authenticity' else list(prompts)

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B,) prompts -> (B, D) unnormalised embeddings (each distinct prompt encoded once)."""
        return self.backbone.encode_text(prompts, warn_as='CIA-Net')

    def authenticity_embeddings(self) -> torch.Tensor:
        """(5, D) unnormalised embeddings of the authenticity texts, computed once and reused
        while the text tower and the modes (train / eval, grad, autocast) are unchanged (see
        the module doc)."""
        backbone = self.backbone
        return self._fixed_texts.get('authenticity', backbone.text_parameters(),
                                     lambda: backbone.encode_text(authenticity_texts()),
                                     self.training)

    def embed(self, x: torch.Tensor, prompts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unnormalised embeddings: images (B, D), prompts (B, D), authenticity texts (5, D)."""
        return self.image_embeddings(x), self.prompt_embeddings(prompts), self.authenticity_embeddings()

    def quality_from_embeddings(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        """(B, D) unnormalised image / prompt embeddings -> (B,) quality. Each sample is a
        length-one sequence: (1, B, D), so the attention never mixes samples."""
        t2i, i2t = self.cia_layer(img[None], txt[None])
        return self.head(torch.cat([t2i, i2t], dim=-1)[0])[:, 0]

    def consistency_from_embeddings(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        """(B, D) unnormalised image / prompt embeddings -> (B,) s * cos(img, txt)."""
        return _consistency(self.backbone.logit_scale(), F.normalize(img, dim=-1), F.normalize(txt, dim=-1))

    def authenticity_from_embeddings(self, img: torch.Tensor, auth: torch.Tensor) -> torch.Tensor:
        """(B, D) unnormalised image embeddings, (5, D) authenticity texts -> (B,) in [1, 5]."""
        return self._authenticity(self.backbone.logit_scale(), F.normalize(img, dim=-1), F.normalize(auth, dim=-1))

    def _authenticity(self, scale: torch.Tensor, img_n: torch.Tensor, auth_n: torch.Tensor) -> torch.Tensor:
        probs = (scale * img_n @ auth_n.t()).softmax(dim=-1)
        return (probs * self.levels.to(probs.dtype)).sum(dim=-1)

    def outputs_from_embeddings(self, img: torch.Tensor, txt: torch.Tensor, auth: torch.Tensor) -> dict:
        """The three outputs ((B,) each) from :meth:`embed`'s embeddings (each embedding is
        normalised once for both similarities)."""
        scale = self.backbone.logit_scale()
        img_n, txt_n, auth_n = (F.normalize(t, dim=-1) for t in (img, txt, auth))
        consistency = _consistency(scale, img_n, txt_n)
        authenticity = self._authenticity(scale, img_n, auth_n)
        quality = self.quality_from_embeddings(img, txt)
        return {'quality': quality, 'authenticity': authenticity, 'consistency': consistency}

    def forward(self, x: torch.Tensor, prompt: PromptArg = None):
        prompts = prompts_for_batch(prompt, x.shape[0], 'CIA-Net')
        if self.output is None:
            return self.outputs_from_embeddings(*self.embed(x, prompts))
        img = self.image_embeddings(x)
        if self.output == 'authenticity':  # the prompt is checked above, never encoded
            out = self.authenticity_from_embeddings(img, self.authenticity_embeddings())
        elif self.output == 'consistency':
            out = self.consistency_from_embeddings(img, self.prompt_embeddings(prompts))
        else:
            out = self.quality_from_embeddings(img, self.prompt_embeddings(prompts))
        return out[:, None]
