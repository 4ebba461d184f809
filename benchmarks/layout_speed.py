"""How long `physical layout` takes for 1,000 printed images (target: ≤ 30 s on 2 cores).

    python benchmarks/layout_speed.py [--images 500] [--size 224]

Writes a fake craft-shaped run (N source images × clean + fgsm-eps16, N×2 PNGs) to a temporary
workspace — not timed — then times `physical.layout.make_layout` on it and prints the figure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import make_fake_run  # noqa: E402

from physical.layout import make_layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500, help="source images (each printed clean + adversarial)")
    ap.add_argument("--size", type=int, default=224, help="image side in pixels")
    ap.add_argument("--paper", default="a4")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ws = make_fake_run(tmp, ids=[f"img{i:04d}" for i in range(args.images)], size=args.size)
        t1 = time.perf_counter()
        result = make_layout(ws, "t", paper=args.paper)
        t2 = time.perf_counter()
        n = result.layout["n_slots"]
        png_bytes = sum(p.stat().st_size for p in ws.printouts("t").glob("images/*/*.png"))
        pdf_bytes = result.pdf.stat().st_size
    print(f"setup (writing {n} PNGs, not timed): {t1 - t0:.1f} s")
    print(result.summary)
    print(f"layout: {n} images ({args.size} px) → {len(result.layout['pages'])}-page PDF in {t2 - t1:.2f} s "
          f"({(t2 - t1) / n * 1000:.1f} ms/image); PDF {pdf_bytes / 1e6:.1f} MB = {pdf_bytes / png_bytes:.3f} × the PNGs")


if __name__ == "__main__":
    main()
