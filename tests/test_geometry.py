"""physical.geometry: the coordinate convention (pixel corners at integers, centres at + 0.5),
identity warps that are identities, round trips, shape checks and the EXIF orientation table."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from physical import geometry, ingest, simulate

RNG = np.random.default_rng(0)
# a well-conditioned page-mm → photo-px homography (tilted, rotated, with perspective)
H_TILT = np.array([[9.5, 1.2, 130.0], [-0.8, 10.3, 85.0], [2.0e-4, -1.5e-4, 1.0]])


def _points(n=50):
    return RNG.uniform([0, 0], [210, 297], size=(n, 2))


# ------------------------------------------------------------------------- point mapping
def test_identity_homography_maps_points_to_themselves():
    p = _points()
    np.testing.assert_array_equal(geometry.map_points(np.eye(3), p), p)


def test_map_points_matches_the_homogeneous_formula():
    p = _points()
    q = np.column_stack([p, np.ones(len(p))]) @ H_TILT.T
    np.testing.assert_allclose(geometry.map_points(H_TILT, p), q[:, :2] / q[:, 2:], rtol=1e-13, atol=0)


def test_round_trip_through_the_inverse():
    p = _points()
    back = geometry.map_points(np.linalg.inv(H_TILT), geometry.map_points(H_TILT, p))
    np.testing.assert_allclose(back, p, atol=1e-10)


def test_fit_recovers_the_homography_and_round_trips():
    mm = _points(16)
    px = geometry.map_points(H_TILT, mm)
    H, _ = geometry.fit_homography(mm, px)
    np.testing.assert_allclose(H / H[2, 2], H_TILT, rtol=1e-5, atol=1e-9)   # OpenCV refines to ~1e-6
    np.testing.assert_allclose(geometry.map_points(np.linalg.inv(H), px), mm, atol=1e-5)


def test_ransac_fit_flags_the_outlier():
    mm = _points(20)
    px = geometry.map_points(H_TILT, mm)
    px[3] += 40.0
    H, mask = geometry.fit_homography(mm, px, ransac_tol=2.0)
    assert H is not None and not mask[3] and mask.sum() == 19


def test_point_on_the_line_at_infinity_is_not_finite():
    H = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, -1]])   # w = x − 1
    out = geometry.map_points(H, [[1.0, 5.0], [3.0, 1.0]])
    assert not np.isfinite(out[0]).all() and np.isfinite(out[1]).all()


def test_empty_point_set():
    assert geometry.map_points(H_TILT, np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize("bad", [np.zeros(2), np.zeros((4, 3)), np.zeros((2, 4, 2))])
def test_points_of_the_wrong_shape_are_refused(bad):
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        geometry.map_points(np.eye(3), bad)


def test_homography_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        geometry.map_points(np.eye(2), _points())
    with pytest.raises(ValueError, match="at least 4"):
        geometry.fit_homography(_points(3), _points(3))


# ------------------------------------------------------------------------------- warping
@pytest.mark.parametrize("interpolation", [cv2.INTER_LINEAR, cv2.INTER_NEAREST, cv2.INTER_CUBIC])
def test_identity_warp_returns_its_input(interpolation):
    img = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = geometry.warp_perspective(img, np.eye(3), (53, 37), interpolation=interpolation)
    np.testing.assert_array_equal(out, img)


def test_warp_there_and_back_is_the_identity_on_a_smooth_image():
    y, x = np.mgrid[0:120, 0:160].astype(np.float32)
    img = np.sin(x / 9) + np.cos(y / 7)
    A = np.array([[1.1, 0.1, -6.0], [-0.05, 0.95, 4.0], [1e-4, 0, 1.0]])
    there = geometry.warp_perspective(img, np.linalg.inv(A), (160, 120))
    back = geometry.warp_perspective(there, A, (160, 120))
    inner = (slice(20, 100), slice(20, 140))
    assert np.abs(back[inner] - img[inner]).max() < 0.02


def test_pixel_centres_sit_at_integer_plus_half():
    """Halving with bilinear sampling: output centre i + .5 ↔ source corner coordinate 2i + 1,
    the point between source pixels 2i and 2i + 1, so each output is a 2×2 block mean."""
    img = RNG.uniform(0, 1, (8, 10)).astype(np.float32)
    half = geometry.warp_perspective(img, np.diag([2.0, 2.0, 1.0]), (5, 4))
    blocks = img.reshape(4, 2, 5, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(half, blocks, atol=1e-6)


def test_ingest_crop_of_the_whole_image_at_its_own_size_is_the_image():
    img = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    W = ingest.crop_matrix(np.eye(3), (0, 0, 32, 24), (32, 24))
    np.testing.assert_array_equal(W, np.eye(3))
    out = cv2.warpPerspective(img, W, (32, 24), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    np.testing.assert_array_equal(out, img)


def test_opencv_index_conversion_round_trips():
    p = _points()
    np.testing.assert_allclose(geometry.to_opencv(geometry.from_opencv(p)), p, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(geometry.from_opencv([[0.0, 3.0]]), [[0.5, 3.5]])
    np.testing.assert_array_equal(geometry.CORNER_TO_INDEX @ geometry.INDEX_TO_CORNER, np.eye(3))


def test_units():
    assert geometry.dots_to_mm(600, 600) == pytest.approx(25.4)
    assert geometry.mm_to_dots(geometry.dots_to_mm(1234, 300), 300) == pytest.approx(1234)


# ---------------------------------------------------------------------------- rectangles
def test_rect_corners_and_outline():
    rect = (10.0, 20.0, 50.0, 80.0)
    c = geometry.rect_corners(rect)
    np.testing.assert_array_equal(c, [[10, 20], [50, 20], [50, 80], [10, 80]])   # TL TR BR BL
    out = geometry.rect_outline(rect, 4)
    assert out.shape == (16, 2)
    np.testing.assert_array_equal(out[::4], c)                                   # corners start their edges
    on_edge = np.isclose(out[:, 0], 10) | np.isclose(out[:, 0], 50) | np.isclose(out[:, 1], 20) | np.isclose(out[:, 1], 80)
    assert on_edge.all()
    # clockwise on screen (y down): positive shoelace area
    x, y = out[:, 0], out[:, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
    assert len({tuple(p) for p in out}) == 16
    with pytest.raises(ValueError, match="positive integer"):
        geometry.rect_outline(rect, 0)
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        geometry.rect_corners((1, 2, 3))


def test_inside():
    assert geometry.inside([[0, 0], [100, 50]], (100, 50))
    assert not geometry.inside([[0, 0], [100, 50]], (100, 50), margin=1.0)
    assert not geometry.inside([[-0.01, 3]], (100, 50))


# ---------------------------------------------------------------------- EXIF orientation
def _pil_displayed(stored: np.ndarray, tag: int) -> np.ndarray:
    exif = Image.Exif()
    exif[0x0112] = tag
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif.tobytes())
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))


@pytest.mark.parametrize("tag", geometry.exif_tags())
def test_exif_orientation_round_trips_and_matches_pil(tag):
    stored = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    shown = geometry.to_displayed(stored, tag)
    np.testing.assert_array_equal(shown, _pil_displayed(stored, tag))
    np.testing.assert_array_equal(geometry.to_stored(shown, tag), stored)
    np.testing.assert_array_equal(geometry.to_displayed(geometry.to_stored(shown, tag), tag), shown)
    # what the simulator stores for this tag is displayed by PIL as the photo it meant
    np.testing.assert_array_equal(_pil_displayed(np.ascontiguousarray(geometry.to_stored(shown, tag)), tag), shown)
    # the coordinate map sends every stored pixel centre onto the displayed pixel of that value
    M, size = geometry.orientation_matrix(tag, (7, 5))
    assert size == (shown.shape[1], shown.shape[0])
    ys, xs = np.mgrid[0:5, 0:7]
    centres = np.column_stack([xs.ravel(), ys.ravel()]) + 0.5
    idx = np.rint(geometry.map_points(M, centres) - 0.5).astype(int)
    np.testing.assert_array_equal(shown[idx[:, 1], idx[:, 0]], stored[ys.ravel(), xs.ravel()])
    np.testing.assert_allclose(geometry.map_points(np.linalg.inv(M), geometry.map_points(M, centres)), centres,
                               atol=1e-12)


def test_unknown_orientation():
    with pytest.raises(ValueError, match="1..8"):
        geometry.to_displayed(np.zeros((2, 3)), 9)
    M, size = geometry.orientation_matrix(0, (7, 5))   # readers treat a bad tag as "as stored"
    assert size == (7, 5) and (M == np.eye(3)).all()


def test_callers_use_the_one_table():
    assert ingest.orientation_matrix is geometry.orientation_matrix
    assert ingest._transform is geometry.map_points and simulate._project is geometry.map_points
