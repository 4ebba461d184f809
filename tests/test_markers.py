"""physical.markers: dictionary, id scheme, detection and identification."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from physical import markers as M


def test_marker_image_is_the_dictionary_marker():
    bits = M.marker_image(7, M.CELLS)
    assert bits.shape == (8, 8) and set(np.unique(bits)) <= {0, 1}
    # one-cell black border, data bits as OpenCV draws them
    assert not bits[0].any() and not bits[-1].any() and not bits[:, 0].any() and not bits[:, -1].any()
    ref = cv2.aruco.generateImageMarker(M.dictionary(), 7, 8 * 10)[5::10, 5::10]
    assert np.array_equal(bits, (ref > 127).astype(np.uint8))
    wide = M.marker_image(7, 10)                     # two-cell border, same code inside
    assert np.array_equal(wide[1:-1, 1:-1], bits) and not wide[1].any()
    with pytest.raises(ValueError):
        M.marker_image(7, 7)
    with pytest.raises(ValueError):
        M.marker_image(1000)


def test_id_scheme_round_trip_5000_slots():
    key = M.run_key("r1")
    codes = np.array([M.slot_ids(n, key) for n in range(M.MAX_SLOTS)])
    assert codes.shape == (5000, 4)
    # every id is a printable id of its role's range
    for role in range(4):
        assert all(M.split_id(i) is not None and M.split_id(i)[0] == role for i in codes[:, role])
    # no two slots share two ids: every pair of roles identifies the slot ...
    for a, b in itertools.combinations(range(4), 2):
        assert len({(x, y) for x, y in codes[:, [a, b]]}) == 5000
    # ... and decoding from any two markers gives the slot back
    for n in range(0, 5000, 7):
        for a, b in itertools.combinations(range(4), 2):
            assert M.decode_slot({a: codes[n, a], b: codes[n, b]}, key) == n
        assert M.decode_slot(dict(enumerate(codes[n])), key) == n
        assert M.decode_tag(dict(enumerate(codes[n]))) == key.tag
    # ids never repeat within MAX_SLOTS_PER_PAGE consecutive slots (so never on one page)
    for start in range(0, 5000 - M.MAX_SLOTS_PER_PAGE, 61):
        window = codes[start:start + M.MAX_SLOTS_PER_PAGE].ravel()
        assert len(set(window.tolist())) == window.size
    # markers of two different slots are not a codeword
    assert M.decode_slot({0: codes[3, 0], 1: codes[4, 1], 2: codes[3, 2]}, key) is None


def test_other_run_is_recognised_by_its_tag():
    mine, other = M.run_key("r1"), M.run_key("r2")
    assert mine != other and mine.tag != other.tag
    for n in range(0, 5000, 97):
        ids = dict(enumerate(M.slot_ids(n, other)))
        assert M.decode_tag(ids) == other.tag
        for trio in itertools.combinations(range(4), 3):
            assert M.decode_slot({r: ids[r] for r in trio}, mine) is None


def _marker_canvas(ids, side=60, quiet=30):
    """White canvas with markers in a row; returns (image, {id: corners in px, edge convention})."""
    w = len(ids) * (side + quiet) + quiet
    img = np.full((side + 2 * quiet, w), 255, np.uint8)
    truth = {}
    for k, i in enumerate(ids):
        x, y = quiet + k * (side + quiet), quiet
        img[y:y + side, x:x + side] = cv2.aruco.generateImageMarker(M.dictionary(), i, side)
        truth[i] = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], float)
    return img, truth


def test_detect_finds_markers_at_their_corners_after_warp_blur_and_jpeg():
    ids = [3, 250, 512, 999]
    img, truth = _marker_canvas(ids)
    img = cv2.copyMakeBorder(img, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=255)
    truth = {i: c + 60 for i, c in truth.items()}
    h, w = img.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[40, 30], [w * 0.8 + 40, 60], [w * 0.85 + 50, h * 0.9 + 40], [20, h * 0.8 + 30]])
    H = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(img, H, (w + 100, h + 100), flags=cv2.INTER_AREA, borderValue=255)
    photo = cv2.GaussianBlur(photo, (0, 0), 1.0)
    photo = cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_GRAYSCALE)
    bgr = cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR)
    for image in (photo, bgr):
        dets = M.detect(image)
        assert sorted(d.id for d in dets) == ids
        for d in dets:
            # warpPerspective maps pixel centres: shift to centres, map, shift back
            want = cv2.perspectiveTransform((truth[d.id] - 0.5).reshape(-1, 1, 2), H).reshape(-1, 2) + 0.5
            assert d.corners_px.shape == (4, 2) and d.corners_px.dtype == np.float64
            assert np.abs(d.corners_px - want).max() < 1.0


def test_detect_rotated_marker_keeps_printed_corner_order():
    img, truth = _marker_canvas([42])
    rot = np.ascontiguousarray(np.rot90(img))         # printed TL now at the bottom-left
    (d,) = M.detect(rot)
    h = img.shape[1]
    x, y = truth[42][0]                              # printed TL corner (x, y) → (y, h - x) after rot90
    assert np.abs(d.corners_px[0] - [y, h - x]).max() < 0.5


def test_detector_with_ids_first_finds_the_same_markers_as_without():
    """markers.Detector(ids=…) only reorders the dictionary (speed): same ids, same corners, same
    order, with or without the photographed markers among `ids`, and markers of ids not given
    (another run's sheet) still found; textured blocks give candidates that are no marker."""
    ids = [0, 3, 250, 251, 512, 700, 998, 999]
    img, _ = _marker_canvas(ids, side=48, quiet=24)
    rng = np.random.default_rng(0)
    texture = (rng.random((3, img.shape[1] // 24)) > 0.5).astype(np.uint8) * 255
    img = np.vstack([img, cv2.resize(texture, (img.shape[1], 36), interpolation=cv2.INTER_NEAREST)])
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_GRAYSCALE)
    ref = M.Detector()(img)
    assert sorted(d.id for d in ref) == ids
    for first in ([3, 512], ids, [1, 2, 600], []):
        got = M.Detector(ids=first)(img)
        assert [d.id for d in got] == [d.id for d in ref]
        assert all(np.array_equal(a.corners_px, b.corners_px) for a, b in zip(got, ref))
    assert [d.id for d in M.detect(img, ids=[3, 512])] == sorted(ids)


def test_detect_empty_and_bad_input():
    assert M.detect(np.full((200, 300), 255, np.uint8)) == []
    with pytest.raises(ValueError):
        M.detect(np.zeros((20, 20), np.float32))


def _fake_layout(run="t", n_pages=2, per_page=4):
    """A layout.json-shaped dict: a row of images 40 mm wide, markers 8 mm, gap 2 mm."""
    key = M.run_key(run)
    pages, n = [], 0
    for p in range(n_pages):
        slots = []
        for s in range(per_page):
            rect = [10 + 45 * s, 30, 50 + 45 * s, 70]
            corners = M.slot_marker_corners(rect, 8, 2)
            slots.append({"slot": s, "index": n, "image_id": f"img{n // 2}", "variant": "clean" if n % 2 == 0 else "adv",
                          "rect_mm": rect,
                          "markers": [{"id": i, "role": M.ROLES[r], "corners_mm": c.tolist()}
                                      for r, (i, c) in enumerate(zip(M.slot_ids(n, key), corners))]})
            n += 1
        pages.append({"page": p + 1, "slots": slots})
    return {"run": run, "run_tag": key.as_dict(), "pages": pages}


def _detections(layout, page, scale=10.0, shift=(100.0, 50.0), drop=()):
    out = []
    for slot in layout["pages"][page - 1]["slots"]:
        for m in slot["markers"]:
            if (slot["slot"], m["role"]) in drop:
                continue
            out.append(M.Detection(m["id"], np.asarray(m["corners_mm"]) * scale + shift))
    return out


def test_identify_pages_slots_and_points():
    layout = _fake_layout()
    idf = M.identify(_detections(layout, 2), layout)
    assert idf.status == "ok" and idf.reason is None and idf.pages == [2]
    assert [(s.page, s.slot, s.markers_found) for s in idf.slots] == [(2, k, 4) for k in range(4)]
    s0 = idf.slots[0]
    assert s0.image_id == "img2" and s0.variant == "clean" and s0.markers_expected == 4
    assert np.allclose(s0.points_px, s0.points_mm * 10 + [100, 50])
    assert idf.page_points_mm[2].shape == (64, 2)


def test_identify_with_few_markers_of_one_image():
    layout = _fake_layout()
    # only slot 1's TL, TR and BR are visible: still identified (3 ids fix the layout's tag)
    ids1 = [m["id"] for m in layout["pages"][0]["slots"][1]["markers"]]
    only = [d for d in _detections(layout, 1) if d.id in (ids1[0], ids1[1], ids1[2])]
    idf = M.identify(only, layout)
    assert idf.status == "ok" and [(s.slot, s.markers_found) for s in idf.slots] == [(1, 3)]
    assert len(idf.slots[0].points_mm) == 12 and idf.used == list(range(3))
    # two markers alone are refused: any two markers of any sheet decode to some slot
    # (the rs241-v1 rule accepted them; markers.py "Identification rule")
    two = [d for d in only if d.id != ids1[1]]
    idf = M.identify(two, layout)
    assert idf.status == "unknown markers" and "has 3 of them" in idf.reason
    # on a page confirmed by another slot, one marker is enough for its slot
    dets = _detections(layout, 1, drop=[(3, "TR"), (3, "BR"), (3, "BL")])
    idf = M.identify(dets, layout)
    found = {s.slot: s.markers_found for s in idf.slots}
    assert found == {0: 4, 1: 4, 2: 4, 3: 1}
    assert len(idf.slots[3].points_mm) == 16          # its own marker + the 3 nearest others
    # a single marker alone identifies nothing
    assert M.identify(only[:1], layout).status == "unknown markers"


def test_identify_rejects_a_misplaced_marker():
    layout = _fake_layout()
    dets = _detections(layout, 1)
    dets[5] = M.Detection(dets[5].id, dets[5].corners_px + [400.0, 300.0])   # a false detection far away
    idf = M.identify(dets, layout)
    assert idf.status == "ok"
    assert {s.slot: s.markers_found for s in idf.slots}[1] == 3
    assert len(idf.page_points_mm[1]) == 15 * 4


def test_identify_statuses():
    layout = _fake_layout("t")
    assert M.identify([], layout).status == "no markers"
    other = _fake_layout("someone-else")
    idf = M.identify(_detections(other, 1), layout)
    assert idf.status == "other run" and idf.slots == [] and "another run" in idf.reason
    foreign = [M.Detection(245, np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float))]
    assert M.identify(foreign, layout).status == "unknown markers"


def test_side_px_is_numpys_mean_edge_length_to_the_bit():
    # side_px is computed in plain floats for speed; thresholds (identify's tolerance, ingest's
    # second detection scale) compare it, so it must be the very float numpy's formula gives
    rng = np.random.default_rng(0)
    for k in range(4000):
        c = rng.uniform(0, 4000, (1, 2)) + rng.normal(0, 10 ** rng.uniform(-1, 3), (4, 2))
        if k % 2:
            c = np.round(c, k % 4)
        expected = float(np.mean(np.linalg.norm(c - np.roll(c, -1, axis=0), axis=1)))
        assert M.Detection(1, c).side_px == expected
