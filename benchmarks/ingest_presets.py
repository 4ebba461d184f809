"""What ingest finds in simulated photos of every preset, at 12 MP and at low resolution: the check
that a faster ingest still finds what it found before (run it with the old and the new tree).

Per set (preset, resolution, photos per page): photos accepted, markers found (all photos
together), fully visible printed images recovered, wrong assignments, crop-corner error against
the simulator's truth (source-PNG pixels), which detection pass found the markers, and CPU
seconds per photo in one process (robust to other load; wall time is not). The photos are
simulated once into --cache and reused, so two trees compare on the same files:

    python benchmarks/ingest_presets.py --cache /tmp/ingest-presets
    PYTHONPATH=/path/to/old/tree python benchmarks/ingest_presets.py --cache /tmp/ingest-presets

Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import collections
import os

import cv2
import numpy as np

import ingest_speed
from physical import ingest, simulate
from physical import layout as layout_mod
from physical.workspace import Workspace

# (preset, resolution, photos per page): all presets at 12 MP, and low-resolution photos
SETS = [("mild", "4000x3000", 4), ("typical", "4000x3000", 6), ("harsh", "4000x3000", 12),
        ("typical", "1600x1200", 6), ("harsh", "1600x1200", 6), ("typical", "1024x768", 4)]


def _workspace(cache: str, preset: str, res: str, per_page: int, seed: int) -> tuple[Workspace, dict, dict]:
    root = os.path.join(cache, f"{preset}-{res}-{per_page}-s{seed}")
    ws = Workspace(root)
    if not ws.simulated_path("bench").exists():
        ws = ingest_speed.build_run(root)
        layout_mod.make_layout(ws, "bench")
        simulate.simulate_run(ws, "bench", preset=preset, photos_per_page=per_page, seed=seed,
                              resolution=simulate.parse_resolution(res))
    import json

    return ws, json.loads(ws.layout_path("bench").read_text()), json.loads(ws.simulated_path("bench").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default="/tmp/physical-ingest-presets", help="where the simulated photos are kept")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cv2.setNumThreads(1)   # as in an ingest worker
    print(f"physical from {os.path.dirname(ingest.__file__)}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for preset, res, per_page in SETS:
        ws, lay, sim = _workspace(args.cache, preset, res, per_page, args.seed)
        state = ingest.ingest_run(ws, "bench", workers=1, force=True)
        cpu = float(np.mean([p["cpu_seconds"] for p in state["photos"]]))
        r = ingest_speed.score(state, sim, lay)
        photos = state["photos"]
        passes = collections.Counter(p.get("detect_pass") for p in photos if p.get("detect_pass"))
        reasons = collections.Counter(s["reason"].split(" (")[0] for p in photos for s in p.get("slots_rejected", []))
        print(f"{preset:8s} {res:>9s}: {sum(p['status'] == 'accepted' for p in photos)}/{len(photos)} photos accepted, "
              f"{sum(p.get('markers_found', 0) for p in photos)} markers, recovered {r['recovered']} of "
              f"{r['visible']} fully visible ({r['crops']} crops), wrong {r['wrong']}, corner error mean "
              f"{r['err_mean']:.3f} max {r['err_max']:.3f} px; passes {dict(passes)}; {cpu:.3f} s CPU/photo")
        if reasons:
            print(f"{'':19s}slots refused: {dict(reasons)}")


if __name__ == "__main__":
    main()
