"""The channel's "phone look" (physical/channel_look.py): identity without its keys, differentiable,
the folded sharpening is blur-then-unsharp-mask, seeded, grey stays grey; the "phones" table."""
import numpy as np
import pytest
import torch
from kornia.filters import filter2d, gaussian_blur2d

from physical import channel_look as look
from physical.channel import STAGES, Channel, _psf
from physical.presets import CHANNEL_TABLES, PHONE, PHONE_LOOK, PRESETS
from physical.records import ChannelRec

SIZE = 32


def smooth_images(n=2, seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 6, 6, generator=g, dtype=torch.float64) * 200 + 25
    return torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)


def test_tables_without_look_keys_are_unchanged():
    ch = Channel("typical", size=SIZE)
    assert not ch.look and "look" not in ch.describe()["stages"]
    theta = ch.sample(3, np.random.default_rng(0))
    assert torch.equal(theta.look, torch.tensor(np.tile(look.IDENTITY, (3, 1)), dtype=torch.float32))
    y = smooth_images(3).float()
    assert torch.allclose(look.apply(y, theta.look), y, atol=1e-4)
    # look keys at their identity values: the same photo as without them (one sample, so the draws
    # before the look's are the same; noise off, as its seed is drawn after every sample)
    ident = {**PRESETS["typical"], "sharpen_amount": (0.0, 0.0), "ccm_crosstalk": (0.0, 0.0),
             "ccm_saturation": (1.0, 1.0), "tone_contrast": (0.0, 0.0), "chroma_denoise_px": (0.0, 0.0)}
    stages = tuple(s for s in STAGES if s != "noise")
    a, b = Channel("typical", size=SIZE, stages=stages), Channel(ident, size=SIZE, stages=(*stages, "look"))
    assert b.look and not Channel(ident, size=SIZE, stages=stages).look   # stages can leave it out
    ta, tb = a.sample(1, np.random.default_rng(5)), b.sample(1, np.random.default_rng(5))
    assert torch.allclose(ta.kernel, tb.kernel) and torch.allclose(a(y[:1], ta), b(y[:1], tb), atol=1e-3)


def test_look_is_differentiable():
    theta = Channel({**PRESETS["typical"], **PHONE_LOOK}, size=8).sample(2, np.random.default_rng(1))
    params = theta.look.double()
    params[:, 10] = torch.tensor([0.8, 1.3], dtype=torch.float64)     # chroma denoising on in both
    params[:, 9] = torch.tensor([0.7, -0.3], dtype=torch.float64)     # an S-curve and a flat one
    x = (torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 200 + 25)
    assert torch.autograd.gradcheck(lambda v: look.apply(v, params), (x.requires_grad_(True),))
    # the whole phones channel passes gradient to every pixel
    ch = Channel("phones", size=SIZE)
    xs = smooth_images(4).float().requires_grad_(True)
    (g,) = torch.autograd.grad(ch(xs, ch.sample(4, np.random.default_rng(3))).sum(), xs)
    assert torch.isfinite(g).all() and (g.abs().sum(1) > 0).float().mean() > 0.99


@pytest.mark.parametrize("scale", [(1.0, 1.0), (1.6, 1.1)])
def test_folded_sharpening_is_blur_then_unsharp_mask(scale):
    # A axis-aligned, so the reference unsharp mask is kornia's Gaussian (σ_s / scale crop px per axis)
    A = np.diag(scale)[None].repeat(2, 0)
    kernel = _psf(A, np.array([0.8, 0.3]), np.array([0.3, 0.2]), np.array([[1.5, 0.5], [0.0, 0.0]]))
    sharpen = np.array([[1.0, 1.5], [0.6, 0.9]])                       # (amount, σ_s photo px)
    folded = look.sharpen_kernels(kernel, A, sharpen)
    assert folded.shape[-1] > kernel.shape[-1] and np.allclose(folded.sum(axis=(1, 2)), 1)
    x = smooth_images(2, seed=4, size=64) + torch.randn(2, 3, 64, 64, dtype=torch.float64,
                                                          generator=torch.Generator().manual_seed(5)) * 20
    blurred = filter2d(x, torch.from_numpy(kernel), border_type="replicate")
    one_pass = filter2d(x, torch.from_numpy(folded), border_type="replicate")
    for i, (a, s) in enumerate(sharpen):
        sigma = (s / scale[1], s / scale[0])                           # kornia's order: (y, x)
        g = gaussian_blur2d(blurred[i:i + 1], (31, 31), sigma, border_type="replicate")
        usm = (1 + a) * blurred[i:i + 1] - a * g
        inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))   # borders are padded differently
        assert (one_pass[i:i + 1] - usm)[inner].abs().max() < 0.05 * 255 / 100, i
        # and it sharpens: more high-frequency energy than the blur alone
        lap = lambda v: (v[..., 1:-1, 1:-1] * 4 - v[..., :-2, 1:-1] - v[..., 2:, 1:-1] - v[..., 1:-1, :-2]
                         - v[..., 1:-1, 2:]).var()
        assert lap(one_pass[i]) > 1.2 * lap(blurred[i])
    # no sharpening drawn: the kernels as they were
    assert look.sharpen_kernels(kernel, A, np.zeros((2, 2))) is kernel


def test_look_is_seeded():
    ch = Channel("phones", size=SIZE)
    a, b, c = (ch.sample(6, np.random.default_rng(s)) for s in (7, 7, 8))
    assert torch.equal(a.look, b.look) and torch.equal(a.kernel, b.kernel)
    assert not torch.equal(a.look, c.look)
    x = smooth_images(6).float()
    assert torch.equal(ch(x, a), ch(x, b))


def test_grey_stays_grey():
    rng = np.random.default_rng(0)
    Ms = np.stack([look.draw(rng, PHONE_LOOK, 1.4)[0][:9].reshape(3, 3) for _ in range(200)])
    assert np.allclose(Ms.sum(axis=2), 1) and np.abs(Ms - np.eye(3)).max() > 0.1   # not the identity
    grey = torch.linspace(5, 250, SIZE * SIZE).view(1, 1, SIZE, SIZE).repeat(4, 3, 1, 1)
    params = torch.tensor(np.stack([look.draw(rng, PHONE_LOOK, 1.4)[0] for _ in range(4)]), dtype=torch.float32)
    params[:, 10] = 1.5
    out = look.apply(grey, params)
    assert (out - out[:, :1]).abs().max() < 1e-3            # R = G = B still
    assert (out - grey).abs().max() > 1                     # the tone curve did change it


def test_draws_follow_the_table():
    rng = np.random.default_rng(1)
    draws = [look.draw(rng, PHONE_LOOK, 2.0) for _ in range(300)]
    p = np.stack([d[0] for d in draws])
    sh = np.array([d[1] for d in draws])
    lo, hi = PHONE_LOOK["tone_contrast"]
    assert p[:, 9].min() >= lo and p[:, 9].max() <= hi
    lo, hi = PHONE_LOOK["chroma_denoise_px"]                 # σ in crop px = photo px / 2 here
    assert p[:, 10].min() >= lo / 2 and p[:, 10].max() <= hi / 2
    assert sh[:, 0].max() <= PHONE_LOOK["sharpen_amount"][1] and sh[:, 1].min() >= PHONE_LOOK["sharpen_sigma_px"][0]
    assert p[:, 9].std() > 0.2 and sh[:, 0].std() > 0.2   # drawn, not fixed


def test_phones_mixes_typical_and_phone():
    assert CHANNEL_TABLES["phones"] == ["typical", PHONE] and set(PHONE_LOOK) <= set(PHONE)
    ch = Channel("phones", size=SIZE)
    assert ch.look and ch.describe()["stages"][-1] == "look"
    theta = ch.sample(200, np.random.default_rng(0))
    plain = (theta.look == torch.tensor(look.IDENTITY, dtype=torch.float32)).all(1).float().mean()
    assert 0.35 < plain < 0.65, plain                         # the typical half has no look
    # the manifest records a mixture's ranges (one per member)
    rec = ChannelRec.model_validate(ch.describe())
    assert isinstance(rec.ranges, list) and rec.ranges[1]["tone_contrast"] == list(PHONE_LOOK["tone_contrast"])


def test_chroma_denoising_inside_the_jpeg_is_the_same_as_before_it():
    from physical.channel import jpeg

    y = smooth_images(2, seed=6, size=48).float() + torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(7)) * 15
    y = y.clamp(0, 255)
    params = torch.tensor(np.tile(look.IDENTITY, (2, 1)), dtype=torch.float32)
    params[:, 10] = torch.tensor([1.0, 2.5])
    q = torch.tensor([90.0, 80.0])
    inside = jpeg(y, q, look.chroma_filter(params))
    before = jpeg(look.apply(y, params), q)
    plain = jpeg(y, q)
    # the same denoising up to the extra bilinear up + 2×2 down of doing it before (which blurs a bit more)
    assert (inside - before).abs().mean() < 0.3 * (plain - before).abs().mean()
    assert look.chroma_filter(torch.tensor(np.tile(look.IDENTITY, (2, 1)))) is None


def test_edge_padding_under_compile_is_replicate_padding():
    """`_pad_edges`'s branch for torch.compile (cat of the edge rows: inductor's replication-pad backward
    fails on the strides it picks) pads and back-propagates as F.pad replicate. aot_eager traces as
    torch.compile does without building C++ kernels."""
    g = torch.Generator().manual_seed(3)
    t = torch.rand(1, 6, 9, 11, generator=g, dtype=torch.float64)
    wide, tall = (torch.rand(1, 6, *s, generator=g, dtype=torch.float64) for s in ((9, 17), (15, 11)))
    for dim, pad, w in ((-1, (3, 3, 0, 0), wide), (-2, (0, 0, 3, 3), tall)):
        torch._dynamo.reset()
        traced = torch.compile(lambda v, d=dim: look._pad_edges(v, 3, d), backend="aot_eager")
        a, b = t.clone().requires_grad_(True), t.clone().requires_grad_(True)
        out, ref = traced(a), torch.nn.functional.pad(b, pad, mode="replicate")
        assert torch.equal(out, ref)
        (ga,), (gb,) = torch.autograd.grad(out, a, w), torch.autograd.grad(ref, b, w)
        assert torch.allclose(ga, gb, rtol=0, atol=1e-12)
