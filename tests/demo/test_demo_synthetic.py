"""Tests for the procedural demo dataset (pyiqa_agiqa.demo.synthetic)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import laplace
from scipy.stats import spearmanr

from pyiqa_agiqa.demo.synthetic import make_demo_dataset

PARAMS = dict(n_prompts=10, images_per_prompt=3, image_size=48, seed=3, n_splits=2, progress=False)
BASE_COLUMNS = ["name", "mos_quality", "prompt", "mos_correspondence", "std_quality",
                "std_correspondence", "generator", "group"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, make_demo_dataset(root, **PARAMS)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A bigger set (still fast) for the statistical checks."""
    root = tmp_path_factory.mktemp("demo_large")
    csv = make_demo_dataset(root, n_prompts=30, images_per_prompt=6, image_size=64, progress=False)
    return pd.read_csv(csv), pd.read_csv(root / "demo_factors.csv"), root


def test_layout(dataset):
    root, csv = dataset
    assert csv == root / "meta_info.csv"
    meta = pd.read_csv(csv)
    assert list(meta.columns) == BASE_COLUMNS + ["demo_split_01", "demo_split_02"]
    assert len(meta) == 10 * 3
    assert meta["name"].is_unique
    assert meta.groupby("group")["prompt"].nunique().eq(1).all()
    assert meta["prompt"].nunique() == 10
    for column in ["mos_quality", "mos_correspondence", "std_quality", "std_correspondence"]:
        assert meta[column].between(0, 5).all(), column
    assert (meta[["std_quality", "std_correspondence"]] > 0).all().all()
    for name in meta["name"]:
        with Image.open(root / "images" / name) as image:
            assert image.mode == "RGB" and image.size == (48, 48)


def test_deterministic(tmp_path):
    first = make_demo_dataset(tmp_path / "a", **PARAMS)
    second = make_demo_dataset(tmp_path / "b", **PARAMS)
    assert first.read_text() == second.read_text()
    name = pd.read_csv(first)["name"].iloc[-1]
    pixels = [np.asarray(Image.open(p.parent / "images" / name)) for p in (first, second)]
    assert np.array_equal(*pixels)
    other = make_demo_dataset(tmp_path / "c", **{**PARAMS, "seed": 4})
    assert other.read_text() != first.read_text()


def test_splits_grouped(dataset):
    meta = pd.read_csv(dataset[1])
    for column in ["demo_split_01", "demo_split_02"]:
        assert set(meta[column]) == {"train", "val", "test"}
        assert meta.groupby("group")[column].nunique().eq(1).all()
        per_part = meta.groupby(column)["group"].nunique()
        assert per_part.to_dict() == {"train": 7, "val": 1, "test": 2}
    assert not meta["demo_split_01"].equals(meta["demo_split_02"])


def test_reuse_and_conflict(dataset):
    root, csv = dataset
    before = csv.stat().st_mtime_ns
    assert make_demo_dataset(root, **PARAMS) == csv
    assert csv.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_demo_dataset(root, **{**PARAMS, "image_size": 32})
    assert csv.stat().st_mtime_ns == before


def test_overwrite_keeps_foreign_files(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.txt").write_text("keep")
    (tmp_path / "meta_info.csv").write_text("name\n")
    with pytest.raises(FileExistsError):
        make_demo_dataset(tmp_path, **PARAMS)
    csv = make_demo_dataset(tmp_path, overwrite=True, **PARAMS)
    assert (tmp_path / "images" / "mine.txt").read_text() == "keep"
    assert len(pd.read_csv(csv)) == 30
    assert json.loads((tmp_path / "demo_params.json").read_text())["seed"] == PARAMS["seed"]


def test_quality_follows_degradation(large):
    meta, factors, root = large
    assert spearmanr(factors["degradation"], meta["mos_quality"])[0] < -0.9
    means = meta.groupby("generator")["mos_quality"].mean()
    assert means.idxmax() == "sharpgen" and (means["sharpgen"] - means.drop("sharpgen") > 1).all()
    # image-based check: contrast-normalised sharpness (Laplacian variance / pixel variance)
    # tracks quality among the sharp and blurred images
    sharp_or_blur = meta[meta["generator"].isin(["sharpgen", "blurgen"])]
    grey = [np.asarray(Image.open(root / "images" / n).convert("L"), float)
            for n in sharp_or_blur["name"]]
    sharpness = [laplace(g).var() / g.var() for g in grey]
    assert spearmanr(sharpness, sharp_or_blur["mos_quality"])[0] > 0.6


def test_correspondence_follows_mismatch(large):
    meta, factors, _ = large
    assert (meta["name"] == factors["name"]).all()
    assert 0.1 < factors["mismatch"].mean() < 0.5
    by_match = meta.groupby(factors["mismatch"])["mos_correspondence"].mean()
    assert by_match[False] - by_match[True] > 2
    # the quality label ignores the mismatch: for independent columns Spearman's rho has a standard
    # deviation of about 1 / sqrt(n - 1) (0.075 for n = 180), and 0.3 is 4 of them
    assert abs(spearmanr(factors["mismatch"], meta["mos_quality"])[0]) < 4 / np.sqrt(len(meta) - 1)
