"""Image sources: label resolution, mode conversion, EXIF, seeded subsets, PNG quantisation."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from physical.data import ClassTable, collect, load_image, safe_id, to_rgb
from physical.errors import PhysicalError
from physical.models import imagenet_classes
from physical.quantize import decode_png, encode_png, quantization_error, to_uint8


@pytest.fixture(scope="module")
def table():
    return ClassTable(*imagenet_classes())


def _img(path, color=(200, 30, 30), size=(40, 30)):
    Image.new("RGB", size, color).save(path)


def test_labels_from_subfolders_wnid_prefix_and_csv(tmp_path, table):
    (tmp_path / "n01440764").mkdir()
    (tmp_path / "7").mkdir()
    _img(tmp_path / "n01440764" / "a.png")
    _img(tmp_path / "7" / "b.png")
    _img(tmp_path / "n07920052_c.jpg")
    items, skipped = collect(str(tmp_path), table)
    assert {it.id: it.label for it in items} == {"n01440764_a": 0, "7_b": 7, "n07920052_c": 967}
    assert skipped == []
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nn01440764/a.png,espresso\n7/b.png,n01440764\nn07920052_c.jpg,3\n")
    items, _ = collect(str(tmp_path), table, labels_csv=str(csv))
    assert {it.id: it.label for it in items} == {"n01440764_a": 967, "7_b": 0, "n07920052_c": 3}


def test_unlabelled_and_non_image_files_are_skipped_with_reasons(tmp_path, table):
    _img(tmp_path / "n07920052_ok.png")
    _img(tmp_path / "holiday.png")
    (tmp_path / "readme.md").write_text("hi")
    items, skipped = collect(str(tmp_path), table)
    assert [it.id for it in items] == ["n07920052_ok"]
    reasons = {s.source: s.reason for s in skipped}
    assert "no label" in reasons["holiday.png"] and "not an image" in reasons["readme.md"]


def test_limit_is_a_seeded_reproducible_subset(tmp_path, table):
    for i in range(20):
        _img(tmp_path / f"n07920052_{i:02d}.png")
    a, _ = collect(str(tmp_path), table, limit=5, seed=1)
    b, _ = collect(str(tmp_path), table, limit=5, seed=1)
    c, _ = collect(str(tmp_path), table, limit=5, seed=2)
    assert [i.id for i in a] == [i.id for i in b] and len(a) == 5
    assert [i.id for i in a] != [i.id for i in c]
    with pytest.raises(PhysicalError):
        collect(str(tmp_path), table, limit=0)


def test_demo_source_has_real_labelled_photos(table):
    items, skipped = collect("demo", table)
    assert len(items) >= 5 and not skipped
    assert table.names[next(it.label for it in items if it.id == "coffee")] == "espresso"


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pillow_mode_becomes_rgb(mode):
    base = Image.new("RGB", (8, 8), (255, 255, 255))
    im = base.convert(mode) if mode not in ("I;16",) else Image.fromarray(np.full((8, 8), 65535, np.uint16))
    rgb = to_rgb(im)
    assert rgb.mode == "RGB"
    assert np.asarray(rgb).min() >= 250  # white stays white


def test_alpha_is_composited_over_white():
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb(im)).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    out = load_image(str(path), crop=20, resize=20)
    # After a 90° clockwise turn the white half is on top.
    assert out[:8].mean() > 200 and out[-8:].mean() < 50


def test_load_image_is_short_side_resize_then_centre_crop(tmp_path):
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = 255  # the centre third is white
    Image.fromarray(arr).save(tmp_path / "wide.png")
    out = load_image(str(tmp_path / "wide.png"), crop=64, resize=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[:, 8:56].min() > 240  # centre crop of a 64×192 resize is all white but its edges


def test_unreadable_and_truncated_files_raise_value_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not an image"):
        load_image(str(tmp_path / "x.png"), 32)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:200])
    with pytest.raises(ValueError):
        load_image(str(tmp_path / "cut.jpg"), 32)


def test_safe_id():
    assert safe_id("a b/c?.JPEG") == "a_b_c_.JPEG"
    assert safe_id("...") == "image"


def test_png_round_trip_is_lossless_and_quantisation_rounds_to_nearest():
    x = torch.tensor([[[[0.4, 0.5, 0.6, 254.6], [-3.0, 300.0, 127.49, 127.51]]]]).repeat(1, 3, 1, 1)
    q = to_uint8(x)[0]
    assert q[..., 0].tolist() == [[0, 0, 1, 255], [0, 255, 127, 128]]  # half to even at .5, clipped
    assert np.array_equal(decode_png(encode_png(q)), q)
    err = quantization_error(x[0], q)
    assert err["max_abs"] == pytest.approx(45.0) and 0 < err["changed_fraction"] <= 1
    exact = torch.full((3, 2, 2), 7.0)
    assert quantization_error(exact, to_uint8(exact))["changed_fraction"] == 0
