"""The differentiable channel: its stages match simulate's maths, θ follows the shared table,
and on real photos it stands for simulate → ingest."""
import math

import numpy as np
import pytest
import torch

from physical import simulate
from physical.channel import AREA_VAR_CROP, RESAMPLE_VAR_PHOTO, Channel, Geometry, _light_gain, _psf, cat_theta
from physical.errors import PhysicalError
from physical.presets import PRESETS


def test_simulate_and_channel_read_one_table():
    assert simulate.PRESETS is PRESETS
    ch = Channel("harsh")
    assert ch.table is PRESETS["harsh"]
    with pytest.raises(PhysicalError, match="unknown --channel 'glossy'"):
        Channel("glossy")


def test_no_stages_is_the_identity_and_theta_is_seeded():
    x = torch.rand(3, 3, 32, 32) * 255
    ch = Channel("typical", stages=(), size=32)
    assert torch.equal(ch(x, ch.sample(3, np.random.default_rng(0))), x)
    full = Channel("typical", size=32)
    a = full(x, full.sample(3, np.random.default_rng(5)))
    b = full(x, full.sample(3, np.random.default_rng(5)))
    c = full(x, full.sample(3, np.random.default_rng(6)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 255


def test_printer_stage_matches_simulate_print_page():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)   # RGB
    ch = Channel("harsh", stages=("printer",), size=8)
    theta = ch.sample(1, np.random.default_rng(2))
    printer = {"saturation": float(theta.saturation), "gamma": float(theta.gamma), "black": float(theta.black),
               "paper_white_bgr": theta.white[0].tolist()[::-1], "ink_blur_mm": 0.0}
    ours = ch(torch.from_numpy(img).permute(2, 0, 1)[None].float(), theta)[0].permute(1, 2, 0).numpy()
    theirs = simulate.print_page(np.ascontiguousarray(img[..., ::-1]), 1.0, printer)[..., ::-1]
    assert np.abs(ours - theirs).max() <= 1.6   # simulate rounds twice (saturation, then its LUT)


def test_shadow_plug_flattens_only_the_shadows_and_only_where_the_table_has_it():
    from physical.presets import PHONE

    assert (Channel("typical").sample(8, np.random.default_rng(0)).plug == 0).all()   # simulate's presets: none
    assert (Channel("phone").sample(64, np.random.default_rng(0)).plug > 0.15).any()
    grey = torch.linspace(0, 255, 256).view(1, 1, 1, 256).expand(2, 3, 1, 256).contiguous()
    fixed = {**PHONE, "gamma": (1.0, 1.0), "saturation": (1.0, 1.0), "black": (0.05, 0.05), "paper_white": (0.95, 0.95)}
    out = {}
    for k in (0.0, 0.3):
        ch = Channel({**fixed, "shadow_plug": (k, k)}, stages=("printer",), size=8)
        theta = ch.sample(2, np.random.default_rng(3))
        out[k] = ch(grey, theta)[0].mean(0)[0]   # the tone curve, averaged over the paper tint's channels
    flat, plugged = out[0.0], out[0.3]
    slope = plugged.diff()
    assert (slope >= 0).all() and torch.allclose(plugged[[0, -1]], flat[[0, -1]], atol=0.2)   # ink black, paper white kept
    knee = int(0.3 * 255)
    assert slope[:20].mean() < 0.25 * slope[150:].mean()   # the darkest tones nearly solid ink
    assert slope[150:].mean() > flat.diff()[150:].mean()   # above the knee, steeper (the same range)
    assert abs(slope[knee + 1] - slope[knee - 2]) < 0.05 * slope[150:].mean()  # C¹ at the knee: no kink
    assert (plugged[:knee] < flat[:knee]).all()


def test_light_gain_matches_simulate_light():
    frame = (400, 300)
    cam = {"gradient_angle_deg": 30.0, "gradient": 0.4, "vignetting": 0.3, "white_balance_bgr": [1.05, 1.0, 0.9],
           "exposure": 0.9, "shot_noise": 0.0, "read_noise": 0.0}
    photo = np.full((frame[1], frame[0], 3), 200, np.uint8)
    simulate._light_and_noise(photo, cam, seed=0)
    corners = np.array([[50.5, 40.5], [350.5, 40.5], [350.5, 260.5], [50.5, 260.5]])  # pixel centres
    gain = _light_gain(corners, frame, cam)                          # 3×2×2, RGB, [[TL, TR], [BL, BR]]
    for (x, y), (i, j) in zip(corners, [(0, 0), (0, 1), (1, 1), (1, 0)]):
        expected = photo[int(y), int(x)][::-1]                        # RGB
        assert np.abs(200 * gain[:, i, j] - expected).max() <= 1.0


def test_blur_is_drawn_in_photo_pixels_and_mapped_to_crop_pixels():
    # the photo sees the print at r photo px per crop px: a defocus of σ photo px is σ / r crop px
    for r in (0.8, 2.0):
        A = np.eye(2)[None] * r
        k = _psf(A, np.array([2.0]), np.array([0.0]), np.zeros((1, 2)))[0]
        u = np.arange(k.shape[0]) - k.shape[0] // 2
        var_x = float((k.sum(0) * u ** 2).sum())
        assert var_x == pytest.approx((4 + RESAMPLE_VAR_PHOTO) / r ** 2 + AREA_VAR_CROP, rel=0.05)
    # motion: a line of L photo px along x → variance L²/12 / r² more along x, none along y
    k0 = _psf(np.eye(2)[None] * 2.0, np.array([0.5]), np.array([0.0]), np.zeros((1, 2)))[0]
    k1 = _psf(np.eye(2)[None] * 2.0, np.array([0.5]), np.array([0.0]), np.array([[8.0, 0.0]]))[0]
    pad = (k1.shape[0] - k0.shape[0]) // 2
    k0 = np.pad(k0, pad)
    u = np.arange(k1.shape[0]) - k1.shape[0] // 2
    extra_x = float(((k1.sum(0) - k0.sum(0)) * u ** 2).sum())
    extra_y = float(((k1.sum(1) - k0.sum(1)) * u ** 2).sum())
    assert extra_x == pytest.approx(64 / 12 / 4, rel=0.15) and abs(extra_y) < 0.02
    assert np.allclose(k1.sum(), 1.0)


def test_scale_follows_simulate_geometry():
    # a bigger print is seen at more photo pixels per crop pixel: blur shrinks in crop pixels
    small = Channel("typical", Geometry(image_mm=30.0)).sample(64, np.random.default_rng(0)).info
    large = Channel("typical", Geometry(image_mm=60.0)).sample(64, np.random.default_rng(0)).info
    ratio = np.median(large["photo_px_per_crop_px"]) / np.median(small["photo_px_per_crop_px"])
    assert ratio == pytest.approx(2.0, rel=0.05)
    r = Channel("typical").sample(200, np.random.default_rng(1)).info["photo_px_per_crop_px"]
    assert 0.6 < np.percentile(r, 5) and np.percentile(r, 95) < 2.5   # 38 mm on A4 in a 12 MP photo


def test_theta_batches_concatenate():
    ch = Channel("harsh", size=16)
    a, b = ch.sample(2, np.random.default_rng(0)), ch.sample(3, np.random.default_rng(1))
    both = cat_theta([a, b])
    assert both.kernel.shape[0] == 5 and both.z.shape[0] == 5 and both.kernel.shape[-1] % 2 == 1
    assert torch.allclose(both.kernel.sum((1, 2)), torch.ones(5))


@pytest.mark.parametrize("quality", [60, 90])
def test_fast_jpeg_agrees_with_kornia_and_with_a_real_jpeg(quality):
    import io

    from kornia.enhance import jpeg_codec_differentiable
    from PIL import Image

    from physical.channel import jpeg
    from physical.data import demo_items, load_image

    imgs = np.stack([load_image(it.path, 224, 256) for it in demo_items()[:2]])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    q = torch.full((2,), float(quality))
    ours = jpeg(x, q)
    theirs = jpeg_codec_differentiable(x / 255, q) * 255
    real = []
    for img in imgs:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
        real.append(np.asarray(Image.open(buf)))
    real = torch.from_numpy(np.stack(real)).permute(0, 3, 1, 2).float()
    assert (ours - theirs).abs().mean() < 1.0
    assert (ours - real).abs().mean() <= (theirs - real).abs().mean() + 0.05   # at least as close to libjpeg
    assert (ours - real).abs().mean() < 0.5 * (x - real).abs().mean()          # it does what JPEG does
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(jpeg(xg, q).sum(), xg)
    assert torch.isfinite(g).all() and g.abs().mean() > 0.1


def test_channel_stands_for_simulate_and_ingest_on_real_photos(tmp_path, default_model):
    """4 demo photos, printed and photographed 3 times by simulate (typical, 8 MP), against 6
    channel samples each: top-1 kept and mean colour agree (benchmarks/channel_agreement.py does
    this on 40 images: +2.3 points, ΔE 2.4)."""
    import colour
    from PIL import Image

    from physical import ingest, layout
    from physical.data import demo_items, load_image
    from physical.models import predict
    from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, sha256_bytes
    from conftest import png_bytes

    items = demo_items()[:4]
    imgs = np.stack([load_image(it.path, 224, 256) for it in items])
    ws = Workspace(tmp_path)
    entries = []
    for it, img in zip(items, imgs):
        blob = png_bytes(img)
        atomic_write_bytes(ws.printouts("t") / f"images/{it.id}/clean.png", blob)
        entries.append({"id": it.id, "source": it.id, "source_sha256": sha256_bytes(blob),
                        "label": {"index": it.label, "wnid": None, "name": None},
                        "variants": {"clean": {"file": f"images/{it.id}/clean.png", "sha256": sha256_bytes(blob),
                                               "pred": {"top5": [], "prob5": []}}}})
    atomic_write_json(ws.manifest_path("t"), {"schema": 1, "run": "t", "created": "2026-01-01T00:00:00+00:00",
                                              "model": {"spec": "default", "input_size": 224}, "attacks": {},
                                              "seed": 0, "versions": {}, "source": {"images": "demo"},
                                              "variants": ["clean"], "images": entries, "skipped": [],
                                              "summary": {"images": 4}})
    lay = layout.make_layout(ws, "t").layout
    simulate.simulate_run(ws, "t", preset="typical", photos_per_page=3, seed=3, resolution=(3264, 2448))
    state = ingest.ingest_run(ws, "t", workers=1)
    crops = state["crops"]
    assert len(crops) >= 10
    index = {it.id: n for n, it in enumerate(items)}
    crop_img = np.stack([np.asarray(Image.open(ws.captures("t") / c["file"]).convert("RGB"))
                         for c in crops])
    crop_of = np.array([index[c["image_id"]] for c in crops])
    ch = Channel("typical", Geometry(image_mm=lay["image_mm"], resolution=(3264, 2448)))
    k = 6
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    theta = cat_theta([ch.sample(k, np.random.default_rng([0, i])) for i in range(4)])
    with torch.no_grad():
        samples = ch(x.repeat_interleave(k, 0), theta).round().byte().permute(0, 2, 3, 1).numpy()
    ref = predict(default_model, imgs)[0][:, 0].numpy()
    top_crop = predict(default_model, crop_img)[0][:, 0].numpy()
    top_chan = predict(default_model, samples)[0][:, 0].numpy()
    acc_crop = np.mean([np.mean(top_crop[crop_of == i] == ref[i]) for i in range(4)])
    acc_chan = np.mean([np.mean(top_chan[i * k:(i + 1) * k] == ref[i]) for i in range(4)])
    assert abs(acc_crop - acc_chan) <= 0.25, (acc_crop, acc_chan)   # 4 images: coarse

    def lab(rgb):
        return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb / 255.0))
    de = colour.delta_E(lab(np.stack([crop_img[crop_of == i].reshape(-1, 3).mean(0) for i in range(4)])),
                        lab(np.stack([samples[i * k:(i + 1) * k].reshape(-1, 3).mean(0) for i in range(4)])),
                        method="CIE 2000")
    assert de.mean() <= 3.0, de
