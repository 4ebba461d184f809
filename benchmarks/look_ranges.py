"""How far the channel's phone look moves colours: CIEDE2000 on the 24 ColorChecker patches.

    python benchmarks/look_ranges.py [--draws 2000]

Draws the look's colour matrix and tone curve (physical/channel_look.py) from PHONE_LOOK, applies
them to the ColorChecker Classic's sRGB values (BabelColor's averages, 8-bit), and prints the
distribution of each draw's mean ΔE00 against the patches as they were, plus the tone curve's slopes. This is the
figure the look's ranges are judged by: the same chart photographed by two phones differs by a few
ΔE00 units. Asserts nothing.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from physical import channel_look
from physical.presets import PHONE_LOOK

COLORCHECKER = [(115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
                (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
                (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
                (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    patches = torch.tensor(COLORCHECKER, dtype=torch.float32).T.reshape(1, 3, 4, 6)
    ref = rgb2lab(patches[0].permute(1, 2, 0).numpy() / 255)
    params = torch.tensor(np.stack([channel_look.draw(rng, PHONE_LOOK, 1.0)[0] for _ in range(args.draws)]),
                          dtype=torch.float32)
    params[:, 10] = 0                                       # chroma denoising: no effect on flat patches
    out = channel_look.apply(patches.repeat(args.draws, 1, 1, 1), params).clamp(0, 255)
    de = np.array([deltaE_ciede2000(ref, rgb2lab(o.permute(1, 2, 0).numpy() / 255)).mean() for o in out])
    c = params[:, 9].numpy()
    q = np.percentile(de, [10, 50, 90])
    print(f"{args.draws} draws of PHONE_LOOK's colour matrix + tone curve on the 24 ColorChecker patches: mean ΔE00 "
          f"per draw: 10th {q[0]:.1f}, median {q[1]:.1f}, 90th {q[2]:.1f}, max {de.max():.1f}")
    print(f"tone curve: slope at mid grey {1 + c.min() / 2:.2f}-{1 + c.max() / 2:.2f}, at black and white "
          f"{1 - c.max():.2f}-{1 - c.min():.2f}; sharpening amount {PHONE_LOOK['sharpen_amount']}, "
          f"σ {PHONE_LOOK['sharpen_sigma_px']} photo px; chroma denoising σ {PHONE_LOOK['chroma_denoise_px']} photo px")


if __name__ == "__main__":
    main()
