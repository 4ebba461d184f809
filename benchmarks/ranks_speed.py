"""1 process vs N ranks (`--procs N`) crafting the same images: wall time and images/s.

    python benchmarks/ranks_speed.py [--images 14] [--procs 2] [--attacks fgsm,bim] [--eps 2,4]

Copies the bundled photos (mirrored to make more) into a temporary folder, crafts them once in
one process and once with --procs N (each run in a fresh workspace, via the CLI as a user runs
it, model loading included), and checks that both runs hold the same images.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from physical.data import demo_items
from physical.models import imagenet_classes
from physical.workspace import read_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=14)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--attacks", default="fgsm,bim")
    ap.add_argument("--eps", default="2,4")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        run_both(args, Path(name))


def run_both(args, tmp: Path):
    wnids, _ = imagenet_classes()
    folder = tmp / "images"
    folder.mkdir()
    items = demo_items()
    for k in range(args.images):
        it = items[k % len(items)]
        im = Image.open(it.path).convert("RGB")
        im = ImageOps.mirror(im) if (k // len(items)) % 2 else im
        im.save(folder / f"{wnids[it.label]}_{k}.png")
    times = {}
    for procs in (1, args.procs):
        ws = tmp / f"ws{procs}"
        cmd = [sys.executable, "-m", "physical", "--workspace", str(ws), "-q", "craft", "--images", str(folder),
               "--run", "r", "--attacks", args.attacks, "--eps", args.eps, "--device", "cpu", "--procs", str(procs)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        times[procs] = time.perf_counter() - t
        n = len(read_json(ws / "printouts/r/manifest.json")["images"])
        print(f"{procs} process(es): {times[procs]:6.1f} s for {n} images ({n / times[procs]:.2f} images/s)")
    print(f"speed-up {args.procs} ranks / 1: {times[1] / times[args.procs]:.2f}x")


if __name__ == "__main__":
    main()
