"""Time `physical demo` stage by stage, in a fresh temporary workspace.

    python benchmarks/demo_time.py [--quick] [--keep DIR]

Prints each stage's wall time and the total (the issue's budget: 3 minutes on 2 CPU cores).
"""
import argparse
import tempfile
import time

from click.testing import CliRunner

from physical.cli import main


def run():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="physical demo --quick")
    parser.add_argument("--keep", default=None, help="workspace folder to use (kept afterwards)")
    args = parser.parse_args()
    workspace = args.keep or tempfile.mkdtemp(prefix="physical-demo-")
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["--workspace", workspace, "-q", "demo", *(["--quick"] if args.quick else [])])
    total = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(result.output)
    for line in result.output.splitlines():
        if line.startswith("["):
            name, seconds = line[6:16].strip(), line.rsplit("(", 1)[-1].rstrip(")")
            print(f"{name:<11} {seconds:>6}")
    print(f"{'total':<11} {total:5.0f} s   (model loading and start-up included; workspace {workspace})")


if __name__ == "__main__":
    run()
