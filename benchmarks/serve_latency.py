"""`physical serve`: how long one photo's answer takes — from the start of its upload until its
ingest result arrives on the page's event stream (what the phone sees), for 12 MP JPEGs.

The run of benchmarks/ingest_speed.py (real photos, default layout), simulated 12 MP photos,
the real server (uvicorn on 127.0.0.1, a free port) and its warm ingest worker. Photos are sent
one at a time, each after the previous answer (a person shooting sheet by sheet); then a burst
of several at once (the page sends them one after the other).

    python benchmarks/serve_latency.py                  # 12 MP, typical, 3 photos per page
    python benchmarks/serve_latency.py --photos-per-page 1 --resolution 4000x3000

Prints figures; asserts nothing. Target (issue 17): ≤ 1.5 s per photo.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from ingest_speed import build_run
from physical import layout as layout_mod
from physical import simulate
from physical.serve import Service, ServerThread

TOKEN = "benchmark-token"


class Watcher(threading.Thread):
    """Reads the event stream; records when each photo's final state first arrives."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.seen, self.events = url, {}, 0
        self.ready = threading.Event()

    def run(self):
        with httpx.stream("GET", self.url + "/api/events?token=" + TOKEN, timeout=None) as r:
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                self.events += 1
                self.ready.set()
                now = time.perf_counter()
                for p in json.loads(line[6:])["photos"]:
                    if p["state"] in ("accepted", "rejected") and p["sha256"] not in self.seen:
                        self.seen[p["sha256"]] = (now, p)

    def wait(self, sha: str, timeout: float = 120) -> tuple[float, dict]:
        end = time.perf_counter() + timeout
        while sha not in self.seen:
            if time.perf_counter() > end:
                raise TimeoutError(sha)
            time.sleep(0.002)
        return self.seen[sha]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="typical", choices=list(simulate.PRESETS))
    ap.add_argument("--photos-per-page", type=int, default=3)
    ap.add_argument("--resolution", default="4000x3000")
    ap.add_argument("--burst", type=int, default=4, help="photos sent at once after the one-by-one part")
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="physical-serve-bench-")
    ws = build_run(root)
    layout_mod.make_layout(ws, "bench")
    sim = simulate.simulate_run(ws, "bench", preset=args.preset, photos_per_page=args.photos_per_page,
                                seed=1, resolution=simulate.parse_resolution(args.resolution))
    phone = Path(root) / "phone"
    phone.mkdir()
    files = []
    for p in sim["photos"]:
        files.append(phone / Path(p["file"]).name)
        shutil.move(str(ws.captures("bench") / p["file"]), files[-1])
    (ws.captures("bench") / "simulated.json").unlink()
    mb = np.mean([f.stat().st_size for f in files]) / 1e6
    print(f"{len(files)} simulated photos {args.resolution} ({args.preset}), {mb:.1f} MB JPEG each")

    service = Service(ws, "bench", TOKEN, max_upload_bytes=100_000_000)
    t = time.perf_counter()
    with ServerThread(service) as server:
        print(f"server up (worker warm) in {time.perf_counter() - t:.2f} s")
        watcher = Watcher(server.url)
        watcher.start()
        watcher.ready.wait(30)
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        one_by_one = files[:len(files) - args.burst] if len(files) > args.burst else files
        rows = []
        for f in one_by_one:
            data = f.read_bytes()
            t0 = time.perf_counter()
            r = client.post("/api/photos", files=[("photos", (f.name, data, "image/jpeg"))])
            t1 = time.perf_counter()
            sha = r.json()["files"][0]["sha256"]
            t2, rec = watcher.wait(sha)
            rows.append((t2 - t0, t1 - t0, rec))
        lat = [r[0] for r in rows]
        up = [r[1] for r in rows]
        ing = [r[2].get("seconds") or 0 for r in rows]
        print(f"one at a time: {len(rows)} photos; answer latency (upload start → result on the event stream): "
              f"median {np.median(lat):.3f} s, max {max(lat):.3f} s  [target ≤ 1.5 s]")
        print(f"  of which upload round trip median {np.median(up):.3f} s; ingest in the worker median "
              f"{np.median(ing):.3f} s; the rest (queue, ingest.json, event) median "
              f"{np.median(np.array(lat) - np.array(up) - np.array(ing)):.3f} s")
        print("  " + ", ".join(f"{r[2]['state']}" + (f" {len(r[2]['images'])} images" if r[2]['images'] else "")
                               for r in rows))
        burst = files[len(one_by_one):]
        if burst:
            t0 = time.perf_counter()
            shas = [client.post("/api/photos", files=[("photos", (f.name, f.read_bytes(), "image/jpeg"))]
                                ).json()["files"][0]["sha256"] for f in burst]
            ends = [watcher.wait(s)[0] - t0 for s in shas]
            print(f"burst of {len(burst)}: answers at " + ", ".join(f"{e:.2f}" for e in ends) +
                  f" s after the first upload started ({len(burst) / ends[-1]:.2f} photos/s)")
        client.close()
        print(f"{watcher.events} status events; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
