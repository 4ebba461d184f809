"""physical/channel_ops.py computes what the library calls it replaced compute (kornia's warp_affine
and filter2d, torch's bilinear interpolate, avg_pool2d, replicate pad and clamp, and the channel's
JPEG as it was), values and input gradients, so the EOT channel's maths did not change."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.filters import filter2d
from kornia.geometry.transform import warp_affine

from physical import channel_ops as ops
from physical.channel import STAGES, Channel, Geometry, cat_theta


def images(n=4, size=32, seed=0, lo=1.0, hi=254.0):
    """Floats strictly inside (lo, hi): no clamp sits on a bound, where a last-bit difference would
    flip its gradient."""
    g = torch.Generator().manual_seed(seed)
    return lo + torch.rand(n, 3, size, size, generator=g, dtype=torch.float64).float() * (hi - lo)


def value_and_grad(fn, x, seed=1):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (g,) = torch.autograd.grad((out * w).sum(), x)
    return out.detach(), g


def assert_same(fn_ours, fn_ref, x, atol=1e-4, gtol=1e-5):
    ours, g_ours = value_and_grad(fn_ours, x)
    ref, g_ref = value_and_grad(fn_ref, x)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=atol, rtol=1e-6), (ours - ref).abs().max()
    assert torch.allclose(g_ours, g_ref, atol=gtol * g_ref.abs().max(), rtol=1e-5), (g_ours - g_ref).abs().max()


@pytest.mark.parametrize("preset", ["typical", "harsh"])
@pytest.mark.parametrize("size", [32, 21])
def test_warp_is_kornias_warp_affine(preset, size):
    theta = Channel(preset, size=size).sample(4, np.random.default_rng(3))
    M = theta.affine.clone()
    M[:, :, 2] += torch.tensor([[0.0, 0.0], [1.6, -0.7], [-2.3, 0.4], [0.2, 3.1]])   # shifts past the border too
    ref = lambda v: warp_affine(v, M, (size, size), mode="bilinear", padding_mode="border", align_corners=True)
    # M⁻¹ in float64 here, float32 in kornia: ~1e-5 px apart, so ~1e-3 levels where the image is steep
    assert_same(lambda v: ops.warp(v, M), ref, images(size=size), atol=5e-3, gtol=1e-4)


@pytest.mark.parametrize("k, size", [(1, 16), (3, 16), (13, 32), (25, 16), (25, 8)])
def test_blur_is_kornias_filter2d(k, size):
    g = torch.Generator().manual_seed(k)
    kernel = torch.rand(4, k, k, generator=g)
    kernel /= kernel.sum((1, 2), keepdim=True)
    assert_same(lambda v: ops.blur(v, kernel), lambda v: filter2d(v, kernel, border_type="replicate"),
                images(size=size), atol=1e-3)


@pytest.mark.parametrize("k, h, w", [(15, 40, 24), (17, 9, 30), (25, 64, 64)])
def test_fft_blur_is_the_grouped_convolution(k, h, w):
    """From FFT_KERNEL up `blur` correlates by FFTs: the direct grouped convolution's values and
    gradients, on images not square and kernels with negative lobes (the phone look's sharpening)."""
    assert k >= ops.FFT_KERNEL
    g = torch.Generator().manual_seed(k)
    kernel = torch.rand(4, k, k, generator=g) - 0.3
    kernel /= kernel.sum((1, 2), keepdim=True)

    def direct(v):
        B, C = v.shape[:2]
        p = F.pad(v, [k // 2] * 4, mode="replicate").reshape(1, B * C, h + k - 1, w + k - 1)
        return F.conv2d(p, kernel.repeat_interleave(C, 0).unsqueeze(1), groups=B * C).view(B, C, h, w)
    assert_same(lambda v: ops.blur(v, kernel), direct, images(size=max(h, w))[..., :h, :w], atol=2e-3)


@pytest.mark.parametrize("h, size", [(1, 8), (6, 16), (12, 8)])
def test_replicate_pad_backward_is_torchs(h, size):
    assert_same(lambda v: ops._ReplicatePad.apply(v, h), lambda v: F.pad(v, (h, h, h, h), mode="replicate"),
                images(size=size), atol=0, gtol=1e-6)


def test_pool_and_upsampling_are_torchs():
    x = images(size=32)
    assert_same(ops._Pool2.apply, lambda v: F.avg_pool2d(v, 2), x, gtol=1e-6)
    assert_same(ops._Up2.apply, lambda v: F.interpolate(v, scale_factor=2, mode="bilinear", align_corners=False),
                images(size=16), atol=1e-4, gtol=1e-6)


def test_light_gain_is_bilinear_interpolation():
    gain = 0.5 + torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(gain, size=(24, 40), mode="bilinear", align_corners=True)
    assert torch.allclose(ops.light_gain(gain, 24, 40), ref, atol=1e-6)


def test_clamp_passes_gradient_where_torch_does():
    u = torch.tensor([-1.0, 0.0, 1e-30, 1e-6, 127.5, 254.99998, 255.0, 255.00002, 300.0])
    for lo, hi in ((0.0, 255.0), (1e-4, 1.0)):
        v = (u if hi > 1 else u / 255).clone()
        assert_same(lambda t: ops.clamp(t, lo, hi), lambda t: t.clamp(lo, hi), v, atol=0, gtol=0)
        ours = value_and_grad(lambda t: ops.clamp(t, lo, hi), v)[1]
        ref = value_and_grad(lambda t: t.clamp(lo, hi), v)[1]
        assert torch.equal(ours == 0, ref == 0)


def jpeg_before(x, quality):
    """The channel's JPEG before channel_ops: torch's pooling and upsampling, einsum colour."""
    from physical.channel_ops import _RGB_TO_YCC, _YCC_TO_RGB, LUMA, _blocks_dct, quant_tables

    qy, qc = quant_tables(quality.to(x.dtype))
    to_ycc, to_rgb = torch.tensor(_RGB_TO_YCC), torch.tensor(_YCC_TO_RGB)
    luma = x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]
    y = _blocks_dct(luma - 128.0, qy)
    c = torch.einsum("ij,bjhw->bihw", to_ycc[1:], F.avg_pool2d(x, 2))
    c = torch.einsum("ij,bjhw->bihw", to_rgb[:, 1:], _blocks_dct(c, qc))
    return F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False) + (y + 128.0)


@pytest.mark.parametrize("quality", [60, 92])
def test_jpeg_is_the_jpeg_before(quality):
    q = torch.full((4,), float(quality))
    # the rounding jumps at half-integers: a last-bit difference may move one coefficient by a step,
    # so values are held to 1e-2 on an input where none does, and gradients to float tolerance
    assert_same(lambda v: ops.jpeg(v, q), lambda v: jpeg_before(v, q), images(size=32, seed=3), atol=1e-2, gtol=1e-5)


@pytest.mark.parametrize("preset", ["typical", "harsh", "broad"])
def test_channel_is_the_channel_before(preset):
    """Every stage but the JPEG (held above) through the library calls the stages used before."""
    from physical.channel import _LightNoise, _Printer

    stages = tuple(s for s in STAGES if s != "jpeg")
    ch = Channel(preset, stages=stages, size=32)
    theta = cat_theta([ch.sample(2, np.random.default_rng([7, i])) for i in range(2)])

    def before(y):
        y = _Printer.apply(y, theta.saturation, theta.gamma, theta.black, theta.white, theta.plug)
        y = warp_affine(y, theta.affine, (32, 32), mode="bilinear", padding_mode="border", align_corners=True)
        y = filter2d(y, theta.kernel, border_type="replicate")
        gain = F.interpolate(theta.gain, size=(32, 32), mode="bilinear", align_corners=True)
        cz = theta.noise_scale.view(-1, 1, 1, 1) * theta.z
        y = _LightNoise.apply(y, gain, theta.shot.view(-1, 1, 1, 1), theta.read.view(-1, 1, 1, 1) ** 2, cz)
        return y.clamp(0.0, 255.0)
    # mid-tones, so that no clamp sits within float error of a bound
    assert_same(lambda v: ch(v, theta), before, images(size=32, lo=60, hi=180), atol=5e-3, gtol=1e-4)


def test_phone_channel_through_fft_blur_is_the_direct_one(monkeypatch):
    """The phone table's point-spread functions (sharpened, 25 px) take the FFT path inside the channel;
    forcing the grouped convolution gives the same samples and gradients (JPEG left out: float-level
    differences can move its rounding by a quantisation step)."""
    # a 48-px crop of a print at 224-px scale (crop pixels the size of the 224-px channel's)
    ch = Channel("phone", Geometry(image_mm=Geometry().image_mm * 48 / 224), (*(s for s in STAGES if s != "jpeg"), "look"), 48)
    theta = ch.sample(3, np.random.default_rng(11))
    assert theta.kernel.shape[-1] >= ops.FFT_KERNEL and (theta.kernel < 0).any()
    x = images(n=3, size=48, lo=60, hi=180)
    fft = value_and_grad(lambda v: ch(v, theta), x)
    monkeypatch.setattr(ops, "FFT_KERNEL", 10 ** 6)
    direct = value_and_grad(lambda v: ch(v, theta), x)
    assert torch.allclose(fft[0], direct[0], atol=2e-3, rtol=0), (fft[0] - direct[0]).abs().max()
    assert torch.allclose(fft[1], direct[1], atol=1e-4 * direct[1].abs().max(), rtol=0)


def test_inside_under_compile_is_the_eager_mask():
    """`inside`'s branch for torch.compile (a comparison-free expression: inductor stores bool masks
    slowly) gives the eager mask, bounds and values just beside them included. aot_eager traces as
    torch.compile does (is_compiling() is true) without building C++ kernels."""
    u = torch.cat([images(2, 8).flatten(), torch.tensor([0.0, 255.0, -1e-3, 255.001, 1e-6, 254.9999, 1e-4, 1.0])])
    torch._dynamo.reset()
    traced = torch.compile(lambda v: ops.inside(v, 0.0, 255.0), backend="aot_eager")
    assert torch.equal(traced(u), ops.inside(u, 0.0, 255.0))
    assert torch.equal(torch.compile(lambda v: ops.inside(v, 1e-4, 1.0), backend="aot_eager")(u / 255),
                       ops.inside(u / 255, 1e-4, 1.0))
