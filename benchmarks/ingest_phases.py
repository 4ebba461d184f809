"""Where `physical ingest`'s time goes: one `ingest_run(force=True)` per fresh process on a kept
benchmark workspace, with a timeline per process (this one and each pool worker) and this
process's CPU split.

    python benchmarks/ingest_speed.py --photos-per-page 12 --keep /tmp/ib   # build it once
    python benchmarks/ingest_phases.py /tmp/ib                               # one run
    python benchmarks/ingest_phases.py /tmp/ib --repeat 5 --tree /work/main  # interleaved with another tree

Figures robust to load: CPU seconds of all processes (this one + forkserver + workers, from
/proc) per photo, and wall / (that CPU / workers), which is 1.0 when both cores never idle.
With --tree, each repeat runs this tree and the other one (same workspace) one after the other
and prints the medians. Prints figures; asserts nothing. Linux (reads /proc).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import physical.ingest as ing   # pool workers re-run this script's top level: keep it light

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_photo(data, ctx):
    """ingest_photo with (pid, start, end, CPU at start, CPU at end) of the process running it."""
    t, c, th = time.time(), time.process_time(), time.thread_time()
    out = _ORIG(data, ctx)
    out["photo"]["_t"] = (os.getpid(), t, time.time(), c, time.process_time(), time.thread_time() - th)
    return out


_ORIG = ing.ingest_photo


def _forkserver_cpu() -> float:
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")   # own + reaped workers'


def one(root: str, workers: int) -> dict:
    from physical import records
    from physical.workspace import Workspace

    spent = {"records.write": 0.0, "crop writes": 0.0, "hashing": 0.0}

    def wrap(mod, name, key):
        f = getattr(mod, name)

        def g(*a, **k):
            c = time.process_time()
            try:
                return f(*a, **k)
            finally:
                spent[key] += time.process_time() - c
        setattr(mod, name, g)

    wrap(records, "write", "records.write")
    if hasattr(records, "Rewriter"):   # the rewrites after each photo (an older tree: records.write)
        wrap(records.Rewriter, "write", "records.write")
    wrap(ing, "atomic_write_bytes", "crop writes")
    wrap(ing, "sha256_file", "hashing")
    ing.ingest_photo = timed_photo
    ws = Workspace(root)
    t0, c0 = time.time(), time.process_time()
    state = ing.ingest_run(ws, "bench", workers=workers, force=True)
    t1, c1 = time.time(), time.process_time()
    time.sleep(0.5)   # the forkserver reaps the workers
    pool = _forkserver_cpu()
    ph = [p["_t"] for p in state["photos"]]
    me = os.getpid()
    procs = []
    for pid in sorted({p[0] for p in ph}, key=lambda q: (q != me, q)):
        mine = sorted((p for p in ph if p[0] == pid), key=lambda p: p[1])
        procs.append({"who": "parent" if pid == me else "worker", "photos": len(mine),
                      "first_start": mine[0][1] - t0, "cpu_before_first": mine[0][3],
                      "first_cpu": mine[0][4] - mine[0][3], "photo_cpu": sum(p[4] - p[3] for p in mine),
                      "photo_thread_cpu": sum(p[5] for p in mine),
                      "last_end": mine[-1][2] - t0})
    parent_photo = sum(p["photo_cpu"] for p in procs if p["who"] == "parent")
    return {"n": len(ph), "wall": t1 - t0, "parent_cpu": c1 - c0, "parent_photo_cpu": parent_photo,
            "pool_cpu": pool, "total_cpu": c1 - c0 + pool, "workers": workers, "spent": spent, "procs": procs,
            "photo_cpu": sum(p[4] - p[3] for p in ph) / len(ph), "load": os.getloadavg()[0]}


def show(r: dict, label: str = "") -> None:
    n, w = r["n"], r["workers"]
    print(f"{label}{n} photos in {r['wall']:.2f} s = {n / r['wall']:.2f} photos/s; CPU: all processes "
          f"{r['total_cpu']:.2f} s = {r['total_cpu'] / n:.3f} s/photo (photos alone {r['photo_cpu']:.3f}), "
          f"CPU-bound {w * n / r['total_cpu']:.2f} photos/s, wall / CPU-bound {r['wall'] / (r['total_cpu'] / w):.2f}; "
          f"load {r['load']:.1f}")
    other = r["parent_cpu"] - r["parent_photo_cpu"] - sum(r["spent"].values())
    print(f"  this process {r['parent_cpu']:.3f} s CPU: its photos {r['parent_photo_cpu']:.3f}, "
          + ", ".join(f"{k} {v:.3f}" for k, v in r["spent"].items()) + f", the rest {other:.3f}; "
          f"forkserver + workers {r['pool_cpu']:.3f}")
    for p in r["procs"]:
        print(f"  {p['who']}: {p['photos']} photos, first at {p['first_start']:.3f} s (process CPU before it "
              f"{p['cpu_before_first']:.3f} s), its CPU {p['first_cpu']:.3f} s; all photos {p['photo_cpu']:.3f} s CPU "
              f"({p['photo_thread_cpu']:.3f} in the thread running them); "
              f"last ends {p['last_end']:.3f} s (run ends {r['wall']:.3f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tree", default=None, help="another checkout to run interleaved with this one")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # one run, as JSON (for --tree)
    args = ap.parse_args()
    if args.json:
        print(json.dumps(one(args.workspace, args.workers)))
        return
    if args.tree is None and args.repeat == 1:
        show(one(args.workspace, args.workers))
        return
    trees = {"this": HERE, **({"other": os.path.abspath(args.tree)} if args.tree else {})}
    runs: dict[str, list] = {k: [] for k in trees}
    for i in range(args.repeat):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree}
            out = subprocess.run([sys.executable, os.path.abspath(__file__), args.workspace, "--workers",
                                  str(args.workers), "--json"], env=env, capture_output=True, text=True, check=True,
                                 cwd=tree)   # an older tree's forkserver imports physical from the working directory
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(r)
            show(r, f"[{name} {i + 1}] ")
    for name, rs in runs.items():
        med = lambda k: statistics.median(x[k] for x in rs)
        n, w = rs[0]["n"], rs[0]["workers"]
        print(f"{name} ({trees[name]}), median of {len(rs)}: {n / med('wall'):.2f} photos/s, all-process CPU "
              f"{med('total_cpu') / n:.3f} s/photo (parent {med('parent_cpu'):.2f} s, forkserver + workers "
              f"{med('pool_cpu'):.2f} s), CPU-bound {w * n / med('total_cpu'):.2f} photos/s, "
              f"wall / CPU-bound {statistics.median(x['wall'] / (x['total_cpu'] / w) for x in rs):.2f}")


if __name__ == "__main__":
    main()
