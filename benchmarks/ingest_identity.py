"""Does another tree's ingest give exactly what this one gives? Each workspace (one with a run
"bench" and its photos, e.g. from ingest_speed.py --keep or ingest_presets.py --cache) is copied
twice; each tree ingests its copy (`ingest_run(force=True)`, a fresh process, --workers); then
ingest.json is compared field by field, timings left out (and the crops' file sha256, which
follow the PNG encoding), and every crop's decoded pixels.

    python benchmarks/ingest_identity.py --tree /work/main /tmp/ib /tmp/ingest-presets/*

Prints what differs, then one line per workspace; exits 1 when anything differs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMINGS = {"seconds", "cpu_seconds"}


def _ingest(tree: str, root: str, workers: int) -> dict:
    code = ("import sys, json\nfrom physical import ingest\nfrom physical.workspace import Workspace\n"
            "if __name__ == '__main__':\n"
            f"    ingest.ingest_run(Workspace({root!r}), 'bench', workers={workers}, force=True)\n")
    script = os.path.join(root, "run_ingest.py")
    with open(script, "w") as f:
        f.write(code)
    # cwd: an older tree's forkserver imports physical from the working directory, not PYTHONPATH
    subprocess.run([sys.executable, script], env={**os.environ, "PYTHONPATH": tree}, check=True, cwd=tree)
    with open(os.path.join(root, "captures", "bench", "ingest.json")) as f:
        return json.load(f)


def _strip(state: dict) -> dict:
    photos = [{k: v for k, v in p.items() if k not in TIMINGS} for p in state["photos"]]
    crops = [{k: v for k, v in c.items() if k != "sha256"} for c in state["crops"]]
    return {"photos": photos, "crops": crops, "summary": state.get("summary")}


def compare(root: str, tree: str, workers: int) -> list[str]:
    out = []
    with tempfile.TemporaryDirectory(prefix="ingest-identity-") as tmp:
        copies = {}
        for name in ("this", "other"):
            dst = os.path.join(tmp, name)
            shutil.copytree(root, dst, ignore=shutil.ignore_patterns("crops", "ingest.json", ".locks", "*.lock"))
            copies[name] = dst
        a = _ingest(HERE, copies["this"], workers)
        b = _ingest(tree, copies["other"], workers)
        sa, sb = _strip(a), _strip(b)
        for key in ("photos", "crops"):
            if len(sa[key]) != len(sb[key]):
                out.append(f"{key}: {len(sa[key])} vs {len(sb[key])}")
                continue
            for i, (x, y) in enumerate(zip(sa[key], sb[key])):
                if x != y:
                    diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
                    out.append(f"{key}[{i}] ({x.get('file')}): {diff}")
        if sa["summary"] != sb["summary"]:
            out.append(f"summary: {sa['summary']} vs {sb['summary']}")
        for ca, cb in zip(a["crops"], b["crops"]):
            pa = cv2.imread(os.path.join(copies["this"], "captures", "bench", ca["file"]), cv2.IMREAD_UNCHANGED)
            pb = cv2.imread(os.path.join(copies["other"], "captures", "bench", cb["file"]), cv2.IMREAD_UNCHANGED)
            if pa is None or pb is None or pa.shape != pb.shape or not np.array_equal(pa, pb):
                out.append(f"crop pixels differ: {ca['file']}")
        n = len(a["photos"])
    print(f"{root}: {n} photos, {len(a['crops'])} crops: " + ("identical (timings and crop file hashes aside)"
                                                             if not out else f"{len(out)} differences"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspaces", nargs="+")
    ap.add_argument("--tree", required=True, help="the other checkout")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    bad = 0
    for root in args.workspaces:
        diffs = compare(root, os.path.abspath(args.tree), args.workers)
        for d in diffs[:20]:
            print("  " + d)
        bad += bool(diffs)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
