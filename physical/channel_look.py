"""The "phone look": what a phone's image processing does to a photo after the sensor, for the EOT channel.

`physical.channel` models the print and the camera as physics (tone, blur, light, noise, JPEG) and
so only ever blurs and keeps colours apart. A phone then renders the photo its own way, and two
phones render the same print differently; an attack tuned to one rendering can fail on another.
Four stages, each drawn per sample from optional keys of a channel table (a key that is absent is
the identity and draws nothing, so the presets and every figure measured with them are unchanged):

    sharpen   unsharp mask on the photo, amount a, Gaussian σ_s in photo pixels: folded into the
              blur stage's point-spread function, PSF' = (1 + a)·PSF − a·(G ⊛ PSF), with G's
              covariance σ_s²·A⁻¹A⁻ᵀ in crop pixels (A: crop px → photo px, as the blur stage maps
              defocus). Linear and shift-invariant, so sharpening after blurring is one kernel.
              Keys `sharpen_amount`, `sharpen_sigma_px`.
    colour    a colour-correction residual: M = Sat(s)·(I + X), X the cross-talk (off-diagonals
              drawn from `ccm_crosstalk`, each row's diagonal minus their sum), Sat(s) = s·I +
              (1 − s)·1·lumaᵀ a saturation gain s from `ccm_saturation`. Every row of both sums to 1,
              so grey stays grey (white balance is the light stage's). One 3×3 per sample.
    tone      a global contrast curve per channel: v + c·(smoothstep(v) − v), v on [0, 1],
              smoothstep(v) = v²(3 − 2v). Slope 1 + c/2 at mid grey and 1 − c at black and white:
              c > 0 is the usual phone S-curve, c < 0 the flatter rendering of HDR / local tone
              mapping. Key `tone_contrast`.
    chroma    chroma noise reduction: the image's chroma (what is left after the BT.601 luma)
              blurred by a Gaussian of σ_c photo pixels (σ_c / √|det A| crop pixels), luma kept.
              Key `chroma_denoise_px`.

Order as in a phone: sharpening with the optics (folded), then after the sensor's noise colour and
tone, then chroma denoising (inside the channel's fast JPEG, on its half-size chroma) and JPEG. Approximations: the folded sharpening does not
amplify the sensor noise and sharpens chroma with luma (phones sharpen luma).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from physical.channel_ops import LUMA, MAX_KERNEL, compiling, inside, quadratic_form   # cv2's BT.601 weights (RGB); the PSFs' cut

KEYS = ("sharpen_amount", "sharpen_sigma_px", "ccm_crosstalk", "ccm_saturation", "tone_contrast",
        "chroma_denoise_px")
# per-sample parameters: the 3×3 matrix (row-major), the tone contrast c, the chroma σ in crop px
PARAMS = 11
IDENTITY = np.concatenate([np.eye(3).ravel(), [0.0, 0.0]])


def active(tables) -> bool:
    """Whether any of a channel's tables has look keys."""
    return any(k in t for t in tables for k in KEYS)


def _u(rng: np.random.Generator, lohi, size=None):
    lo, hi = lohi
    return lo + (hi - lo) * rng.random(size)


def draw(rng: np.random.Generator, table: dict, photo_px_per_crop_px: float) -> tuple[np.ndarray, tuple]:
    """One sample's look from `table`: (PARAMS vector, (sharpen amount, σ_s in photo px)).
    Only the keys present draw from `rng`, in KEYS order."""
    amount = float(_u(rng, table["sharpen_amount"])) if "sharpen_amount" in table else 0.0
    sigma = float(_u(rng, table["sharpen_sigma_px"])) if "sharpen_sigma_px" in table else 1.0
    X = np.zeros((3, 3))
    if "ccm_crosstalk" in table:
        off = ~np.eye(3, dtype=bool)
        X[off] = _u(rng, table["ccm_crosstalk"], 6)
        X[np.diag_indices(3)] = -X.sum(axis=1)
    s = float(_u(rng, table["ccm_saturation"])) if "ccm_saturation" in table else 1.0
    sat = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), LUMA)
    M = sat @ (np.eye(3) + X)
    c = float(_u(rng, table["tone_contrast"])) if "tone_contrast" in table else 0.0
    chroma = float(_u(rng, table["chroma_denoise_px"])) if "chroma_denoise_px" in table else 0.0
    return np.concatenate([M.ravel(), [c, chroma / max(photo_px_per_crop_px, 1e-6)]]), (amount, sigma)


def sharpen_kernels(kernel: np.ndarray, A: np.ndarray, sharpen: np.ndarray) -> np.ndarray:
    """Fold the unsharp mask into the point-spread functions: B×k×k → B×k'×k' (odd, one size, ≤
    MAX_KERNEL; a kernel cut there is renormalised to sum 1). `sharpen`: B×2 (amount, σ_s photo px)."""
    amount, sigma = sharpen[:, 0], sharpen[:, 1]
    on = amount > 0
    if not on.any():
        return kernel
    Ainv = np.linalg.inv(A[on])
    cov = sigma[on, None, None] ** 2 * Ainv @ np.swapaxes(Ainv, 1, 2)     # G's covariance, crop px
    reach = 3 * np.sqrt(np.linalg.eigvalsh(cov).max(axis=1))
    g = int(max(1, math.ceil(reach.max())))
    u = np.arange(-g, g + 1, dtype=np.float64)
    grid = np.stack(np.meshgrid(u, u, indexing="xy"), -1)                # (2g+1)²×2, (x, y)
    q = quadratic_form(grid, np.linalg.inv(cov)[:, None, None])
    G = np.exp(-0.5 * q)
    G /= G.sum(axis=(1, 2), keepdims=True)
    big = np.pad(kernel, ((0, 0), (g, g), (g, g)))                       # k + 2g: room for G ⊛ PSF
    blurred = big.copy()
    # G ⊛ PSF, 'full' size, each sample with its own G (float64 FFTs: a twentieth of a float64 conv2d's time)
    blurred[on] = scipy.signal.fftconvolve(kernel[on], G, mode="full", axes=(1, 2))
    out = (1 + amount)[:, None, None] * big - amount[:, None, None] * blurred
    cut = max(0, (out.shape[-1] - MAX_KERNEL) // 2)
    if cut:
        out = out[:, cut:-cut, cut:-cut]
        out = out / out.sum(axis=(1, 2), keepdims=True)
    return out


def _gauss1d(sigma: torch.Tensor) -> torch.Tensor:
    """B×k normalised 1-D Gaussians (one odd size for the batch; σ = 0 → a unit impulse)."""
    half = int(min(MAX_KERNEL // 2, max(1, math.ceil(3 * float(sigma.max())))))
    u = torch.arange(-half, half + 1, dtype=sigma.dtype, device=sigma.device)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-0.5 * (u / s) ** 2)
    return k / k.sum(1, keepdim=True)


class _ColourTone(torch.autograd.Function):
    """u = M·y per pixel, then u + 255·c·(smoothstep(v) − v), v = clamp(u / 255, 0, 1): the maths of
    the plain autograd version (clamp passes gradient inside its bounds only, as torch's), fused so
    that only the curve's derivative is kept from the forward."""

    @staticmethod
    def forward(ctx, y, M, c):
        B, C, H, W = y.shape
        u = torch.bmm(M, y.reshape(B, C, H * W)).view(B, C, H, W)
        v = (u / 255.0).clamp_(0.0, 1.0)
        cb = c.view(-1, 1, 1, 1)
        if ctx.needs_input_grad[0]:
            # ∂out/∂u = 1 + c·(6v(1 − v) − 1) inside [0, 255], 1 outside (a float mask: a bool one costs
            # a conversion pass)
            d = (v * (1.0 - v)).mul_(6.0).sub_(1.0).mul_(cb).mul_(inside(u, 0.0, 255.0)).add_(1.0)
            ctx.save_for_backward(d, M)
        return u.add_((v * v * (3.0 - 2.0 * v) - v).mul_(cb * 255.0))

    @staticmethod
    def backward(ctx, g):
        d, M = ctx.saved_tensors
        B, C, H, W = g.shape
        gu = (g * d).reshape(B, C, H * W)
        return torch.bmm(M.transpose(1, 2), gu).view(B, C, H, W), None, None


def apply(y: torch.Tensor, look: torch.Tensor, chroma: bool = True) -> torch.Tensor:
    """Colour matrix, tone curve and (with `chroma`) chroma denoising (module docstring) on y
    (B×3×H×W, [0, 255]); `look`: B×PARAMS. Differentiable in y. The channel's own JPEG takes the
    chroma denoising instead (`chroma_filter`), where its chroma already is at half resolution."""
    y = _ColourTone.apply(y.contiguous(), look[:, :9].reshape(-1, 3, 3).contiguous(), look[:, 9].contiguous())
    if chroma and bool((look[:, 10] > 0).any()):
        y = y + _chroma_change(y, look[:, 10])
    return y


def chroma_filter(look: torch.Tensor):
    """For `physical.channel.jpeg`: the chroma denoising as a function of its half-resolution
    chroma (B×2×h×w), or None when no sample has any. Denoising before the 4:2:0 subsampling or on
    the subsampled chroma is the same Gaussian (σ/2 at half size), as phones do it on subsampled chroma."""
    sigma = look[:, 10]
    if not bool((sigma > 0).any()):
        return None
    return lambda c: _blur(c, sigma / 2)


def _blur(c: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image of c (B×C×h×w) blurred by its Gaussian σ (B), separable, borders replicated."""
    B, C, h, w = c.shape
    k = _gauss1d(sigma).repeat_interleave(C, 0)                               # (B·C)×t
    r = k.shape[1] // 2
    flat = c.reshape(1, B * C, h, w)
    flat = F.conv2d(_pad_edges(flat, r, -1), k.view(B * C, 1, 1, -1), groups=B * C)
    flat = F.conv2d(_pad_edges(flat, r, -2), k.view(B * C, 1, -1, 1), groups=B * C)
    return flat.view(B, C, h, w)


def _pad_edges(t: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """t's edge rows (dim −2) or columns (dim −1) repeated r times on both sides: F.pad replicate.
    Under torch.compile the same values by cat, as inductor's (torch 2.14) meta kernel for
    replication_pad2d_backward asserts on the channels-last strides it picks here
    (benchmarks/eot_compile.py); eager keeps F.pad, so its results are unchanged."""
    if not compiling():
        return F.pad(t, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="replicate")
    n = t.shape[dim]
    size = list(t.shape)
    size[dim] = r
    return torch.cat([t.narrow(dim, 0, 1).expand(size), t, t.narrow(dim, n - 1, 1).expand(size)], dim)


def _chroma_change(y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """What blurring the chroma of y by σ (B, crop px) changes, at full size (without the channel's
    JPEG). Chroma as R − Y and B − Y (G − Y follows: the change has no luma), at half resolution."""
    B, _, H, W = y.shape
    half = F.avg_pool2d(F.pad(y, (0, W % 2, 0, H % 2), mode="replicate"), 2)
    luma = half[:, 0:1] * LUMA[0] + half[:, 1:2] * LUMA[1] + half[:, 2:3] * LUMA[2]
    c = torch.cat([half[:, 0:1], half[:, 2:3]], 1) - luma                     # B×2×h×w
    d = _blur(c, sigma / 2) - c
    dg = -(d[:, 0:1] * LUMA[0] + d[:, 1:2] * LUMA[2]) / LUMA[1]
    d = torch.cat([d[:, 0:1], dg, d[:, 1:2]], 1)
    return F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)[..., :H, :W]
