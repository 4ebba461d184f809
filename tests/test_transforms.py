"""Transforms: identity values change nothing; the effect grows monotonically with strength."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import textured_image
from physical import transforms as T


@pytest.fixture(scope="module")
def img():
    return textured_image(48, seed=3)


def effect(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("kind", ["brightness", "contrast", "blur", "noise"])
def test_identity_value_changes_nothing(img, kind):
    out = T.apply(kind, img, T.IDENTITY[kind], seed=0, image_id="x")
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, img)


def test_jpeg_quality_100_is_close_to_identity(img):
    out = T.jpeg(img, 100)
    assert out.dtype == np.uint8 and out.shape == img.shape
    # 4:2:0 chroma subsampling costs a saturated random-colour image a few levels even at q100
    assert effect(out, img) < 5 < effect(T.jpeg(img, 10), img)


@pytest.mark.parametrize("kind,values", [
    ("brightness", [0, 10, 20, 30]),
    ("brightness", [0, -10, -20, -30]),
    ("contrast", [1.0, 1.1, 1.2, 1.3]),
    ("contrast", [1.0, 0.9, 0.8, 0.7]),
    ("blur", [0, 0.4, 0.7, 1.0, 1.5, 2.0]),
    ("noise", [0, 5, 10, 15, 20]),
    ("jpeg", [100, 90, 70, 50, 30, 10]),
])
def test_effect_grows_with_strength(img, kind, values):
    effects = [effect(T.apply(kind, img, v, seed=0, image_id="x"), img) for v in values]
    assert all(b > a for a, b in zip(effects, effects[1:])), effects


def test_brightness_and_contrast_are_the_papers_formulas(img):
    ref = np.clip(img.astype(np.int16) - 20, 0, 255).astype(np.uint8)
    assert np.array_equal(T.brightness(img, -20), ref)
    ref = np.clip(np.rint(img.astype(np.float64) * 1.3), 0, 255).astype(np.uint8)
    assert np.abs(T.contrast(img, 1.3).astype(int) - ref).max() <= 1  # rounding of .5 only


def test_noise_is_seeded_per_image_and_shared_by_clean_and_adversarial(img):
    a = T.noise(img, 10, seed=0, image_id="cat")
    assert np.array_equal(a, T.noise(img, 10, seed=0, image_id="cat"))
    assert not np.array_equal(a, T.noise(img, 10, seed=1, image_id="cat"))
    assert not np.array_equal(a, T.noise(img, 10, seed=0, image_id="dog"))
    field = T.noise_field(img.shape, 0, "cat")
    assert np.array_equal(a, T.noise(img, 10, field=field))


def test_bad_arguments_are_refused(img):
    with pytest.raises(ValueError):
        T.apply("sharpen", img, 1)
    with pytest.raises(ValueError):
        T.jpeg(img, 0)
    with pytest.raises(ValueError):
        T.blur(img, -1)
    with pytest.raises(ValueError):
        T.brightness(img.astype(np.float32), 3)


def test_grid_spans_the_papers_ranges():
    assert min(T.GRID["brightness"]) == -30 and max(T.GRID["brightness"]) == 30
    assert min(T.GRID["contrast"]) == 0.7 and max(T.GRID["contrast"]) == 1.3
    assert min(T.GRID["blur"]) == 0.4 and max(T.GRID["blur"]) == 2.0
    assert min(T.GRID["noise"]) == 5 and max(T.GRID["noise"]) == 20
    assert min(T.GRID["jpeg"]) == 10 and max(T.GRID["jpeg"]) == 100
    assert T.stage_name("blur", 1.0) == "transform:blur:1"
