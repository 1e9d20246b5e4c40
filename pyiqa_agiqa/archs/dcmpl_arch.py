"""DCMPL: deep cross-modal prompt learning for AI-generated image quality (Lu et al., "A Deep
Cross-Modal Prompt Learning Approach for AI-Generated Image Quality Assessment", published as
DCMPLN, Displays 91 (2025) 103208).

DCMPL has no public code. This is a RECONSTRUCTION on top of its base, Fu et al.'s
CLIP-AGIQA (IEEE SPL 2024, code JunFu1995/CLIP-AGIQA), whose behaviour is reproduced exactly
(facts taken from that code are marked [base]); the two modules DCMPL adds are built as the
method card suggests and can be switched off, which gives back the base (marked [DCMPL,
assumed]).

Overview (ViT-B/32 numbers; every width and layer count is read off the backbone)::

    frozen CLIP ViT-B/32; two sets of deep prompts, n_ctx = 8 tokens each, init N(0, 0.02):
      main  (quality):   text T_l (8 x 512), l = 0..11; visual V_l (8 x 768), l = 0..11
      aux   (alignment): text A_l (8 x 512), l = 0..11; visual U_l (8 x 768), l = 0..11
    l = 0 is the input (text: token embeddings of 'X X X X X X X X ...', before the positional
    embedding; vision: 8 tokens appended after CLS + patches, before ln_pre); l = 1..11 replace
    those tokens at the input of block l (CLIPBackbone.encode_text_prompted /
    encode_image_prompted).

    coupling [base]:   V'_l = Linear_l([V_l || U_l])        (1536 -> 768, 12 linears)
                       the main visual prompts are conditioned on the auxiliary VISUAL prompt
                       PARAMETERS (not on text prompts, not MaPLe's text->vision projection)
    MPA [DCMPL]:       (T*_l, V*_l) = MPA_l(T_l, V'_l)        (12 modules, see PromptAttention)
    image embedding:   f_q = Adapter(E_img(x; V*)),  f_a = E_img(x; U)
    text embeddings:   t_good, t_bad = E_txt('X X X X X X X X good photo.' / '... bad photo.'; T*)
                       t_al, t_mis = E_txt('X.. aligned photo.' / 'X.. misaligned photo.'; A)
    quality   = softmax(s * [cos(f_q, t_good), cos(f_q, t_bad)])[0]        in [0, 1]
    alignment = softmax(s * [cos(f_a, t_al), cos(f_a, t_mis)])[0]          in [0, 1]

``s`` is CLIP's own ``exp(logit_scale)`` [base: ``self.logit_scale.exp()``], frozen: 100 with
OpenAI weights (about 14.3 at random initialisation). Which image embedding each score uses:
quality uses the MAIN prompted pass (visual prompts V*, then the Image Adapter); alignment
uses the AUXILIARY prompted pass (visual prompts U, no adapter). Cost: the image tower runs
TWICE per image (patch) when both outputs are computed (training; ``output=None``) and ONCE
when only quality is asked (``output='quality'``, the ``dcmpl`` metric): the main prompts
depend on the auxiliary prompt parameters, not on the auxiliary pass, so it can be skipped.
The text tower runs on the two texts of each computed task, independently of the images:
once per forward call while autograd records (training); otherwise (eval / no_grad) these
class-text features and the prompts after coupling and MPA are cached until a weight they
depend on changes (:meth:`DCMPL.class_prompts`). The main loss also trains the auxiliary VISUAL prompts through
the coupling (no detach, as the base); the auxiliary text prompts learn from the alignment
loss only. ``use_aux=False`` is the base's ``use_aux = 0`` branch (no auxiliary prompts, no
coupling, main visual prompts used directly, quality only): for data without alignment labels.
The generation prompt of the image is not used (accepted, and checked if given).

Trainable: the prompts, the coupling linears, MPA and the adapter; every CLIP parameter
(logit scale included) is frozen [base: only ``prompt_learner*`` parameters train]. With
ViT-B/32: prompts 245,760 + coupling 14,164,992 (the base: 14.4 M) + MPA 40,971,264
(12 x 3,414,272) + adapter 131,072 = 55,513,088 trainable parameters.

DCMPL additions [assumed; each is an option, defaults = the method card]:

- MPA (``mpa=True``, ``mpa_heads=8``, ``mpa_dim=None`` = text width): per prompt layer l,
  text and visual prompt tokens of the MAIN task are projected to a common width, each
  modality attends to the other (multi-head cross-attention, text queries -> visual
  keys/values and visual queries -> text keys/values, computed from the same inputs), the
  results are projected back to each width and added (residual). Applied after the coupling,
  so the auxiliary knowledge reaches the main text prompts through the coupled visual prompts.
  The auxiliary prompts are used as they are. If the towers had different depths, layers are
  paired by index up to the shallower one.
- Image Adapter (``adapter=True``, ``adapter_reduction=4``, ``adapter_ratio=0.2``): CLIP-Adapter
  bottleneck ``A(f) = ReLU(W2 ReLU(W1 f))`` (no biases, D -> D/4 -> D) on the main-pass image
  embedding (after CLIP's projection, before L2 normalisation), fused as
  ``0.2 * A(f) + 0.8 * f``. The alignment pass has no adapter.
- Default initialisation of PyTorch for both (no zero init): the untrained network is not
  the base network.

Preprocessing [base]: images in [0, 1] are normalised with the ImageNet mean / std
(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), NOT CLIP's (``normalization='imagenet'``;
``'clip'`` gives CLIP's); the arch does it itself and calls the backbone with
``normalize_input=False``. Training: the dataset crops (pyiqa augment ``random_crop: 224`` +
``hflip``), the network takes the crops as they come (they must be image_size square).
Test (eval mode, 4-D input): every patch of side image_size (224) on a stride-64 grid over the
full-resolution image (row-major, as ``nn.Unfold``; the right / bottom remainder that does not
fill a stride is not covered), both scores averaged over the patches [base]. Any image size
works; an image whose shorter side is below 224 (the base code cannot take it) is first
resized, bilinear, so that its shorter side is 224, the aspect ratio kept [assumed]. Patches
are cut from the grid (a view, never materialised whole) and scored in chunks of
``test_chunk`` (memory only; results do not depend on it). A 5-D input
(B, V, C, P, P) of views already cut is scored view by view and averaged, in both modes.

Parameter names follow the base code so its two saved prompt learners can be loaded
(:meth:`DCMPL.load_clip_agiqa_prompts`): ``prompt_learner_tar.{ctx, prompts_text.i,
prompts_vis.i, proj, compound_prompt_projections.i}`` (``proj`` is the input-layer coupling,
``compound_prompt_projections.i`` the one of layer i + 1) and ``prompt_learner_aux.{ctx,
prompts_text.i, prompts_vis.i}``; DCMPL's modules are ``mpa.l`` and ``image_adapter``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from pyiqa.utils.registry import ARCH_REGISTRY

from ..prompt_args import PromptArg, prompts_for_batch
from ..weights.io import fit_state_dict, load_state_dict
from .base import CLIPNetwork
from .backbone.feature_cache import WeightsCache

QUALITY_TEXTS = ('good photo.', 'bad photo.')
ALIGNMENT_TEXTS = ('aligned photo.', 'misaligned photo.')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def patch_windows(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """The test-time patch grid of :func:`patch_grid` as a view of ``images`` (resized first
    if needed): (B, n_rows, n_cols, C, P, P); nothing is copied."""
    h, w = images.shape[-2:]
    if min(h, w) < patch_size:
        scale = patch_size / min(h, w)
        size = (max(patch_size, round(h * scale)), max(patch_size, round(w * scale)))
        images = F.interpolate(images, size=size, mode='bilinear', align_corners=False)
    return images.unfold(2, patch_size, stride).unfold(3, patch_size, stride).permute(0, 2, 3, 1, 4, 5)


def patch_grid(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """The test-time patch grid of DCMPL / CLIP-AGIQA.

    Args:
        images: (B, C, H, W); an image whose shorter side is below ``patch_size`` is resized
            (bilinear) so that its shorter side equals ``patch_size``, aspect ratio kept.
        patch_size: patch side (the CLIP input size, 224).
        stride: grid stride (64).
    Returns:
        (B, n_rows * n_cols, C, P, P), row-major (the order of ``nn.Unfold``), with
        ``n_rows = (H - P) // stride + 1`` and likewise for the columns. (The network itself
        does not materialise the grid: it cuts the patches chunk by chunk from
        :func:`patch_windows`.)
    """
    grid = patch_windows(images, patch_size, stride)
    b, c = grid.shape[0], grid.shape[3]
    return grid.reshape(b, -1, c, patch_size, patch_size)


class _Patches:
    """N patches to score, as an (N, C, P, P) tensor or a (B, n_rows, n_cols, C, P, P) grid
    view; ``chunk(start, stop)`` gives patches start..stop-1 (row-major) as a tensor, cut from
    the grid view on its device by one gather (a fresh tensor), else a slice (a view)."""

    def __init__(self, source: torch.Tensor):
        self.source = source
        self.grid = source.dim() == 6
        self.n = source.shape[:3].numel() if self.grid else source.shape[0]
        self.shape = source.shape[-3:]

    def chunk(self, start: int, stop: int):
        if not self.grid:
            return self.source[start:stop], False
        _, n_rows, n_cols = self.source.shape[:3]
        k = torch.arange(start, stop, device=self.source.device)
        return self.source[k // (n_rows * n_cols), (k // n_cols) % n_rows, k % n_cols], True


class DeepPrompts(nn.Module):
    """One task's deep prompts (names as in the base code).

    Attributes:
        ctx: (n_ctx, text_width) text prompt of the input layer.
        prompts_text: text_layers - 1 entries (n_ctx, text_width), layers 1..text_layers-1.
        prompts_vis: vision_layers entries (n_ctx, vision_width), layers 0..vision_layers-1.
        proj, compound_prompt_projections: only with ``coupled=True`` (the main task): the
            coupling linears (2 * vision_width -> vision_width) of layer 0 and layers 1.., which
            map ``[own visual prompt || auxiliary visual prompt]`` to the visual prompt used.
    """

    def __init__(self, n_ctx: int, text_width: int, text_layers: int, vision_width: int, vision_layers: int,
                 init_std: float = 0.02, coupled: bool = False):
        super().__init__()

        def param(width):
            return nn.Parameter(torch.empty(n_ctx, width).normal_(std=init_std))

        self.ctx = param(text_width)
        self.prompts_text = nn.ParameterList([param(text_width) for _ in range(text_layers - 1)])
        self.prompts_vis = nn.ParameterList([param(vision_width) for _ in range(vision_layers)])
        self.coupled = coupled
        if coupled:
            self.proj = nn.Linear(2 * vision_width, vision_width)
            self.compound_prompt_projections = nn.ModuleList(
                [nn.Linear(2 * vision_width, vision_width) for _ in range(vision_layers - 1)])

    def text(self) -> List[torch.Tensor]:
        """Text prompts per layer, input first: [(n_ctx, text_width)] * text_layers."""
        return [self.ctx, *self.prompts_text]

    def visual(self, aux: Optional[Sequence[torch.Tensor]] = None) -> List[torch.Tensor]:
        """Visual prompts per layer, input first; coupled with the auxiliary ones if given."""
        own = list(self.prompts_vis)
        if aux is None:
            return own
        if not self.coupled:
            raise RuntimeError('these prompts have no coupling layers')
        layers = [self.proj, *self.compound_prompt_projections]
        return [layer(torch.cat([v, u], dim=-1)) for layer, v, u in zip(layers, own, aux)]


class PromptAttention(nn.Module):
    """MPA of one prompt layer [DCMPL, assumed form]: text <-> visual cross-attention.

    ``t`` (n, Dt) and ``v`` (m, Dv) are projected to ``dim``; text queries attend to the
    visual tokens and visual queries to the text tokens (``heads`` heads each, both from the
    projected inputs); each result is projected back and added::

        t' = t + text_out(MHA_t(q=text_in(t), kv=vis_in(v)))
        v' = v + vis_out(MHA_v(q=vis_in(v), kv=text_in(t)))
    """

    def __init__(self, text_width: int, vision_width: int, dim: int, heads: int = 8):
        super().__init__()
        if dim % heads:
            raise ValueError(f'MPA width {dim} is not divisible by {heads} heads')
        self.text_in = nn.Linear(text_width, dim)
        self.vis_in = nn.Linear(vision_width, dim)
        self.text_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.vis_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.text_out = nn.Linear(dim, text_width)
        self.vis_out = nn.Linear(dim, vision_width)

    def forward(self, t: torch.Tensor, v: torch.Tensor):
        qt, qv = self.text_in(t)[None], self.vis_in(v)[None]
        t_att = self.text_attn(qt, qv, qv, need_weights=False)[0][0]
        v_att = self.vis_attn(qv, qt, qt, need_weights=False)[0][0]
        return t + self.text_out(t_att), v + self.vis_out(v_att)


class ImageAdapter(nn.Module):
    """CLIP-Adapter bottleneck fused residually: ``ratio * ReLU(W2 ReLU(W1 f)) + (1 - ratio) * f``."""

    def __init__(self, dim: int, reduction: int = 4, ratio: float = 0.2):
        super().__init__()
        self.ratio = float(ratio)
        self.fc = nn.Sequential(nn.Linear(dim, dim // reduction, bias=False), nn.ReLU(),
                                nn.Linear(dim // reduction, dim, bias=False), nn.ReLU())

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.ratio * self.fc(f) + (1 - self.ratio) * f


@ARCH_REGISTRY.register()
class DCMPL(CLIPNetwork):
    """DCMPL network: quality and text-image alignment of an image, each in [0, 1].

    See the module docstring for the model, its sources and its assumptions.

    Args:
        clip_model: open_clip model name; ``ViT-B-32-quickgelu`` (OpenAI ViT-B/32) [base].
            Needs a ViT image tower (visual prompts).
        (clip_pretrained, pretrained, pretrained_model_path / weights, precision, cache_dir:
            shared by the four architectures, see :mod:`pyiqa_agiqa.archs.base`.)
        n_ctx: prompt tokens per layer, 8 [base].
        prompt_init_std: std of the normal initialisation of the prompts, 0.02 [base].
        use_aux: True [base]: the auxiliary (alignment) prompts and the coupling. False gives
            the base's ``use_aux=0`` branch: no auxiliary prompts, no coupling, main visual
            prompts used directly, no alignment output (for data without alignment labels).
        mpa, mpa_heads, mpa_dim: Multi-modal Prompt Attention on / heads (8) / common width
            (None: the text width, 512) [DCMPL, assumed].
        adapter, adapter_reduction, adapter_ratio: Image Adapter on / bottleneck reduction (4)
            / residual ratio (0.2) [DCMPL, assumed].
        normalization: ``'imagenet'`` (the base's preprocessing) or ``'clip'``.
        test_stride: stride of the test patch grid, 64 [base].
        test_chunk: at most this many patches per image-tower call (memory only).
        output: None (forward returns {'quality': (B,), 'alignment': (B,)}), ``'quality'``
            or ``'alignment'`` (forward returns that score as (B, 1)).

    Forward:
        x: (B, C, H, W) images in [0, 1] (C = 1 or 3). Eval mode: any size, scored on the
            test patch grid. Training mode: used as given (crops of the CLIP input size, cut by
            the dataset). Or (B, V, C, P, P) views already cut, scores averaged over V.
        prompt: accepted and unused (DCMPL does not read the generation prompt); if given it
            must be one str per image.
        Returns (B, 1) scores in [0, 1], or the dict of (B,) scores (see ``output``).
    """

    network_options = ('clip_model', 'n_ctx', 'prompt_init_std', 'use_aux', 'mpa', 'mpa_heads', 'mpa_dim', 'adapter',
                       'adapter_reduction', 'adapter_ratio', 'normalization', 'test_stride')
    runtime_options = ('output', 'test_chunk')
    output_names = ('quality', 'alignment')
    requires_fine_tuned = ('quality', 'alignment')  # learned prompts (and MPA, adapter)

    def __init__(self, clip_model: str = 'ViT-B-32-quickgelu', clip_pretrained: Optional[str] = 'openai',
                 pretrained: bool = True, pretrained_model_path: Optional[str] = None,
                 weights: Optional[str] = None, precision: str = 'fp32',
                 n_ctx: int = 8, prompt_init_std: float = 0.02, use_aux: bool = True,
                 mpa: bool = True, mpa_heads: int = 8, mpa_dim: Optional[int] = None,
                 adapter: bool = True, adapter_reduction: int = 4, adapter_ratio: float = 0.2,
                 normalization: str = 'imagenet', test_stride: int = 64,
                 test_chunk: int = 64, output: Optional[str] = None, cache_dir: Optional[str] = None):
        if output == 'alignment' and not use_aux:
            raise ValueError("output='alignment' needs the auxiliary branch (use_aux=True)")
        if normalization not in ('imagenet', 'clip'):
            raise ValueError(f"normalization must be 'imagenet' or 'clip', got '{normalization}'")
        super().__init__(clip_model, clip_pretrained, pretrained, pretrained_model_path, weights, cache_dir,
                         dict(n_ctx=n_ctx, prompt_init_std=prompt_init_std, use_aux=use_aux, mpa=mpa,
                              mpa_heads=mpa_heads, mpa_dim=mpa_dim, adapter=adapter,
                              adapter_reduction=adapter_reduction, adapter_ratio=adapter_ratio,
                              normalization=normalization, test_stride=test_stride), output)
        self.use_aux = bool(use_aux)
        self.n_ctx = int(n_ctx)
        self.test_stride, self.test_chunk = int(test_stride), int(test_chunk)

        self.backbone.requires_grad_(False)
        model = self.backbone.model
        visual = model.visual
        if not hasattr(visual, 'transformer') or not hasattr(visual, 'class_embedding'):
            raise ValueError(f'DCMPL needs a ViT image tower for its visual prompts; {clip_model} has '
                             f'{type(visual).__name__}')
        self.text_width = int(model.token_embedding.weight.shape[1])
        self.text_layers = len(model.transformer.resblocks)
        self.vision_width = int(visual.class_embedding.shape[-1])
        self.vision_layers = len(visual.transformer.resblocks)
        self.patch_size = self.backbone.image_size  # test patches: the CLIP input size (224)

        dims = (self.n_ctx, self.text_width, self.text_layers, self.vision_width, self.vision_layers, prompt_init_std)
        self.prompt_learner_tar = DeepPrompts(*dims, coupled=self.use_aux)
        self.prompt_learner_aux = DeepPrompts(*dims) if self.use_aux else None
        n_pairs = min(self.text_layers, self.vision_layers)
        self.mpa = nn.ModuleList([PromptAttention(self.text_width, self.vision_width, mpa_dim or self.text_width,
                                                  mpa_heads) for _ in range(n_pairs)]) if mpa else None
        self.image_adapter = (ImageAdapter(self.backbone.embed_dim, adapter_reduction, adapter_ratio)
                              if adapter else None)

        self.register_buffer('tokens_quality', self.backbone.placeholder_tokens(self.n_ctx, QUALITY_TEXTS),
                             persistent=False)
        self.register_buffer('tokens_alignment', self.backbone.placeholder_tokens(self.n_ctx, ALIGNMENT_TEXTS),
                             persistent=False)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalization == 'imagenet' else (
            tuple(self.backbone.mean.flatten().tolist()), tuple(self.backbone.std.flatten().tolist()))
        self.register_buffer('pixel_mean', torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std).view(3, 1, 1), persistent=False)

        self._class_prompts = WeightsCache()  # per task: (visual prompts, text features), see class_prompts
        self.load_and_set_precision(precision)

    # ----- prompts -----
    def main_prompts(self):
        """(text prompts, visual prompts) of the main task per layer, after coupling and MPA."""
        tar = self.prompt_learner_tar
        text = tar.text()
        visual = tar.visual(list(self.prompt_learner_aux.prompts_vis) if self.use_aux else None)
        if self.mpa is not None:
            for i, block in enumerate(self.mpa):
                text[i], visual[i] = block(text[i], visual[i])
        return text, visual

    def class_prompts(self, task: str):
        """(visual prompts per layer, (2, D) text features of the task's two class texts) for
        ``task`` 'quality' (main prompts after coupling and MPA, 'good / bad photo.') or
        'alignment' (auxiliary prompts, 'aligned / misaligned photo.').

        They depend on the weights only, not on the images: computed once and reused while no
        parameter they depend on changes (prompt learners, coupling, MPA, the text tower) and
        the mode is the same; computed anew (part of the graph) whenever autograd records, as
        in training."""
        visual, text = self._class_prompts_deferred(task)
        return visual, text()

    def _class_prompts_deferred(self, task: str):
        """(visual prompts, function giving the text features): while autograd records, the text
        tower runs when the function is called (after the image tower, the order of the base
        code); otherwise both come from the cache."""
        aux = self.prompt_learner_aux
        if task == 'quality':
            # the auxiliary VISUAL prompts feed the coupling; the auxiliary text prompts do not
            modules = [self.prompt_learner_tar] + ([aux.prompts_vis] if self.use_aux else []) + (
                [self.mpa] if self.mpa is not None else [])
            tokens = self.tokens_quality

            def prompts():
                text, visual = self.main_prompts()
                return visual, text
        else:
            modules, tokens = [aux], self.tokens_alignment

            def prompts():
                return list(aux.prompts_vis), aux.text()
        params = [p for m in modules for p in m.parameters()] + self.backbone.text_parameters()
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            visual, text = prompts()
            return visual, lambda: self.backbone.encode_text_prompted(tokens, text)

        def compute():
            visual, text = prompts()
            return [v.detach() for v in visual], self.backbone.encode_text_prompted(tokens, text).detach()
        visual, feats = self._class_prompts.get(task, params, compute, self.training)
        return visual, lambda: feats

    # ----- scoring -----
    def normalize(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """(N, C, P, P) in [0, 1] -> normalised with ``normalization``'s mean / std (grey repeated);
        ``inplace=True`` (a tensor of this network's own) reuses its memory when it can."""
        if x.shape[1] == 1:
            x, inplace = x.expand(-1, 3, -1, -1), False
        if inplace and torch.result_type(x, self.pixel_mean) == x.dtype:
            return x.sub_(self.pixel_mean).div_(self.pixel_std)
        return torch.sub(x, self.pixel_mean).div_(self.pixel_std)

    def _encode_images(self, patches: _Patches, visual_prompts) -> torch.Tensor:
        step = max(1, self.test_chunk)
        feats = []
        for start in range(0, patches.n, step):
            chunk, own = patches.chunk(start, min(start + step, patches.n))
            feats.append(self.backbone.encode_image_prompted(self.normalize(chunk, inplace=own), visual_prompts,
                                                             normalize_input=False))
        return torch.cat(feats)

    def _two_way_score(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        logits = self.backbone.logit_scale() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
        return logits.softmax(dim=-1)[:, 0]

    def score_patches(self, images: torch.Tensor, outputs: Sequence[str]) -> Dict[str, torch.Tensor]:
        """(N, C, P, P) patches in [0, 1] (or a (B, n_rows, n_cols, C, P, P) grid view, from
        :func:`patch_windows`, scored row-major without being copied whole) -> {output: (N,)}
        for the named outputs."""
        side = self.backbone.image_size
        patches = _Patches(images)
        if patches.shape[-2:] != (side, side):
            raise ValueError(f'DCMPL scores {side}x{side} patches, got {tuple(patches.shape[-2:])}: in training '
                             f'crop in the dataset (augment random_crop: {side}); in eval mode any size works')
        scores = {}
        if 'quality' in outputs:
            visual, text = self._class_prompts_deferred('quality')
            img = self._encode_images(patches, visual)
            if self.image_adapter is not None:
                img = self.image_adapter(img)
            scores['quality'] = self._two_way_score(img, text())
        if 'alignment' in outputs:
            visual, text = self._class_prompts_deferred('alignment')
            scores['alignment'] = self._two_way_score(self._encode_images(patches, visual), text())
        return scores

    def forward(self, x: torch.Tensor, prompt: PromptArg = None) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if prompt is not None:
            prompts_for_batch(prompt, x.shape[0], 'DCMPL')
        if x.dim() == 5:
            b, v = x.shape[:2]
            patches = x.flatten(0, 1)
        elif x.dim() == 4:
            # eval: the patch grid as a view; score_patches cuts it chunk by chunk
            patches = x if self.training else patch_windows(x, self.patch_size, self.test_stride)
            b, v = x.shape[0], (1 if self.training else patches.shape[1] * patches.shape[2])
        else:
            raise ValueError(f'DCMPL takes (B, C, H, W) images or (B, V, C, P, P) views, got shape {tuple(x.shape)}')
        outputs = (self.output,) if self.output else (self.output_names if self.use_aux else ('quality',))
        scores = {k: s.view(b, v).mean(dim=1) for k, s in self.score_patches(patches, outputs).items()}
        return scores[self.output][:, None] if self.output else scores

    # ----- weights of the base code -----
    def load_clip_agiqa_prompts(self, tar: Union[str, os.PathLike, dict],
                                aux: Union[str, os.PathLike, dict, None] = None) -> 'DCMPL':
        """Load the prompt learners saved by Fu et al.'s code (``*_tar_best.pth`` and
        ``*_aux_best.pth``, state dicts of ``PromptLearnerTarget`` / ``PromptLearnerAuxiliary``).

        Their fixed token buffers (``token_prefix`` / ``token_suffix``) are ignored, and so are
        the coupling linears when ``use_aux=False``; every prompt / coupling parameter of this
        network must be present with its shape (else an error). MPA and the adapter are left
        as they are (the base has none).
        """
        def state(src):
            return dict(src) if isinstance(src, dict) else load_state_dict(src, key=None)

        def where(src):
            return os.fspath(src) if isinstance(src, (str, os.PathLike)) else '<state dict>'

        parts = [(self.prompt_learner_tar, state(tar), where(tar))]
        if self.use_aux:
            if aux is None:
                raise ValueError('use_aux=True: give the auxiliary prompt learner too')
            parts.append((self.prompt_learner_aux, state(aux), where(aux)))
        for module, sd, name in parts:
            own = module.state_dict()
            missing = [k for k in own if k not in sd]
            if missing:
                raise KeyError(f'prompt learner state lacks {missing}')
            fit_state_dict(module, {k: sd[k] for k in own}, name,
                           hint="prompt learners of another CLIP or prompt length than this DCMPL's: build it with "
                                'the clip_model / n_ctx they were trained with')
        return self
