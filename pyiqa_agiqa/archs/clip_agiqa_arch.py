"""CLIP-AGIQA: CLIP regression with learnable quality prompts (Tang, Wang, Peng, Dong,
ICPR 2024, arXiv 2408.15098; reference code wzczc/CLIP-AGIQA, a CoOp / Dassl fork).

A frozen CLIP (OpenAI ViT-B/16) and a CoOp prompt learner: 16 learnable context vectors
(N(0, 0.02), width of the text tower) shared by six quality classes, with the class word at
the end. The texts are CoOp's ``"X X ... X {c}."`` (16 placeholders, a space, the class
word and a period) for c in (terrible, bad, poor, average, good, perfect); the placeholder
token embeddings are replaced by the context vectors before the positional embedding. The
head regresses the raw MOS::

    v   = img / |img|                      (D,)   image embedding, D = 512 for ViT-B/16
    t_k = txt_k / |txt_k|, k = 1..6        (6, D) text embeddings of the six prompts
    f   = [v, t_1, ..., t_6]               (7 D,) = 3584 for ViT-B/16
    q   = W2 relu(W1 dropout(f) + b1) -> dropout -> + b2      (W1: 512 x 7D, W2: 1 x 512)

Trainable: the context vectors (``prompt_learner.ctx``) and the head (``head.*``); every
CLIP parameter has ``requires_grad=False``. The text part of ``f`` does not depend on the
image, so samples of a batch never interact.

Images (x in [0, 1], any size):

- eval mode: the published test transform, shorter side resized to the CLIP input size
  (224, bicubic, antialiased, clamped to [0, 1] as PIL's 8-bit output is) and a centre crop
  of 224 x 224. A non-square image therefore loses the two ends of its longer side, as in
  the reference (Dassl ``Resize(224)`` + ``CenterCrop(224)``). An input already 224 x 224
  passes unchanged, so a dataset that does this resize on PIL images (the option files do)
  gives exactly the reference's test input.
- training mode (``self.training`` and ``train_random_resized_crop``): pyiqa's augment keys
  have no RandomResizedCrop, so the arch draws one per sample (torchvision's
  ``RandomResizedCrop.get_params`` with scale (0.08, 1), ratio (3/4, 4/3), global torch RNG)
  and resizes the crop to 224 (bicubic, antialiased). The horizontal flip of the recipe is
  the dataset's ``hflip`` key. The crop is drawn on the image the dataset delivers; the
  option files deliver the images at a common square size (1024, upsampling the smaller
  generators' 256 / 512 px images), so that a crop covers the same part of the picture as on
  the original and is never taken from a downscaled copy.

Deviations from the reference, on purpose: fp32 throughout (CoOp's default ``PREC: fp16``
keeps CLIP and the context vectors in half precision; the head was fp32 there too); the
CLIP backbone stays in eval mode while the network trains (no effect for ViT CLIP, which has
no dropout or batch norm; for ResNet CLIPs it keeps the frozen batch-norm statistics frozen).
The prompt argument of ``forward`` is accepted and ignored: CLIP-AGIQA does not read the
generation prompt, but every metric of the plugin is called the same way.

Work done per batch: the text part of ``f`` depends on the weights only. Outside training
(eval mode, or no autograd recording through the context vectors) it is computed once and
kept (:class:`~.feature_cache.WeightsCache`) until the context vectors or the text tower change
(optimiser step, ``load_state_dict``, ``.to()`` / ``set_precision``) or a mode changes (train /
eval, grad / no grad / inference, autocast), so scoring a batch runs the image tower and the
head only. In training the text features are recomputed in the graph at every step, as
published.

Option ``aux_prompts`` (off by default; NOT in the released code): the paper mentions
"multiple quality-related auxiliary prompts" without a released implementation. Here each
name in ``aux_prompts`` (e.g. ``['authenticity', 'correspondence']``) adds a prompt set with
its own 16 learnable context vectors and the six texts ``"X ... X {c} {name}."``; the
L2-normalised embeddings of every set are concatenated after the quality set, so the head
input grows to ``(1 + 6 (1 + n_aux)) D``. The output is still the one quality score.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torch import nn

from pyiqa.utils.registry import ARCH_REGISTRY

from ..prompt_args import PromptArg
from .backbone.clip import CLIPBackbone
from .base import CLIPNetwork
from .backbone.feature_cache import WeightsCache

LEVELS = ('terrible', 'bad', 'poor', 'average', 'good', 'perfect')
# Class thresholds of the reference code (classes only; the MSE loss does not use them).
LEVEL_THRESHOLDS = {'agiqa3k': (1.231, 2.266, 2.749, 3.092, 3.456), 'aigciqa2023': (30, 40, 50, 60, 70)}


def class_texts(levels: Sequence[str] = LEVELS, dimension: Optional[str] = None) -> list:
    """The class part of each CoOp prompt: ``'{c}.'`` (``'{c} {dimension}.'`` for an aux set).

    CoOp writes the prompt ``prefix + ' ' + name + '.'``; the prefix is the placeholders,
    which :meth:`CLIPBackbone.placeholder_tokens` prepends with a space.
    """
    return [f'{c} {dimension}.' if dimension else f'{c}.' for c in levels]


class CoOpPromptLearner(nn.Module):
    """Learnable CoOp contexts for one or more prompt sets of ``len(levels)`` classes.

    Args:
        backbone: the CLIP backbone (used here only to tokenise and for the text width).
        n_ctx: context vectors per set (placeholders ``X`` after the start token).
        levels: class words, worst to best.
        aux_dimensions: names of the auxiliary sets (empty: the published single set).
        ctx_std: std of the normal initialisation.

    Parameters: ``ctx`` (n_ctx, width), shared by the classes of the quality set (CoOp's
    "generic context"), and ``aux_ctx`` (n_aux, n_ctx, width) when there are aux sets.
    Buffer ``tokens`` (n_sets * n_levels, context_length), not saved in checkpoints.
    """

    def __init__(self, backbone: CLIPBackbone, n_ctx: int = 16, levels: Sequence[str] = LEVELS,
                 aux_dimensions: Sequence[str] = (), ctx_std: float = 0.02):
        super().__init__()
        width = backbone.model.ln_final.weight.shape[0]
        self.n_ctx, self.levels, self.aux_dimensions = int(n_ctx), tuple(levels), tuple(aux_dimensions)
        self.texts = class_texts(self.levels) + [t for d in self.aux_dimensions for t in class_texts(self.levels, d)]
        lengths = backbone.count_tokens([' '.join(['X'] * self.n_ctx + [t]) for t in self.texts])
        if max(lengths) > backbone.context_length:
            raise ValueError(f'CLIP-AGIQA prompts of {max(lengths)} tokens exceed the text context '
                             f'({backbone.context_length}); use fewer context vectors')
        self.register_buffer('tokens', backbone.placeholder_tokens(self.n_ctx, self.texts), persistent=False)
        self.ctx = nn.Parameter(torch.empty(self.n_ctx, width).normal_(0.0, ctx_std))
        if self.aux_dimensions:
            self.aux_ctx = nn.Parameter(torch.empty(len(self.aux_dimensions), self.n_ctx, width).normal_(0.0, ctx_std))
        else:
            self.aux_ctx = None

    @property
    def n_texts(self) -> int:
        return len(self.texts)

    def context(self) -> torch.Tensor:
        """The context of the text tower's input: (n_ctx, width) for one set, or
        (n_texts, n_ctx, width) with each set's context repeated for its classes."""
        if self.aux_ctx is None:
            return self.ctx
        sets = torch.cat([self.ctx[None], self.aux_ctx], dim=0)
        return sets.repeat_interleave(len(self.levels), dim=0)

    def forward(self, backbone: CLIPBackbone) -> torch.Tensor:
        """(n_texts, embed_dim) unnormalised text embeddings of the prompts."""
        return backbone.encode_text_prompted(self.tokens, [self.context()])


@ARCH_REGISTRY.register()
class CLIPAGIQA(CLIPNetwork):
    """CLIP-AGIQA quality regressor (see the module docstring for the formula).

    Args:
        clip_model: open_clip model name; ``ViT-B-16-quickgelu`` (OpenAI ViT-B/16) as published.
        (clip_pretrained, pretrained, pretrained_model_path / weights, precision, cache_dir:
            shared by the four architectures, see :mod:`pyiqa_agiqa.archs.base`.)
        output: None -> forward returns ``{'quality': (B,)}``; ``'quality'`` -> (B, 1).
        n_ctx: learnable context vectors (16).
        ctx_std: std of their normal initialisation (0.02).
        levels: the class words (terrible, bad, poor, average, good, perfect).
        hidden: width of the head's hidden layer (512).
        dropout: dropout probability of both head dropouts (0.5).
        train_random_resized_crop: draw a RandomResizedCrop per sample in training mode.
        crop_scale, crop_ratio: its area and aspect ranges ((0.08, 1), (3/4, 4/3)).
        aux_prompts: names of auxiliary prompt sets (not in the released code; see the
            module docstring); None / empty = the published model.

    Forward:
        x: (B, C, H, W) images in [0, 1], any size (C = 1 is repeated to RGB).
        prompt: accepted and ignored (also None).
        Returns {'quality': (B,)} or (B, 1) (option ``output``): the predicted MOS on the raw
        scale of the training labels (about 0-5 for AGIQA-3K, 0-100 for AIGCIQA2023); the
        range is not enforced.
    """

    network_options = ('clip_model', 'n_ctx', 'ctx_std', 'levels', 'hidden', 'dropout', 'train_random_resized_crop',
                       'crop_scale', 'crop_ratio', 'aux_prompts')
    runtime_options = ('output',)
    output_names = ('quality',)
    requires_fine_tuned = ('quality',)  # learned context vectors and head

    def __init__(self, clip_model: str = 'ViT-B-16-quickgelu', clip_pretrained: Optional[str] = 'openai',
                 pretrained: bool = True, pretrained_model_path: Optional[str] = None,
                 weights: Optional[str] = None, precision: str = 'fp32',
                 cache_dir: Optional[str] = None, output: Optional[str] = None, n_ctx: int = 16,
                 ctx_std: float = 0.02, levels: Sequence[str] = LEVELS, hidden: int = 512,
                 dropout: float = 0.5, train_random_resized_crop: bool = True,
                 crop_scale: Sequence[float] = (0.08, 1.0), crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
                 aux_prompts: Optional[Sequence[str]] = None):
        super().__init__(clip_model, clip_pretrained, pretrained, pretrained_model_path, weights, cache_dir,
                         dict(n_ctx=n_ctx, ctx_std=ctx_std, levels=levels, hidden=hidden, dropout=dropout,
                              train_random_resized_crop=train_random_resized_crop, crop_scale=crop_scale,
                              crop_ratio=crop_ratio, aux_prompts=aux_prompts), output)
        if isinstance(aux_prompts, str):
            aux_prompts = [aux_prompts]
        self.backbone.requires_grad_(False)
        self.prompt_learner = CoOpPromptLearner(self.backbone, n_ctx, levels, tuple(aux_prompts or ()), ctx_std)
        dim = self.backbone.embed_dim
        self.head_in = (1 + self.prompt_learner.n_texts) * dim
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.head_in, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.image_size = self.backbone.image_size
        self.train_random_resized_crop = bool(train_random_resized_crop)
        self.crop_scale, self.crop_ratio = [float(v) for v in crop_scale], [float(v) for v in crop_ratio]
        self.backbone.eval()
        self._text_cache = WeightsCache()  # the normalised class-prompt features
        self.load_and_set_precision(precision)

    def train(self, mode: bool = True):
        """Train mode for the prompt learner and the head; the frozen CLIP stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    # ----- images -----
    def resize_center_crop(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, S, S): shorter side to S (bicubic, antialiased, clamped to
        [0, 1]) and a centre crop; S = the CLIP input size. S x S inputs pass unchanged."""
        s = self.image_size
        if min(x.shape[-2:]) != s:
            x = TF.resize(x, s, interpolation=T.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)
        if tuple(x.shape[-2:]) != (s, s):
            x = TF.center_crop(x, [s, s])
        return x

    def random_resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, S, S): an independent RandomResizedCrop for each sample."""
        s = self.image_size
        crops = []
        for img in x:
            top, left, h, w = T.RandomResizedCrop.get_params(img, self.crop_scale, self.crop_ratio)
            crops.append(TF.resized_crop(img, top, left, h, w, [s, s],
                                         interpolation=T.InterpolationMode.BICUBIC, antialias=True))
        return torch.stack(crops).clamp(0, 1)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.train_random_resized_crop:
            return self.random_resized_crop(x)
        return self.resize_center_crop(x)

    # ----- features and score -----
    def text_features(self) -> torch.Tensor:
        """(n_texts, D) L2-normalised prompt embeddings (6 for the published model); computed
        once and reused while the weights and the modes (train / eval, grad, autocast) are
        unchanged, never cached while autograd records (see the module docstring)."""
        backbone, learner = self.backbone, self.prompt_learner
        return self._text_cache.get('classes', [*learner.parameters(), *backbone.text_parameters()],
                                    lambda: F.normalize(learner(backbone), dim=-1),
                                    self.training)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, D) L2-normalised embeddings of the preprocessed images."""
        return F.normalize(self.backbone.encode_image(self.preprocess(x)), dim=-1)

    def head_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, (1 + n_texts) D): the image embedding followed by the text embeddings."""
        img = self.image_features(x)
        txt = self.text_features().flatten().to(img.dtype)
        return torch.cat([img, txt.expand(img.shape[0], -1)], dim=1)

    def forward(self, x: torch.Tensor, prompt: PromptArg = None):
        if x.dim() != 4:
            raise ValueError(f'CLIPAGIQA expects (B, C, H, W) images, got shape {tuple(x.shape)}')
        quality = self.head(self.head_input(x))[:, 0]
        if self.output is None:
            return {'quality': quality}
        return quality[:, None]
