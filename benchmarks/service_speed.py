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
import torch

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
                    t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
                    evaluate(ws, "bench", models=clean, batch_size=args.batch_size, device="cpu", progress=False)
                    return time.perf_counter() - t0, cpu_seconds(proc.pid) - c0

            for specs in runs.values():   # warm-up (server threads, file cache)
                timed(specs)
            times = {name: [] for name in runs}
            for _ in range(args.repeat):  # interleaved, so load changes hit all alike
                for name, specs in runs.items():
                    times[name].append(timed(specs))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{n} images of {model.input_size}px, torch threads {torch.get_num_threads()}, cpu cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, service batch {args.service_batch} × {args.concurrency} in flight, "
          f"best of {args.repeat}")
    wall = {name: min(w for w, _ in t) for name, t in times.items()}
    cpu = {name: min(c for _, c in t) for name, t in times.items()}
    for name in runs:
        extra = "" if name == "direct" else (f"   overhead {1000 * (wall[name] - wall['direct']) / n:6.1f} ms/image wall, "
                                              f"{1000 * (cpu[name] - cpu['direct']) / n:6.1f} ms/image CPU")
        print(f"{name:<20}: {n / wall[name]:7.1f} img/s  ({wall[name]:.2f} s wall, {cpu[name]:.2f} s CPU "
              f"client + server){extra}")
    print("CPU = user + system seconds of this process and the server's; on a busy machine the CPU "
          "overhead is the figure to trust (wall time depends on the share of cores each process gets)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of this process plus those of process `pid` (Linux /proc)."""
    own = os.times()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return own.user + own.system + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
