"""Data-parallel runs: torchrun ranks, `--shard K/N` jobs, deterministic shards, merges.

Every process collects the same sorted list of images (data.collect) and takes the items
whose index i satisfies i % N == K — the same split whatever the machine, so a rerun with the
same N gives each process the same images. Two ways to get N processes:

* torchrun (or `--procs N`, which starts the same elastic launcher from Python): RANK and
  WORLD_SIZE come from the environment, a process group is opened (gloo for CPU tensors and
  objects, NCCL for CUDA ones), and rank 0 merges after a barrier;
* `--shard K/N` for schedulers without torch.distributed (SLURM arrays, Ray, Dask): no process
  group, each job writes its shard record and `physical merge --run R` combines them.

A crafting shard writes `printouts/<run>/.shards/shard-K-of-N.json`: the manifest a single
process would write, restricted to its images, plus the images' positions in the full list, so
the merge rebuilds exactly the single-process manifest (images in the same order, once each).
The record is rewritten after every batch, like the manifest: a rank that dies leaves its images
recorded, and any later craft of the run (sharded or not) takes them in before it starts.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from physical.errors import PhysicalError

SHARDS = ".shards"
SHARD_FILE = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")
# A barrier waits for the slowest rank: a resumed run can leave one rank with most of the work.
TIMEOUT = timedelta(hours=24)


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise PhysicalError("RANK/WORLD_SIZE/LOCAL_RANK must be integers (set by torchrun)") from None


def under_torchrun() -> bool:
    return env_world()[1] > 1


def init_from_env() -> None:
    """Open the process group of a torchrun world (once). CPU tensors and Python objects travel
    over gloo; CUDA tensors over NCCL when there is a GPU (each rank on its LOCAL_RANK device)."""
    import torch
    import torch.distributed as dist

    if not under_torchrun() or dist.is_initialized():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(env_world()[2] % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend, timeout=TIMEOUT)


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise PhysicalError(f"--shard must be K/N with 0 <= K < N (e.g. 0/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Part:
    """Which share of a run's images this process handles."""
    index: int = 0
    count: int = 1
    collective: bool = False    # a torchrun world: barriers and gathers

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def leader(self) -> bool:
        return self.index == 0

    def select(self, items: list) -> list:
        return [it for i, it in enumerate(items) if i % self.count == self.index]

    def barrier(self) -> None:
        if self.collective:
            import torch.distributed as dist

            dist.barrier()

    def shard_path(self, folder: Path) -> Path:
        return Path(folder) / SHARDS / f"shard-{self.index}-of-{self.count}.json"


def partition(shard: str | None = None) -> Part:
    """The Part of this process: `--shard K/N`, else torchrun's rank/world, else the whole run."""
    if shard:
        if under_torchrun():
            raise PhysicalError("--shard K/N is for jobs started without torchrun; under torchrun "
                                "the ranks share the run by themselves")
        index, count = parse_shard(shard)
        return Part(index, count, False)
    rank, world, _ = env_world()
    if world > 1:
        init_from_env()
        return Part(rank, world, True)
    return Part()


# ----------------------------------------------------------------------------- craft shards
def shard_record(part: Part, manifest: dict, all_items: list, n_collect_skipped: int) -> dict:
    """The manifest restricted to this shard, plus what the merge needs to put it back in place."""
    position = {it.id: i for i, it in enumerate(all_items)}
    by_path = {it.path: i for i, it in enumerate(all_items)}
    return {**manifest, "shard": {
        "index": part.index, "count": part.count, "total": len(all_items),
        "positions": {e["id"]: position[e["id"]] for e in manifest["images"]},
        "collect_skipped": n_collect_skipped,
        "load_skipped_positions": [by_path.get(s["source"], -1) for s in manifest["skipped"][n_collect_skipped:]],
    }}


def write_shard(part: Part, folder: Path, manifest: dict, all_items: list, n_collect_skipped: int) -> dict:
    from physical.workspace import atomic_write_json

    record = shard_record(part, manifest, all_items, n_collect_skipped)
    atomic_write_json(part.shard_path(folder), record)
    return record


def shard_files(folder: Path) -> list[Path]:
    root = Path(folder) / SHARDS
    return sorted(p for p in root.glob("shard-*-of-*.json") if SHARD_FILE.match(p.name)) if root.is_dir() else []


def leftovers(folder: Path) -> list[dict]:
    """Shard records left in a run folder (a sharded craft that has not been merged, or a rank
    that died): their images count as crafted once their PNGs check out."""
    from physical.workspace import read_json

    return [read_json(p) for p in shard_files(folder)]


def clear_shards(folder: Path) -> None:
    for p in shard_files(folder):
        p.unlink(missing_ok=True)
    try:
        (Path(folder) / SHARDS).rmdir()
    except OSError:
        pass


def merge_records(records: list[dict], count: int | None = None) -> dict:
    """One manifest from a complete set of shard records (all K of one N), as one process writes it."""
    from physical.craft import summarize

    by_count: dict[int, dict[int, dict]] = {}
    for rec in records:
        by_count.setdefault(int(rec["shard"]["count"]), {})[int(rec["shard"]["index"])] = rec
    if count is None:
        complete = [n for n, got in by_count.items() if len(got) == n]
        if not complete:
            n, got = max(by_count.items(), key=lambda kv: len(kv[1]))
            missing = ", ".join(f"{k}/{n}" for k in range(n) if k not in got)
            raise PhysicalError(f"shards {missing} are missing: run them (physical craft ... --shard K/{n}) "
                                "before merging")
        count = max(complete, key=lambda n: max(r.get("created", "") for r in by_count[n].values()))
    got = by_count.get(count, {})
    if len(got) != count:
        missing = ", ".join(f"{k}/{count}" for k in range(count) if k not in got)
        raise PhysicalError(f"shards {missing} are missing: they must finish before the merge")
    recs = [got[k] for k in range(count)]
    first = recs[0]
    for rec in recs[1:]:
        for key in ("model", "attacks", "variants", "source", "seed"):
            if rec.get(key) != first.get(key):
                raise PhysicalError(f"shard {rec['shard']['index']}/{count} was crafted with other {key} "
                                    f"than shard 0/{count}: craft all shards with the same command")
        if rec["shard"]["total"] != first["shard"]["total"]:
            raise PhysicalError(f"shard {rec['shard']['index']}/{count} saw another image list "
                                f"({rec['shard']['total']} images, shard 0 saw {first['shard']['total']})")
    placed, load_skipped = {}, []
    for rec in recs:
        info = rec["shard"]
        for entry in rec["images"]:
            placed[info["positions"][entry["id"]]] = entry
        n = info["collect_skipped"]
        load_skipped += list(zip(info["load_skipped_positions"], rec["skipped"][n:]))
    manifest = {k: v for k, v in first.items() if k != "shard"}
    manifest["created"] = min(r["created"] for r in recs)
    manifest["images"] = [placed[i] for i in sorted(placed)]
    manifest["skipped"] = first["skipped"][:first["shard"]["collect_skipped"]] + \
        [s for _, s in sorted(load_skipped, key=lambda ps: ps[0])]
    if not manifest["images"]:
        reasons = "; ".join(sorted({s["reason"] for s in manifest["skipped"]}))[:300]
        raise PhysicalError(f"no image could be read from {manifest['source']['images']} ({reasons})")
    manifest["summary"] = summarize(manifest)
    return manifest


def merge_run(ws, run: str, count: int | None = None) -> dict:
    """`physical merge`: shard records → printouts/<run>/manifest.json (then the records go)."""
    with ws.lock(run, "merge"):
        return _merge_run(ws, run, count)


def _merge_run(ws, run: str, count: int | None) -> dict:
    from physical import records as run_records

    folder = ws.printouts(run)
    records = leftovers(folder)
    if not records:
        raise PhysicalError(f"run {run!r} has no shard records in {folder / SHARDS} "
                            "(craft with --shard K/N first, or it was merged already)")
    manifest = merge_records(records, count)
    run_records.write(run_records.MANIFEST, ws, run, manifest)
    clear_shards(folder)
    return manifest


def finish_craft(part: Part, ws, run: str, manifest: dict, all_items: list, n_collect_skipped: int) -> dict:
    """End of a sharded craft: write this shard's record; under torchrun rank 0 merges once every
    rank has written its own, and every rank returns the merged manifest."""
    record = write_shard(part, ws.printouts(run), manifest, all_items, n_collect_skipped)
    if not part.collective:
        return record
    part.barrier()
    if part.leader:
        merge_run(ws, run, part.count)
    part.barrier()
    return ws.load_manifest(run).dump()


# ----------------------------------------------------------------------------- predictions
def shard_rows(items: list, predict):
    """`predict(items) -> Preds` spread over a torchrun world: each rank predicts items i % N == rank,
    the rows are all-gathered, and every rank returns the Preds of all items in order."""
    rank, world, _ = env_world()
    if world == 1:
        return predict(items)
    import numpy as np
    import torch.distributed as dist

    init_from_env()
    local = predict(items[rank::world])
    gathered = [None] * world
    dist.all_gather_object(gathered, (local.top5, local.prob5))
    top5 = np.zeros((len(items), gathered[0][0].shape[1]), dtype=gathered[0][0].dtype)
    prob5 = np.zeros((len(items), gathered[0][1].shape[1]), dtype=gathered[0][1].dtype)
    for r, (t, p) in enumerate(gathered):
        top5[r::world], prob5[r::world] = t, p
    return type(local)(top5, prob5)


def is_writer() -> bool:
    """Whether this process writes a stage's shared outputs (rank 0 under torchrun, else always)."""
    return env_world()[0] == 0


# ----------------------------------------------------------------------------- launcher
def relaunch_args(ctx, drop=("procs",)) -> list[str]:
    """The command line of a click command rebuilt from its parsed parameters (without `drop`),
    with the group's workspace: what each rank of `--procs N` runs."""
    import click

    args = ["--workspace", str(ctx.obj["workspace"].root)]
    if ctx.obj.get("quiet"):
        args.append("--quiet")
    args.append(ctx.info_name)
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        value = ctx.params.get(param.name)
        flag = param.opts[-1] if len(param.opts[-1]) > 2 else param.opts[0]
        if param.is_flag:
            if value:
                args.append(flag)
        elif value is None:
            continue
        elif param.multiple:
            for v in value:
                args += [flag, str(v)]
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def launch(nprocs: int, args: list[str]) -> None:
    """Run `python -m physical ARGS` as `nprocs` ranks on this machine: torchrun --standalone's
    elastic launcher, started from Python (a rendezvous on a free local port, no restarts)."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if under_torchrun():
        raise PhysicalError("--procs starts its own ranks: under torchrun leave it out")
    # torchrun's rule: one thread per rank unless told (N ranks × all cores oversubscribe the CPU).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nprocs)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nprocs, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.5, start_method="spawn")
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "physical", *args)
    except ChildFailedError as exc:
        ranks = ", ".join(str(f.local_rank) for f in exc.failures.values())
        raise PhysicalError(f"rank {ranks} of {nprocs} failed (its error is printed above); "
                            "the run resumes where it stopped when you run the same command again") from None
