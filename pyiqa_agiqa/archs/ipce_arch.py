"""IPCE: AIGC image quality as image-prompt correspondence (Peng et al., CVPR 2024 workshops;
first place of the NTIRE 2024 AIGC quality challenge, image track).

Quality is read off CLIP as "how well does this image match its prompt" on a five-level
scale. For prompt ``p`` the five texts are ``a photo that {c} matches '{p}'`` with c in
(badly, poorly, fairly, well, perfectly). Views of each image: patches of the vision tower's
input size (224) cut on a stride grid (random ones in training, a fixed spread at test) plus
the whole image resized to 224. The score (range [0, 5], higher is better)::

    logits_v = s * cos(view_v, text_k)            s = exp(logit_scale), 100 for OpenAI CLIP
    p_patch  = softmax(mean over patches of logits_v)
    p_whole  = softmax(logits_whole)
    q        = sum_k k * (p_patch + p_whole)_k / 2    (k = 1..5)
    score    = (q - 1) / 4 * 5

No head: both CLIP towers are fine-tuned; the logit scale stays frozen.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from pyiqa.utils.registry import ARCH_REGISTRY

from ..prompt_args import PromptArg, prompts_for_batch
from .base import CLIPNetwork

LEVELS = ('badly', 'poorly', 'fairly', 'well', 'perfectly')
TEMPLATE = "a photo that {level} matches '{prompt}'"


def correspondence_texts(prompt: str) -> list:
    """The five level texts of one prompt, worst to best."""
    return [TEMPLATE.format(level=level, prompt=prompt) for level in LEVELS]


class IPCEViews:
    """Cuts the IPCE views of images in [0, 1].

    Args:
        patch_size: side of the patches and of the whole-image view (the CLIP input size).
        min_side: images with a side below it are resized so the shorter side equals it
            (bilinear; the longer side follows the aspect ratio, as torchvision's Resize).
        stride: stride of the patch grid; ``large_stride`` when a side is >= ``large_side``.
        n_train: patches drawn uniformly at random with replacement in training.
        n_test: patches at indices ``step * i`` (``step = n_patches // n_test``) at test.

    Patches are enumerated row-major over the stride grid (index = row * n_cols + col).
    Output: (B, n + 1, 3, patch_size, patch_size), the whole-image view last.
    """

    def __init__(self, patch_size: int = 224, min_side: int = 512, stride: int = 32,
                 large_stride: int = 48, large_side: int = 1024, n_train: int = 8, n_test: int = 15):
        if min_side < patch_size:
            raise ValueError(f'min_side ({min_side}) must be >= patch_size ({patch_size})')
        self.patch_size, self.min_side = patch_size, min_side
        self.stride, self.large_stride, self.large_side = stride, large_stride, large_side
        self.n_train, self.n_test = n_train, n_test

    def resize(self, img):
        """Resize a PIL image or a (..., H, W) tensor when a side is below ``min_side``."""
        w, h = img.size if isinstance(img, Image.Image) else (img.shape[-1], img.shape[-2])
        if min(h, w) >= self.min_side:
            return img
        if isinstance(img, Image.Image):
            return TF.resize(img, self.min_side, interpolation=TF.InterpolationMode.BILINEAR)
        return TF.resize(img, self.min_side, interpolation=TF.InterpolationMode.BILINEAR, antialias=False)

    def grid(self, height: int, width: int):
        """(n_rows, n_cols, stride) of the patch grid of a (resized) image."""
        stride = self.large_stride if max(height, width) >= self.large_side else self.stride
        n_rows = (height - self.patch_size) // stride + 1
        n_cols = (width - self.patch_size) // stride + 1
        return n_rows, n_cols, stride

    def patch_indices(self, n_patches: int, train: bool, batch_size: int,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B, n) indices into the row-major patch grid."""
        if train:
            return torch.randint(0, n_patches, (batch_size, self.n_train), generator=generator)
        step = n_patches // self.n_test
        return (torch.arange(self.n_test) * step).expand(batch_size, -1)

    def __call__(self, images: torch.Tensor, train: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B, C, H, W) or (C, H, W) in [0, 1] -> (B, n + 1, C, P, P) (or (n + 1, C, P, P)).

        Cut on the images' device by one gather from the stride grid (a view, nothing is
        copied before the gather) into the output, whose last slot then receives the whole
        image; the indices are drawn as :meth:`patch_indices` says (on the CPU generator, so
        training is reproducible), then moved to the device.
        """
        single = images.dim() == 3
        x = self.resize(images[None] if single else images)
        b, c, h, w = x.shape
        n_rows, n_cols, stride = self.grid(h, w)
        idx = self.patch_indices(n_rows * n_cols, train, b, generator).to(x.device)
        p = self.patch_size
        windows = x.unfold(2, p, stride).unfold(3, p, stride).permute(0, 2, 3, 1, 4, 5)  # B, rows, cols, C, P, P
        idx = torch.cat([idx, idx[:, :1]], dim=1)  # the extra slot is overwritten by the whole image
        views = windows[torch.arange(b, device=x.device)[:, None], idx // n_cols, idx % n_cols]
        views[:, -1] = F.interpolate(x, size=(p, p), mode='bilinear', align_corners=False)
        return views[0] if single else views


def ipce_score(patch_logits: torch.Tensor, whole_logits: torch.Tensor) -> torch.Tensor:
    """IPCE score from level logits.

    Args:
        patch_logits: (B, n_patches, 5) scaled cosine logits of the patch views.
        whole_logits: (B, 5) logits of the whole-image view.
    Returns:
        (B,) scores in [0, 5].
    """
    p = (patch_logits.mean(dim=1).softmax(dim=-1) + whole_logits.softmax(dim=-1)) / 2
    levels = torch.arange(1, len(LEVELS) + 1, dtype=p.dtype, device=p.device)
    q = (p * levels).sum(dim=-1)
    return (q - 1) / 4 * 5


@ARCH_REGISTRY.register()
class IPCE(CLIPNetwork):
    """IPCE image-prompt correspondence network.

    Args:
        clip_model: open_clip model name; ``ViT-B-32-quickgelu`` (AGIQA-1K/3K, AIGCIQA2023)
            or ``ViT-L-14-quickgelu`` (AIGIQA-20K).
        (clip_pretrained, pretrained, pretrained_model_path / weights, precision, cache_dir:
            shared by the four architectures, see :mod:`pyiqa_agiqa.archs.base`.)
        min_side: 512 (768 for AIGIQA-20K); see :class:`IPCEViews` for the view options.
        patch_size: defaults to the CLIP input size.

    Forward:
        x: (B, C, H, W) images in [0, 1] (views are cut here: random in training mode,
            fixed at eval), or (B, V, C, P, P) views already cut (whole-image view last).
        prompt: one prompt (str) per image.
        Returns (B, 1) scores in [0, 5].
    """

    network_options = ('clip_model', 'min_side', 'patch_size', 'stride', 'large_stride', 'large_side',
                       'n_train_patches', 'n_test_patches')
    runtime_options = ()
    output_names = ('score',)
    requires_fine_tuned = ()  # plain CLIP already scores image-prompt correspondence

    def __init__(self, clip_model: str = 'ViT-B-32-quickgelu', clip_pretrained: Optional[str] = 'openai',
                 pretrained: bool = True, pretrained_model_path: Optional[str] = None,
                 weights: Optional[str] = None, precision: str = 'fp32',
                 min_side: int = 512, patch_size: Optional[int] = None, stride: int = 32,
                 large_stride: int = 48, large_side: int = 1024, n_train_patches: int = 8,
                 n_test_patches: int = 15, cache_dir: Optional[str] = None):
        super().__init__(clip_model, clip_pretrained, pretrained, pretrained_model_path, weights, cache_dir,
                         dict(min_side=min_side, patch_size=patch_size, stride=stride, large_stride=large_stride,
                              large_side=large_side, n_train_patches=n_train_patches, n_test_patches=n_test_patches))
        self.backbone.model.logit_scale.requires_grad_(False)
        self.views = IPCEViews(patch_size or self.backbone.image_size, min_side, stride, large_stride,
                               large_side, n_train_patches, n_test_patches)
        self.load_and_set_precision(precision)

    def prompt_texts(self, prompts: Sequence[str]) -> List[str]:
        """The texts the text tower encodes for ``prompts``: 5 level texts each, (5 B,)."""
        return [t for p in prompts for t in correspondence_texts(p)]

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B,) prompts -> (B, 5, D) L2-normalised level-text embeddings; the five texts of
        each distinct prompt go through the text tower once (``CLIPBackbone.encode_text``)."""
        feats = self.backbone.encode_text(self.prompt_texts(prompts), warn_as='IPCE')
        return F.normalize(feats, dim=-1).view(len(prompts), len(LEVELS), -1)

    def normalize_views(self, views: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """CLIP normalisation of (..., C, P, P) views, the values of ``backbone.normalize``;
        ``inplace=True`` (views this network cut itself) reuses their memory when it can."""
        mean, std = self.backbone.mean, self.backbone.std
        if views.shape[-3] == 1:
            views, inplace = views.expand(*views.shape[:-3], 3, *views.shape[-2:]), False
        if inplace and torch.result_type(views, mean) == views.dtype:
            return views.sub_(mean).div_(std)
        return torch.sub(views, mean).div_(std)

    def level_logits(self, views: torch.Tensor, text_feats: torch.Tensor, normalize_input: bool = True) -> torch.Tensor:
        """(B, V, C, P, P) views and (B, 5, D) texts -> (B, V, 5) scaled cosine logits."""
        b, v = views.shape[:2]
        img = self.backbone.encode_image(views.flatten(0, 1), normalize_input=normalize_input)
        img = F.normalize(img, dim=-1).view(b, v, -1)
        return self.backbone.logit_scale() * torch.einsum('bvd,bkd->bvk', img, text_feats)

    def forward(self, x: torch.Tensor, prompt: PromptArg = None) -> torch.Tensor:
        prompts = prompts_for_batch(prompt, x.shape[0], 'IPCE')
        if x.dim() == 5:
            views = self.normalize_views(x)
        else:  # the views are ours: normalised in place
            views = self.normalize_views(self.views(x, train=self.training), inplace=True)
        logits = self.level_logits(views, self.encode_prompts(prompts), normalize_input=False)
        return ipce_score(logits[:, :-1], logits[:, -1])[:, None]
