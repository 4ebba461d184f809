"""The channel's fused stages compute what their plain autograd formulations compute (outputs and
gradients), and chunked EOT gradients are the one-batch gradient."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physical import attacks as atk
from physical.channel import LUMA, Channel, cat_theta, jpeg, quant_tables, theta_rows

SIZE = 32


def plain_printer(x, t):
    luma = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    grey = (x * luma).sum(1, keepdim=True)
    s = t.saturation.view(-1, 1, 1, 1)
    v = ((s * x + (1 - s) * grey) / 255.0).clamp(1e-4, 1.0)
    black = t.black.view(-1, 1, 1, 1)
    u = v ** t.gamma.view(-1, 1, 1, 1)
    k = t.plug.view(-1, 1, 1, 1)   # the shadow plug: quadratic below the knee, linear above, renormalised
    u = torch.where(k > 0, torch.where(u < k, u ** 2 / (2 * k.clamp_min(1e-6)), u - k / 2) / (1 - k / 2), u)
    return (black + (t.white.view(-1, 3, 1, 1) - black) * u) * 255.0


def plain_light_noise(y, t):
    y = y * F.interpolate(t.gain, size=y.shape[-2:], mode="bilinear", align_corners=True)
    std = torch.sqrt(t.shot.view(-1, 1, 1, 1) * y.clamp(0.0, 255.0) + t.read.view(-1, 1, 1, 1) ** 2)
    return y + std * t.noise_scale.view(-1, 1, 1, 1) * t.z[:, :, :y.shape[-2], :y.shape[-1]]


def plain_jpeg(x, quality):
    """The JPEG before fusion: chroma converted at full resolution, quantisation as divisions."""
    from physical.channel import _RGB_TO_YCC, _YCC_TO_RGB, _dct2

    def blocks_dct(v, table):
        B, C, H, W = v.shape
        K = _dct2(v.dtype, v.device)
        b = v.reshape(B, C, H // 8, 8, W // 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(B, -1, 64)
        t = table.reshape(B, 1, 64)
        q = (b @ K.T) / t
        r = torch.round(q)
        q = r + (q - r) ** 3
        return ((q * t) @ K).reshape(B, C, H // 8, W // 8, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)

    qy, qc = quant_tables(quality)
    ycc = torch.einsum("ij,bjhw->bihw", torch.tensor(_RGB_TO_YCC), x)
    y = blocks_dct(ycc[:, :1] - 128.0, qy)
    c = F.interpolate(blocks_dct(F.avg_pool2d(ycc[:, 1:], 2), qc), scale_factor=2, mode="bilinear",
                      align_corners=False)
    return torch.einsum("ij,bjhw->bihw", torch.tensor(_YCC_TO_RGB), torch.cat([y + 128.0, c], 1))


def inputs(n=4, seed=0):
    """Float images (ties of the JPEG rounding have probability 0) with some exact 0 and 255 pixels,
    where the clamps' gradients are decided."""
    x = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 255
    x[:, :, :3, :3] = 255.0
    x[:, :, -3:, -3:] = 0.0
    return x.float()


def value_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad((out * w).sum(), x)
    return out.detach(), g


@pytest.mark.parametrize("preset", ["typical", "harsh", "phone"])
@pytest.mark.parametrize("stages, plain", [
    (("printer",), plain_printer),
    (("light", "noise"), plain_light_noise),
    (("noise",), lambda y, t: plain_light_noise(y, type(t)(**{**t.__dict__, "gain": torch.ones_like(t.gain)}))),
    (("light",), lambda y, t: y * F.interpolate(t.gain, size=y.shape[-2:], mode="bilinear", align_corners=True)),
])
def test_fused_stages_match_their_plain_formulation(preset, stages, plain):
    ch = Channel(preset, stages=stages, size=SIZE)
    theta = ch.sample(4, np.random.default_rng(2))
    x = inputs()
    ours, g_ours = value_and_grad(lambda v: ch(v, theta), x)
    theirs, g_theirs = value_and_grad(lambda v: plain(v, theta).clamp(0.0, 255.0), x)
    assert torch.allclose(ours, theirs, atol=1e-3, rtol=1e-5)
    assert torch.allclose(g_ours, g_theirs, atol=1e-4, rtol=1e-4)
    assert (g_ours == 0).sum() == (g_theirs == 0).sum()   # the clamps pass no gradient at the same pixels


@pytest.mark.parametrize("quality", [60, 92])
def test_fused_jpeg_matches_the_plain_one(quality):
    x = inputs(seed=3)
    q = torch.full((4,), float(quality))
    ours, g_ours = value_and_grad(lambda v: jpeg(v, q), x)
    theirs, g_theirs = value_and_grad(lambda v: plain_jpeg(v, q), x)
    assert (ours - theirs).abs().max() < 1e-2
    assert torch.allclose(g_ours, g_theirs, atol=1e-3, rtol=1e-3)


def test_theta_rows_cuts_zero_padding_only():
    ch = Channel("harsh", size=SIZE)
    sharp = Channel("mild", size=SIZE).sample(2, np.random.default_rng(0))
    theta = cat_theta([sharp, ch.sample(2, np.random.default_rng(1))])   # mild's kernels zero-padded
    part = theta_rows(theta, 0, 2)
    assert part.kernel.shape[-1] == sharp.kernel.shape[-1] < theta.kernel.shape[-1]
    assert torch.equal(part.kernel, sharp.kernel) and torch.equal(part.z, theta.z[:2])
    assert part.info["A"].shape[0] == 2
    x = inputs(4)[:2]
    blur = Channel("harsh", stages=("blur",), size=SIZE)
    assert torch.allclose(blur(x, part), blur(inputs(4), cat_theta([sharp, sharp]))[:2], atol=1e-4)  # cut vs zero-padded


@pytest.mark.parametrize("n, k, size", [(4, 8, 8), (4, 3, 8), (2, 16, 8), (3, 5, 8), (1, 20, 8), (5, 1, 8), (2, 4, 1)])
def test_eot_chunks_cover_the_samples_and_keep_images_whole(n, k, size):
    ranges = atk.eot_chunks(n, k, size)
    assert ranges[0][0] == 0 and ranges[-1][1] == n * k
    assert all(a < b and b == c for (a, b), (c, _) in zip(ranges, ranges[1:]))
    for a, b in ranges:
        assert b - a <= max(size, 1) or b - a <= k
        whole = a % k == 0 and b % k == 0
        assert whole or a // k == (b - 1) // k      # a part of one image, or whole images


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(5, 3 * SIZE * SIZE, generator=g) * 0.05

    def forward(self, x):
        return (x / 255.0).flatten(1) @ self.w.T


@pytest.mark.parametrize("samples", [3, 8, 12])
def test_chunked_eot_gradient_is_the_one_batch_gradient(samples):
    ch = Channel("typical", size=SIZE)
    model, x, y = Linear(), inputs(3), torch.tensor([0, 1, 2])

    def grad(chunk):
        rngs = [np.random.default_rng([5, i]) for i in range(3)]
        return atk.eot_gradient(model, ch, x, y, samples, rngs, chunk=chunk)
    one = grad(10 ** 6)
    for chunk in (None, 1, 4, 8):
        assert torch.allclose(grad(chunk), one, atol=1e-6, rtol=1e-5)
    assert one.abs().sum() > 0
