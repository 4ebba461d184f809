"""Images/s through a local Open Inference Protocol server vs the same model called directly.

    python benchmarks/service_speed.py [--images 32] [--service-batch 8] [--concurrency 2] [--repeat 3]

"direct": `physical.evaluate.evaluate()` on a run (clean + one adversarial PNG per image) with the
default model in this process (model loading excluded), as in benchmarks/eval_speed.py.
"service": the same call with `--model oip:…` against KServe's ModelServer serving the same model
on 127.0.0.1 (tests/oip_runtime.py, a separate process started here): every PNG travels as a JSON
tensor (UINT8 NHWC, or FP32 NCHW), is decoded by the server, classified, and its 1000 scores come
back as JSON. Both processes share this machine's cores, so the server's forward pass costs what the
direct one does; the difference per image is the protocol's overhead (encode, HTTP, decode).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import physical.models as pm
from eval_speed import fake_run
from physical.evaluate import evaluate
from physical.service import ServiceOptions, session

ROOT = Path(__file__).resolve().parent.parent


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "oip_runtime.py"), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the OIP server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="images (each has a clean and an adversarial PNG)")
    ap.add_argument("--batch-size", type=int, default=16, help="direct: images per forward pass")
    ap.add_argument("--service-batch", type=int, default=8, help="service: images per request")
    ap.add_argument("--concurrency", type=int, default=2, help="service: requests in flight")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions of each (best is reported)")
    args = ap.parse_args()

    model = pm.load_model("default", device="cpu")
    pm.load_model = lambda *a, **k: model   # evaluate() must not reload it
    proc, url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = fake_run(tmp, args.images, model.input_size)
            n = 2 * args.images
            opts = ServiceOptions(batch=args.service_batch, concurrency=args.concurrency)
            runs = {"direct": ["default"], "service UINT8 NHWC": [f"oip:{url}/v2/models/lite0"],
                    "service FP32 NCHW": [f"oip:{url}/v2/models/lite0-fp32"]}

            def timed(specs):
                with session(specs, opts) as clean:
                    t0 = time.perf_counter()
                    evaluate(ws, "bench", models=clean, batch_size=args.batch_size, device="cpu", progress=False)
                    return time.perf_counter() - t0

            for specs in runs.values():   # warm-up (server threads, file cache)
                timed(specs)
            times = {name: [] for name in runs}
            for _ in range(args.repeat):  # interleaved, so load changes hit all alike
                for name, specs in runs.items():
                    times[name].append(timed(specs))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    best = {name: min(t) for name, t in times.items()}
    print(f"{n} images of {model.input_size}px, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}, "
          f"cpu cores {os.cpu_count()}, service batch {args.service_batch} × {args.concurrency} in flight, "
          f"best of {args.repeat}")
    direct = best["direct"]
    for name, t in best.items():
        extra = "" if name == "direct" else f"   overhead {1000 * (t - direct) / n:6.1f} ms/image"
        print(f"{name:<20}: {n / t:7.1f} img/s  ({t:.2f} s){extra}")


if __name__ == "__main__":
    main()
