"""The EOT channel's differentiable operations, written for cost on CPU (`physical/channel.py` composes them).

Each computes what the library call it replaces computes — kornia's `warp_affine` and `filter2d`,
torch's `avg_pool2d`, bilinear `interpolate` and replicate `pad` — the same products summed in
another order (tests/test_channel_ops.py holds each against its original, values and gradients).
They differ in the backward pass: the originals' CPU backwards scatter (replicate padding, 2× bilinear
upsampling, 2×2 pooling) where these gather with strided slices, and none of them allocates or
fills what it does not need. The blur's large kernels (from FFT_KERNEL px across: the phone table's
defocus, motion and sharpening reach 25) are correlated by FFTs, whose cost does not grow with the
kernel. Measured in benchmarks/eot_speed.py (docs/robust.md, "Cost").

The JPEG (`jpeg`): the maths of kornia's `jpeg_codec_differentiable` (IJG tables scaled by quality,
8×8 DCT, the cubic rounding of Shin & Song) with libjpeg's 2×2 box chroma subsampling and bilinear
("fancy") upsampling: 0.6 of the cost of this channel's earlier JPEG, itself a fifth of kornia's.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)         # cv2.COLOR_BGR2GRAY, in RGB order; JFIF's Y
MAX_KERNEL = 25                      # point-spread functions are cut to this many pixels across


def quadratic_form(d: np.ndarray, P: np.ndarray) -> np.ndarray:
    """dᵀ·P·d over the last axis (2) of d, P (…×2×2, symmetric) broadcast against d's leading axes:
    the quadratic form written out (a quarter of the cost of the three-operand einsum). The
    point-spread functions' Gaussian exponents (channel._psf, channel_look.sharpen_kernels)."""
    dx, dy = d[..., 0], d[..., 1]
    return P[..., 0, 0] * dx * dx + (P[..., 0, 1] + P[..., 1, 0]) * dx * dy + P[..., 1, 1] * dy * dy


# torch.compiler.is_compiling is torch >= 2.3; setup.cfg allows 2.1, where nothing here is compiled
compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def inside(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """1.0 where lo < u < hi, else 0.0 (u's dtype): where u.clamp(lo, hi) passes gradient in torch.
    In-place comparisons on float copies: a third of the cost of bool masks and a bool × float multiply.
    Under torch.compile the same values without comparisons: inductor (torch 2.14) saves comparison
    results for the backward as bool bytes, written by a scalar loop (~8 ms per 4×3×224² mask pair;
    benchmarks/eot_compile.py)."""
    if compiling():
        return (torch.sign(u - lo) * torch.sign(hi - u)).clamp_min(0.0)
    return u.clone().gt_(lo).mul_(u.clone().lt_(hi))


class _Clamp(torch.autograd.Function):
    """u.clamp(lo, hi) with torch's gradient (passed strictly inside), the mask kept as `inside`'s."""

    @staticmethod
    def forward(ctx, u, lo, hi):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(inside(u, lo, hi))
        return u.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return g * m, None, None


def clamp(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return _Clamp.apply(u, lo, hi)


# ---------------------------------------------------------------------------- geometry and blur
def warp(x: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """kornia `warp_affine(x, M, (H, W), mode="bilinear", padding_mode="border", align_corners=True)`:
    M (B×2×3) maps source to destination pixel coordinates (centres at integers); the grid is built
    from M⁻¹ in float64 (θ only) and sampled by torch's grid_sample, without kornia's generic path."""
    B, _, H, W = x.shape
    with torch.no_grad():
        A = torch.zeros(B, 3, 3, dtype=torch.float64, device=x.device)
        A[:, :2] = M.to(torch.float64)
        A[:, 2, 2] = 1.0
        # destination normalised [-1, 1] → destination pixels → source pixels → source normalised
        n = torch.tensor([[2 / (W - 1), 0, -1], [0, 2 / (H - 1), -1], [0, 0, 1]], dtype=torch.float64, device=x.device)
        m = (n @ torch.linalg.inv(A) @ torch.linalg.inv(n)).to(x.dtype)
        xs = torch.linspace(-1.0, 1.0, W, dtype=x.dtype, device=x.device)
        ys = torch.linspace(-1.0, 1.0, H, dtype=x.dtype, device=x.device).view(H, 1)
        grid = torch.empty(B, H, W, 2, dtype=x.dtype, device=x.device)
        for i in range(2):
            grid[..., i] = m[:, i, 0, None, None] * xs + m[:, i, 1, None, None] * ys + m[:, i, 2, None, None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class _ReplicatePad(torch.autograd.Function):
    """F.pad(x, (h, h, h, h), mode="replicate"); its backward adds the border strips onto the edge
    rows and columns (torch's CPU backward scatters pixel by pixel)."""

    @staticmethod
    def forward(ctx, x, h):
        ctx.h = h
        return F.pad(x, (h, h, h, h), mode="replicate")

    @staticmethod
    def backward(ctx, g):
        h = ctx.h
        gx = g[..., h:-h, h:-h].clone()
        gx[..., :, 0] += g[..., h:-h, :h].sum(-1)
        gx[..., :, -1] += g[..., h:-h, -h:].sum(-1)
        for edge, strip in ((0, g[..., :h, :]), (-1, g[..., -h:, :])):   # top and bottom, corners included
            gx[..., edge, :] += strip[..., h:-h].sum(-2)
            gx[..., edge, 0] += strip[..., :h].sum((-2, -1))
            gx[..., edge, -1] += strip[..., -h:].sum((-2, -1))
        return gx, None


# From this kernel size up, the blur runs as FFTs: their cost does not grow with k. 1 thread, 4×3×224²
# forward + backward per image: direct 3.2 ms at 13, 5.5 at 17, 11 at 25; FFT 3.3-4.2 ms at every k.
FFT_KERNEL = 15


def _fft_size(m: int) -> int:
    """The smallest n ≥ m of the form 16·2^a·3^b·5^c: sizes torch's CPU FFT (MKL) transforms fast
    (243 = 3⁵ or 248 = 8·31 took up to twice as long as 240 or 256)."""
    n = 16 * -(-m // 16)
    while True:
        r = n // 16
        for f in (2, 3, 5):
            while r % f == 0:
                r //= f
        if r == 1:
            return n
        n += 16


class _FFTCorrelate(torch.autograd.Function):
    """Each image of the padded p (B×C×(H+k−1)×(W+k−1)) correlated with its own k×k kernel, valid part
    (H×W): F.conv2d's maths by the convolution theorem. The transforms are at least H + k − 1 across,
    so no output reads a wrapped-around pixel; the backward correlates the zero-padded gradient with
    the flipped kernel (the product with the kernel's transform instead of its conjugate)."""

    @staticmethod
    def forward(ctx, p, kernel, H, W):
        s = (_fft_size(p.shape[-2]), _fft_size(p.shape[-1]))
        kf = torch.fft.rfft2(kernel, s=s).unsqueeze(1)                      # B×1×n×(n/2+1)
        ctx.kf, ctx.s, ctx.padded = kf, s, p.shape[-2:]
        X = torch.fft.rfft2(p, s=s)
        return torch.fft.irfft2(X.mul_(kf.conj()), s=s)[..., :H, :W].contiguous()

    @staticmethod
    def backward(ctx, g):
        G = torch.fft.rfft2(g, s=ctx.s)
        gp = torch.fft.irfft2(G.mul_(ctx.kf), s=ctx.s)[..., :ctx.padded[0], :ctx.padded[1]]
        return gp.contiguous(), None, None, None


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """kornia `filter2d(x, kernel, border_type="replicate")`: each image correlated with its own k×k
    kernel (odd k), borders replicated; one grouped convolution for the batch, or from FFT_KERNEL
    up the same correlation by FFTs (equal to float rounding: ~1e-4 of 255)."""
    B, C, H, W = x.shape
    k = kernel.shape[-1]
    if k == 1:
        return x * kernel.view(B, 1, 1, 1)
    p = _ReplicatePad.apply(x, k // 2)
    if k >= FFT_KERNEL:
        return _FFTCorrelate.apply(p, kernel.to(x.dtype), H, W)
    w = kernel.to(x.dtype).repeat_interleave(C, 0).unsqueeze(1)              # (B·C)×1×k×k
    return F.conv2d(p.reshape(1, B * C, H + k - 1, W + k - 1), w, groups=B * C).view(B, C, H, W)


def light_gain(gain: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """F.interpolate(gain (B×3×2×2), (H, W), mode="bilinear", align_corners=True): bilinear between
    the four corners, as two lerps of broadcast rows."""
    u = torch.linspace(0.0, 1.0, W, dtype=gain.dtype, device=gain.device)
    v = torch.linspace(0.0, 1.0, H, dtype=gain.dtype, device=gain.device).view(H, 1)
    top = torch.lerp(gain[..., 0, 0:1], gain[..., 0, 1:2], u).unsqueeze(-2)     # B×3×1×W
    bottom = torch.lerp(gain[..., 1, 0:1], gain[..., 1, 1:2], u).unsqueeze(-2)
    return torch.lerp(top, bottom, v)


# ---------------------------------------------------------------------------- JPEG
# IJG (libjpeg) base quantisation tables, Annex K of the JPEG standard
_QT_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_QT_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
              47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
_RGB_TO_YCC = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
_YCC_TO_RGB = [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's tables at `quality` (B): base·s/100 rounded, s = 5000/q below 50 else 200 − 2q, in [1, 255]."""
    q = quality.detach().clamp(1, 100).view(-1, 1, 1)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    out = []
    for base in (_QT_LUMA, _QT_CHROMA):
        t = torch.tensor(base, dtype=quality.dtype, device=quality.device).view(1, 8, 8)
        out.append(torch.floor((t * scale + 50.0) / 100.0).clamp(1, 255))
    return out[0], out[1]


@lru_cache(maxsize=8)
def _dct2(dtype, device) -> torch.Tensor:
    """The 2-D 8×8 DCT as one 64×64 matrix on row-major blocks: kron(D, D), D orthonormal DCT-II
    (JPEG's 8×8 DCT is D X Dᵀ); one GEMM per image instead of many tiny ones (faster on CPU than
    the separable 8-point passes, measured)."""
    k = torch.arange(8, dtype=torch.float64).view(-1, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, -1)
    d = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] = math.sqrt(1 / 8)
    return torch.kron(d, d).to(dtype=dtype, device=device)


class _Round(torch.autograd.Function):
    """Shin & Song's differentiable rounding, as kornia's: r + (z − r)³ with r = round(z);
    its derivative 3(z − r)² kept from the forward."""

    @staticmethod
    def forward(ctx, z):
        r = torch.round(z)
        d = z - r
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(d * d * 3.0)
        return d.pow_(3).add_(r)

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return g * d


def _blocks_dct(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Quantise x (B×C×H×W, H and W multiples of 8, level-shifted) in 8×8 DCT blocks; back to pixels.
    The quantisation table is folded into per-image DCT matrices (K/t forward, t·K back)."""
    B, C, H, W = x.shape
    K = _dct2(x.dtype, x.device)
    blocks = x.reshape(B, C, H // 8, 8, W // 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(B, -1, 64)
    t = table.reshape(B, 1, 64)
    q = _Round.apply(torch.bmm(blocks, K.T / t))
    out = torch.bmm(q, t.transpose(1, 2) * K)
    return out.reshape(B, C, H // 8, W // 8, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)


class _Pool2(torch.autograd.Function):
    """F.avg_pool2d(x, 2) (H, W even): the four strided quarters summed; backward a broadcast (nearest
    2× upsampling: half the cost of an expand + reshape copy)."""

    @staticmethod
    def forward(ctx, x):
        s = x[..., 0::2, 0::2] + x[..., 1::2, 0::2]
        s += x[..., 0::2, 1::2]
        s += x[..., 1::2, 1::2]
        return s.mul_(0.25)

    @staticmethod
    def backward(ctx, g):
        return F.interpolate(g * 0.25, scale_factor=2, mode="nearest")


def _up_rows(v: torch.Tensor) -> torch.Tensor:
    """Rows (dim −2) doubled as bilinear upsampling with align_corners=False does it: output row 2i
    is ¾·v[i] + ¼·v[i − 1], row 2i + 1 is ¾·v[i] + ¼·v[i + 1], the edge rows repeated."""
    *s, n, w = v.shape
    out = v.new_empty(*s, n, 2, w)
    v3 = v * 0.75
    torch.add(v3[..., 1:, :], v[..., :-1, :], alpha=0.25, out=out[..., 1:, 0, :])
    out[..., 0, 0, :] = v[..., 0, :]
    torch.add(v3[..., :-1, :], v[..., 1:, :], alpha=0.25, out=out[..., :-1, 1, :])
    out[..., -1, 1, :] = v[..., -1, :]
    return out.view(*s, 2 * n, w)


def _up_cols(v: torch.Tensor) -> torch.Tensor:
    """`_up_rows` along the columns (dim −1)."""
    *s, n = v.shape
    out = v.new_empty(*s, n, 2)
    v3 = v * 0.75
    torch.add(v3[..., 1:], v[..., :-1], alpha=0.25, out=out[..., 1:, 0])
    out[..., 0, 0] = v[..., 0]
    torch.add(v3[..., :-1], v[..., 1:], alpha=0.25, out=out[..., :-1, 1])
    out[..., -1, 1] = v[..., -1]
    return out.view(*s, 2 * n)


def _down_rows(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of `_up_rows`."""
    *s, m, w = g.shape
    g = g.view(*s, m // 2, 2, w)
    g0, g1 = g[..., 0, :], g[..., 1, :]
    out = torch.add(g0, g1).mul_(0.75)
    out[..., :-1, :].add_(g0[..., 1:, :], alpha=0.25)
    out[..., 1:, :].add_(g1[..., :-1, :], alpha=0.25)
    out[..., 0, :].add_(g0[..., 0, :], alpha=0.25)
    out[..., -1, :].add_(g1[..., -1, :], alpha=0.25)
    return out


def _down_cols(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of `_up_cols`."""
    *s, m = g.shape
    g = g.view(*s, m // 2, 2)
    g0, g1 = g[..., 0], g[..., 1]
    out = torch.add(g0, g1).mul_(0.75)
    out[..., :-1].add_(g0[..., 1:], alpha=0.25)
    out[..., 1:].add_(g1[..., :-1], alpha=0.25)
    out[..., 0].add_(g0[..., 0], alpha=0.25)
    out[..., -1].add_(g1[..., -1], alpha=0.25)
    return out


class _Up2(torch.autograd.Function):
    """F.interpolate(v, scale_factor=2, mode="bilinear", align_corners=False), separably with
    strided slices (its CPU backward scatters pixel by pixel)."""

    @staticmethod
    def forward(ctx, v):
        return _up_rows(_up_cols(v))

    @staticmethod
    def backward(ctx, g):
        return _down_cols(_down_rows(g.contiguous()))


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel colour matrix m (c×C) on B×C×H×W: one batched matmul over the pixels."""
    B, C, H, W = x.shape
    return torch.matmul(m, x.reshape(B, C, H * W)).view(B, m.shape[0], H, W)


def jpeg(x: torch.Tensor, quality: torch.Tensor, chroma=None) -> torch.Tensor:
    """Differentiable JPEG encode + decode of RGB x on [0, 255] (B×3×H×W) at per-image `quality` (B):
    YCbCr (JFIF), 4:2:0 chroma by 2×2 averages, 8×8 DCT quantised with libjpeg's tables, decoded
    with bilinear ("fancy") chroma upsampling. Sizes are padded (edge replicated) to multiples of 16.
    The colour transforms are linear and per pixel, so they commute with the 2×2 average and the
    upsampling: chroma is converted at half resolution both ways (RGB → CbCr after averaging,
    CbCr → RGB before upsampling), and Y, whose weight is 1 in every RGB channel, is added back last.
    `chroma`: a function applied to the half-size CbCr before coding (channel_look's chroma denoising)."""
    B, _, H, W = x.shape
    ph, pw = (-H) % 16, (-W) % 16
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    qy, qc = quant_tables(quality.to(x.dtype))
    to_ycc = torch.tensor(_RGB_TO_YCC, dtype=x.dtype, device=x.device)
    to_rgb = torch.tensor(_YCC_TO_RGB, dtype=x.dtype, device=x.device)
    y = _blocks_dct(_mix(to_ycc[:1], x) - 128.0, qy)
    c = _mix(to_ycc[1:], _Pool2.apply(x))
    if chroma is not None:
        c = chroma(c)
    c = _mix(to_rgb[:, 1:], _blocks_dct(c, qc))
    rgb = _Up2.apply(c) + (y + 128.0)
    return rgb[..., :H, :W]
