"""Layout identity: the property test of tests/test_layout_identity.py on many more seeds, and
what reading photos of a kept earlier layout costs ingest.

    python benchmarks/layout_identity_soak.py [--seeds 0:100] [--photos 6]

Prints, per block of seeds, how many crops were checked (and how many of them came from an
earlier layout's sheet) and every seed that failed; then ingest seconds per photo for photos of
the current sheet and of an earlier, kept one (both 2000x1500, mild preset).
"""
import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_layout_identity as T  # noqa: E402
from conftest import make_fake_run  # noqa: E402

from physical import ingest, simulate  # noqa: E402
from physical import layout as layout_mod  # noqa: E402
from physical.workspace import atomic_write_bytes  # noqa: E402


def soak(first: int, last: int) -> None:
    totals = {"crops": 0, "old": 0}
    real = T._check

    def counting(ws, run, state, truths):
        n, old = real(ws, run, state, truths)
        totals["crops"] += n
        totals["old"] += old
        return n, old

    T._check = counting
    failed = []
    t0 = time.perf_counter()
    for seed in range(first, last):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                T.test_random_relayouts_crafts_and_photos_never_misassign(Path(tmp), seed)
            except Exception:
                failed.append(seed)
                traceback.print_exc()
    T._check = real
    print(f"seeds {first}..{last - 1}: {totals['crops']} crops checked ({totals['old']} from earlier layouts' "
          f"sheets), {len(failed)} failed {failed}, {time.perf_counter() - t0:.0f} s")


def ingest_cost(photos: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = make_fake_run(root / "ws", run="p", ids=("a", "b"), size=64)
        first = layout_mod.make_layout(ws, "p", image_mm=60).layout
        sim = simulate.simulate_run(ws, "p", preset="mild", seed=0, resolution=(2000, 1500), photos_per_page=photos)
        old = [(ws.captures("p") / p["file"]).read_bytes() for p in sim["photos"]]
        layout_mod.make_layout(ws, "p", image_mm=60, variants=["fgsm-eps16", "clean"], force=True)
        sim = simulate.simulate_run(ws, "p", preset="mild", seed=1, resolution=(2000, 1500), photos_per_page=photos,
                                    force=True)
        for name, datas in (("current sheet", None), ("earlier sheet", old)):
            folder = root / name.replace(" ", "-")
            folder.mkdir()
            if datas is None:
                datas = [(ws.captures("p") / p["file"]).read_bytes() for p in sim["photos"]]
            for k, data in enumerate(datas):
                atomic_write_bytes(folder / f"{k}.jpg", data)
            t0 = time.perf_counter()
            state = ingest.ingest_run(ws, "p", folder, workers=1, force=True)
            dt = (time.perf_counter() - t0) / len(datas)
            passes = sorted({p["detect_pass"] for p in state["photos"]})
            layouts = sorted({c["layout_id"] for c in state["crops"]})
            print(f"{name}: {dt:.2f} s per photo, {len(state['crops'])} crops, detector passes {passes}, "
                  f"layouts {layouts} (earlier: {first['layout_id']})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0:100")
    ap.add_argument("--photos", type=int, default=6)
    args = ap.parse_args()
    a, b = (int(v) for v in args.seeds.split(":"))
    ingest_cost(args.photos)
    soak(a, b)
