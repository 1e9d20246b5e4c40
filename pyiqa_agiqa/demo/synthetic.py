"""Procedural AGIQA-format demo dataset with known quality factors.

Each prompt (one ``group``) is a distinct ``(colour, shape, background)``
combination, e.g. ``"a red circle on a blue background"``: 6 colours x 5 shapes
x 5 other background colours give 150 possible prompts. Every image of a prompt
draws its *content* from the prompt, except that with probability 0.3 it
mismatches it (half the time another shape, otherwise another colour). Position
(centre within +-12% of the size), radius (22-32% of the size) and rotation
(+-15 deg) vary a little. The image then gets one degradation *family* with a
level ``l`` in 1..3 (``sharp`` has level 0), stored as ``generator``
(``sharpgen``, ``blurgen``, ``noisegen``, ``jpeggen``, ``fadegen``):

* blur: Gaussian blur, sigma = ``l * image_size / 96`` px (1/2/3 px at 96 px);
* noise: additive Gaussian noise, std = ``0.25 * l / 3`` in [0, 1] units;
* jpeg: JPEG round trip at quality 20 / 10 / 4 (saved as PNG afterwards);
* fade: contrast reduced towards mid-grey by a factor 0.6 / 0.4 / 0.2.

Labels (rounded to 4 decimals, clipped to [0, 5], ``N`` is the seeded rng):

* ``degradation = w_family * l / 3`` with w = blur 3.5, noise 3.5, jpeg 3.0,
  fade 2.5, sharp 0;
* ``mos_quality = 4.7 - degradation + N(0, 0.1)`` (independent of mismatch);
* ``mos_correspondence = (4.5 if match else 1.5) - 0.8 * l_blur / 3 + N(0, 0.15)``;
* ``std_quality ~ U(0.4, 0.5)``, ``std_correspondence ~ U(0.3, 0.4)``.

The per-image ground truth (family, level, degradation, mismatch, content) is
also written to ``root/demo_factors.csv``.

Splits are grouped by prompt: for split ``s`` (1-based) the prompts are permuted
with ``numpy.random.default_rng(seed * 1000 + s)``; the first ``n_test`` go to
``test``, the next ``n_val`` to ``val`` and the rest to ``train``, where
``n_test = max(1, round(0.2 n))`` (n >= 2) and ``n_val = max(1, round(0.1 n))``
(n >= 3), rounding halves up; otherwise the count is 0.

Everything else is drawn from ``numpy.random.default_rng(seed)`` in a fixed
order, so equal parameters give identical files.
"""
from __future__ import annotations

import io
import itertools
import json
import pathlib

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220),
           "yellow": (240, 220, 40), "white": (245, 245, 245), "black": (15, 15, 15)}
SHAPES = ("circle", "square", "triangle", "star", "cross")
FAMILY_WEIGHTS = {"sharp": 0.0, "blur": 3.5, "noise": 3.5, "jpeg": 3.0, "fade": 2.5}
JPEG_QUALITY = {1: 20, 2: 10, 3: 4}
FADE_CONTRAST = {1: 0.6, 2: 0.4, 3: 0.2}
MISMATCH_PROB = 0.3
SUPERSAMPLE = 4
PARAMS_VERSION = 1


def _shape_vertices(shape: str, cx: float, cy: float, r: float, angle: float) -> list:
    """Polygon vertices of a non-circle shape of radius ``r`` rotated by ``angle``."""
    if shape == "square":
        radii, angles = [r] * 4, np.pi / 4 + np.arange(4) * np.pi / 2
    elif shape == "triangle":
        radii, angles = [r] * 3, -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    elif shape == "star":
        radii, angles = [r, 0.45 * r] * 5, -np.pi / 2 + np.arange(10) * np.pi / 5
    else:  # cross: arms of half-width w reaching r
        w = 0.35 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
               (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        radii = [np.hypot(x, y) for x, y in pts]
        angles = np.array([np.arctan2(y, x) for x, y in pts])
    angles = np.asarray(angles) + angle
    return [(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, angles)]


def _render(colour: str, shape: str, background: str, size: int,
            rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased float image in [0, 1] of shape (size, size, 3)."""
    big = size * SUPERSAMPLE
    cx, cy = big * (0.5 + rng.uniform(-0.12, 0.12, size=2))
    r = big * rng.uniform(0.22, 0.32)
    angle = np.deg2rad(rng.uniform(-15, 15))
    canvas = Image.new("RGB", (big, big), COLOURS[background])
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[colour])
    else:
        draw.polygon(_shape_vertices(shape, cx, cy, r, angle), fill=COLOURS[colour])
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _degrade(img: np.ndarray, family: str, level: int,
             rng: np.random.Generator) -> Image.Image:
    """Apply one degradation family at ``level`` and return an RGB image."""
    if family == "blur":
        sigma = level * img.shape[0] / 96
        img = gaussian_filter(img, sigma=(sigma, sigma, 0))
    elif family == "noise":
        img = img + rng.normal(0.0, 0.25 * level / 3, size=img.shape)
    elif family == "fade":
        img = 0.5 + (img - 0.5) * FADE_CONTRAST[level]
    out = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")
    if family == "jpeg":
        buffer = io.BytesIO()
        out.save(buffer, format="JPEG", quality=JPEG_QUALITY[level])
        out = Image.open(buffer).convert("RGB")
    return out


def _split_assignment(n_prompts: int, seed: int, split_index: int) -> np.ndarray:
    """``train``/``val``/``test`` label per prompt for one grouped split."""
    n_test = max(1, int(0.2 * n_prompts + 0.5)) if n_prompts >= 2 else 0
    n_val = max(1, int(0.1 * n_prompts + 0.5)) if n_prompts >= 3 else 0
    order = np.random.default_rng(seed * 1000 + split_index).permutation(n_prompts)
    labels = np.full(n_prompts, "train", dtype=object)
    labels[order[:n_test]] = "test"
    labels[order[n_test:n_test + n_val]] = "val"
    return labels


def make_demo_dataset(root, n_prompts: int = 60, images_per_prompt: int = 6,
                      image_size: int = 96, seed: int = 0, n_splits: int = 3,
                      overwrite: bool = False, progress: bool = True) -> pathlib.Path:
    """Generate (or reuse) the synthetic dataset under ``root``; return ``meta_info.csv``.

    An existing dataset made with the same parameters is reused as is; one made
    with other parameters (or not by this function) raises ``FileExistsError``
    unless ``overwrite=True``, which rewrites only this function's own files.
    """
    root = pathlib.Path(root)
    csv_path, params_path = root / "meta_info.csv", root / "demo_params.json"
    params = {"n_prompts": n_prompts, "images_per_prompt": images_per_prompt,
              "image_size": image_size, "seed": seed, "n_splits": n_splits,
              "version": PARAMS_VERSION}
    if csv_path.exists() and not overwrite:
        if params_path.exists() and json.loads(params_path.read_text()) == params:
            return csv_path
        raise FileExistsError(
            f"{root} already holds a meta_info.csv made with other parameters (or not by "
            "make_demo_dataset); pass overwrite=True or pick another folder.")

    combos = [(c, s, b) for c, s, b in itertools.product(COLOURS, SHAPES, COLOURS) if c != b]
    if not 1 <= n_prompts <= len(combos):
        raise ValueError(f"n_prompts must be in 1..{len(combos)}, got {n_prompts}")
    rng = np.random.default_rng(seed)
    prompts = [combos[i] for i in rng.choice(len(combos), size=n_prompts, replace=False)]
    families = list(FAMILY_WEIGHTS)
    (root / "images").mkdir(parents=True, exist_ok=True)

    rows, factors = [], []
    jobs = [(g, k) for g in range(n_prompts) for k in range(images_per_prompt)]
    for group, k in tqdm(jobs, desc="demo images", disable=not progress):
        colour, shape, background = prompts[group]
        mismatch = bool(rng.random() < MISMATCH_PROB)
        if mismatch and rng.random() < 0.5:
            shape = str(rng.choice([s for s in SHAPES if s != shape]))
        elif mismatch:
            colour = str(rng.choice([c for c in COLOURS if c not in (colour, background)]))
        family = families[rng.integers(len(families))]
        level = 0 if family == "sharp" else int(rng.integers(1, 4))
        image = _degrade(_render(colour, shape, background, image_size, rng), family, level, rng)
        name = f"demo_{group:03d}_{k:02d}.png"
        image.save(root / "images" / name)

        degradation = FAMILY_WEIGHTS[family] * level / 3
        blur_level = level if family == "blur" else 0
        quality = 4.7 - degradation + rng.normal(0, 0.1)
        correspondence = (1.5 if mismatch else 4.5) - 0.8 * blur_level / 3 + rng.normal(0, 0.15)
        rows.append({
            "name": name,
            "mos_quality": round(float(np.clip(quality, 0, 5)), 4),
            "prompt": "a {} {} on a {} background".format(*prompts[group]),
            "mos_correspondence": round(float(np.clip(correspondence, 0, 5)), 4),
            "std_quality": round(float(rng.uniform(0.4, 0.5)), 4),
            "std_correspondence": round(float(rng.uniform(0.3, 0.4)), 4),
            "generator": f"{family}gen",
            "group": group,
        })
        factors.append({"name": name, "family": family, "level": level,
                        "degradation": round(degradation, 4), "mismatch": mismatch,
                        "content": f"{colour} {shape}"})

    meta = pd.DataFrame(rows)
    for s in range(1, n_splits + 1):
        meta[f"demo_split_{s:02d}"] = _split_assignment(n_prompts, seed, s)[meta["group"].to_numpy()]
    pd.DataFrame(factors).to_csv(root / "demo_factors.csv", index=False)
    params_path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    meta.to_csv(csv_path, index=False)  # written last: its presence marks a complete dataset
    return csv_path


def smooth_texture(size: int, rng: np.random.Generator, amplitude: float, exponent: float = 1.5) -> np.ndarray:
    """A (size, size, 1) grey texture of standard deviation ``amplitude``: Gaussian noise whose
    amplitude spectrum falls as 1 / f**``exponent`` (smooth, natural-looking variation)."""
    freq = np.fft.fftfreq(size)
    radius = np.hypot(freq[:, None], freq[None, :])
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius ** exponent
    spectrum[0, 0] = 0.0
    field = np.real(np.fft.ifft2(spectrum))
    return (field / field.std() * amplitude)[..., None]


def make_comparison_set(root, levels=None, family: str = "blur", n_prompts: int = 20, seeds: int = 2,
                        image_size: int = 64, seed: int = 0, sidecars: bool = True,
                        texture: float = 0.0) -> pathlib.Path:
    """Images of several "models" for ``pyiqa-agiqa compare``, with a known truth: for each prompt
    and seed every model draws the same scene (the demo's shapes), then degrades it with
    ``family`` at its own level (``levels``: {model: level 0..3}, by default clean 0, mild 1,
    strong 3). With ``texture`` > 0 every scene first gets a smooth random texture of that
    standard deviation (:func:`smooth_texture`, the same for every model), so that the clean
    images are not flat: a no-reference metric such as pyiqa's ``piqe`` calls flat images bad.
    Writes ``root/<model>/p<id>_s<seed>.png`` (and, with ``sidecars``, the prompt in
    ``.txt`` beside each image) and ``root/generations.csv`` (model, image, prompt, prompt_id,
    seed, category = the shape); returns the table's path. Prompts beyond the 150 combinations
    repeat a scene with a numbered prompt."""
    root = pathlib.Path(root)
    levels = dict(levels or {"clean": 0, "mild": 1, "strong": 3})
    combos = [(c, s, b) for c, s, b in itertools.product(COLOURS, SHAPES, COLOURS) if c != b]
    rows = []
    for pid in range(n_prompts):
        colour, shape, background = combos[(pid * 37) % len(combos)]
        prompt = f"a {colour} {shape} on a {background} background" + (f" (#{pid})" if pid >= len(combos) else "")
        for s in range(seeds):
            scene = _render(colour, shape, background, image_size, np.random.default_rng([seed, pid, s]))
            if texture:
                scene = np.clip(scene + smooth_texture(image_size, np.random.default_rng([seed, pid, s, 2]), texture),
                                0, 1)
            for model, level in levels.items():
                folder = root / model
                folder.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng([seed, pid, s, 1])
                image = _degrade(scene, family if level else "sharp", level, rng)
                path = folder / f"p{pid:04d}_s{s}.png"
                image.save(path)
                if sidecars:
                    path.with_suffix(".txt").write_text(prompt + "\n")
                rows.append({"model": model, "image": f"{model}/{path.name}", "prompt": prompt,
                             "prompt_id": f"p{pid:04d}", "seed": s, "category": shape})
    table = root / "generations.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table
