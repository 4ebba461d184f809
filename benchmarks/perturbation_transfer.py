"""How much of a perturbation reaches the photo, per tone and scale: photos against channel tables.

    python benchmarks/perturbation_transfer.py WORKSPACE [--variant eot-eps16-to924] [--tables phone,typical]

WORKSPACE is a kept `benchmarks/eot_survival.py --keep DIR` run's `DIR/ws` (its crops are those of
the preset photographed last). For each image, δ = PNG(variant) − PNG(clean) and its photographed
counterpart δ' = crop(variant) − crop(clean) (two photos: their noise is uncorrelated with δ and
averages out of the gain). The gain ⟨δ', δ⟩ / ⟨δ, δ⟩ is printed per tone of the clean image (its
blurred grey level) and per scale (δ blurred by a Gaussian of σ 1.5 px: "low"; what is left: "high").
Then the same for channel samples (each table's T(adv; θ) − T(clean; θ), same θ, 3 draws per image).

A channel that passes more of δ in some tone or scale than the photos do lets EOT put its
perturbation where the print destroys it: this is how the shadows' loss was found (docs/robust.md,
"Shadows"). Asserts nothing.
"""
from __future__ import annotations

import argparse
import os

import cv2
import numpy as np
import torch
from PIL import Image

from physical.channel import Channel

TONES = [(0, 40), (40, 80), (80, 140), (140, 200), (200, 256)]


def _load(path: str, size=None) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    return np.asarray(im.resize(size, Image.BILINEAR) if size else im, dtype=np.float32)


def gains(quads) -> np.ndarray:
    """2 (low, high) × len(TONES) projection gains of δ' on δ, pooled over (d0, d1, c0, c1) quads."""
    acc = np.zeros((2, len(TONES), 2))
    for d0, d1, c0, c1 in quads:
        d, c = d1 - d0, c1 - c0
        d_lo, c_lo = cv2.GaussianBlur(d, (0, 0), 1.5), cv2.GaussianBlur(c, (0, 0), 1.5)
        tone = cv2.GaussianBlur(d0.mean(-1), (0, 0), 2)
        for b, (x, y) in enumerate([(d_lo, c_lo), (d - d_lo, c - c_lo)]):
            for t, (lo, hi) in enumerate(TONES):
                m = (tone >= lo) & (tone < hi)
                acc[b, t] += (x[m] * y[m]).sum(), (x[m] * x[m]).sum()
    return acc[..., 0] / np.maximum(acc[..., 1], 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("--variant", default="eot-eps16-to924")
    ap.add_argument("--tables", default="phone,typical", help="channel tables to compare (comma-separated)")
    ap.add_argument("--run", default="r")
    args = ap.parse_args()
    images = os.path.join(args.workspace, "printouts", args.run, "images")
    crops = os.path.join(args.workspace, "captures", args.run, "crops")
    names = sorted(os.listdir(images))
    pngs, photos = [], []
    for n in names:
        d0, d1 = (_load(os.path.join(images, n, f"{v}.png")) for v in ("clean", args.variant))
        pngs.append((d0, d1))
        size = d0.shape[1::-1]
        try:
            photos.append((d0, d1, *(_load(os.path.join(crops, n, f"{v}.png"), size) for v in ("clean", args.variant))))
        except FileNotFoundError:   # an image ingest did not recover in one of the two photos
            pass
    print(f"{len(names)} images, {len(photos)} with both crops; gain of δ per tone of the clean image")
    print(f"{'':18s}" + "".join(f"{f'{lo}-{hi}':>9s}" for lo, hi in TONES))

    def show(label, g):
        for b, band in enumerate(("low", "high")):
            print(f"{label + ' ' + band:18s}" + "".join(f"{v:9.2f}" for v in g[b]))

    show("photos", gains(photos))
    x0 = torch.tensor(np.stack([p[0] for p in pngs])).permute(0, 3, 1, 2)
    x1 = torch.tensor(np.stack([p[1] for p in pngs])).permute(0, 3, 1, 2)
    for table in args.tables.split(","):
        ch, rng, quads = Channel(table, size=x0.shape[-1]), np.random.default_rng(0), []
        for _ in range(3):
            theta = ch.sample(len(pngs), rng)
            with torch.no_grad():
                y0, y1 = (ch(x, theta).permute(0, 2, 3, 1).numpy() for x in (x0, x1))
            quads += [(d0, d1, c0, c1) for (d0, d1), c0, c1 in zip(pngs, y0, y1)]
        show(table, gains(quads))


if __name__ == "__main__":
    main()
