"""Layout identity and history: which layouts of a run exist, and keeping their files paired.

Every layout (schema 2) has a ``layout_id`` of 16 random hex digits; its marker ids derive from
the run name and that id (`physical.markers.run_key`, id scheme "rs241-v2"). `physical layout`
keeps every layout it writes in ``printouts/<run>/layouts/<layout_id>/`` (layout.json and the
PDF), and, when ``--force`` replaces a schema-1 layout (no id), that one as
``layouts/v1-<first 16 hex digits of its layout.json's sha256>/``. Ingest reads photos of a
kept layout against that layout (physical/ingest.py); a new layout's id is drawn so that its tag
differs from every kept layout's and from the run's schema-1 tag (markers.py, "Identification
rule"), which is what lets one photo's markers name one layout.

Pairing: layout.json names its PDF by ``pdf_sha256``. `physical layout` writes the new pair to
``layouts/<id>/`` first, then replaces ``layout.json`` (the commit), then the PDF (a copy of the
kept one, never a hard link: a PDF edited in place must not damage the copy that restores it). An interruption between the last two leaves the earlier PDF beside the new
layout.json: `ensure_pdf` (called by layout, simulate and ingest) restores the right one from
``layouts/<id>/``. Before the commit nothing the user sees has changed; the new layout's folder
is then an unprinted layout that ingest reads harmlessly.
"""
from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from physical import markers
from physical.errors import PhysicalError
from physical.workspace import Workspace, atomic_write_bytes, read_json, sha256_file

log = logging.getLogger(__name__)

SCHEMA = 2
READ_SCHEMAS = (1, 2)     # 1: before layout ids (id scheme rs241-v1), read as before
LAYOUT_ID = re.compile(r"^[0-9a-f]{16}$")
HISTORY = "layouts"       # printouts/<run>/layouts/<label>/{layout.json, <run>.pdf}


def read_layout(path: Path, run: str | None = None) -> dict:
    """layout.json, checked enough for ingest and simulate to rely on (schema 1 or 2)."""
    lay = read_json(path)
    if not isinstance(lay, dict) or not isinstance(lay.get("pages"), list):
        raise PhysicalError(f"{path} is not a layout.json written by `physical layout` (no pages)")
    schema = lay.get("schema")
    if schema not in READ_SCHEMAS:
        newer = isinstance(schema, int) and schema > SCHEMA
        raise PhysicalError(f"{path} has layout schema {schema!r}, which this version of physical cannot read"
                            + (" (written by a newer version: upgrade physical)" if newer else
                               f" (expected {' or '.join(map(str, READ_SCHEMAS))})"))
    if schema >= 2 and not (isinstance(lay.get("layout_id"), str) and LAYOUT_ID.match(lay["layout_id"])):
        raise PhysicalError(f"{path} has no valid layout_id (16 hex digits): re-run `physical layout --force`")
    if not isinstance(lay.get("run_tag"), dict) or not isinstance(lay["run_tag"].get("tag"), int):
        raise PhysicalError(f"{path} has no run_tag: re-run `physical layout --force`")
    if run is not None and lay.get("run") != run:
        raise PhysicalError(f"{path} is a layout of run {lay.get('run')!r}, not of run {run!r}")
    from physical import records

    return records.parse(records.LAYOUT, lay, path, run).dump()   # every field's type


def layout_label(layout: dict, path: Path | None = None) -> str:
    """A layout's name in messages, crop records and the history folder: its layout_id, or for a
    schema-1 layout "v1-" + the first 16 hex digits of its layout.json's sha256."""
    if layout.get("layout_id"):
        return layout["layout_id"]
    if path is None:
        return "v1"
    return "v1-" + sha256_file(path)[:16]


def history_dir(ws: Workspace, run: str) -> Path:
    return ws.printouts(run) / HISTORY


def kept_layouts(ws: Workspace, run: str) -> dict[str, dict]:
    """Every kept layout of the run, {label: layout}, sorted by label (current one included)."""
    folder = history_dir(ws, run)
    out = {}
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir()):
        path = sub / "layout.json"
        if sub.name.startswith(".") or not path.is_file():
            continue
        lay = read_layout(path, run)
        label = layout_label(lay, path)
        if label != sub.name:
            raise PhysicalError(f"{path} is the layout {label}, not {sub.name}: move it back to "
                                f"{folder / label} or delete it")
        out[label] = lay
    return out


def _new_layout_id(run: str, kept: dict[str, dict], current: dict | None, wanted: str | None) -> str:
    """A layout id whose tag no kept layout of the run (nor its schema-1 layouts) has."""
    others = [lay for label, lay in kept.items() if label != wanted]
    if current is not None and current.get("layout_id") not in kept and current.get("layout_id") != wanted:
        others.append(current)
    used = {markers.run_key(run).tag} | {int(lay["run_tag"]["tag"]) for lay in others}
    if wanted is not None:
        if not LAYOUT_ID.match(wanted):
            raise PhysicalError(f"layout id {wanted!r} is not 16 hex digits")
        if markers.run_key(run, wanted).tag in used:
            raise PhysicalError(f"layout id {wanted} has the tag of another layout of run {run!r}")
        return wanted
    if len(used) >= markers.PRIME:
        raise PhysicalError(f"run {run!r} keeps {len(used) - 1} layouts, one per marker tag: delete old ones "
                            f"from printouts/{run}/{HISTORY}/ (their sheets can then no longer be read)")
    while True:
        lid = secrets.token_hex(8)
        if markers.run_key(run, lid).tag not in used:
            return lid


def _keep(ws: Workspace, run: str, current: dict) -> None:
    """Copy the layout being replaced into layouts/<label>/ unless it is there already (layouts
    made by this version are; a schema-1 one is not). Its PDF only when it is the one it names."""
    layout_path, pdf_path = ws.layout_path(run), ws.pdf_path(run)
    folder = history_dir(ws, run) / layout_label(current, layout_path)
    if (folder / "layout.json").exists():
        return
    if pdf_path.exists() and sha256_file(pdf_path) == current.get("pdf_sha256"):
        _copy_file(pdf_path, folder / pdf_path.name)
    else:
        log.warning("%s is not the PDF %s describes: keeping the layout without it", pdf_path, layout_path)
    atomic_write_bytes(folder / "layout.json", layout_path.read_bytes())


def ensure_pdf(ws: Workspace, run: str, layout: dict, required: bool = True) -> Path:
    """The run's PDF, checked against layout.json's pdf_sha256; when another PDF is found there
    (an interrupted `physical layout`), the right one is restored from layouts/<id>/. Raises
    (when `required`) if neither is there."""
    pdf_path = ws.pdf_path(run)
    want = layout.get("pdf_sha256")
    if want is None or (pdf_path.exists() and sha256_file(pdf_path) == want):
        return pdf_path
    kept = history_dir(ws, run) / layout_label(layout, ws.layout_path(run)) / pdf_path.name
    if kept.exists() and sha256_file(kept) == want:
        log.warning("%s is not the PDF layout.json describes (an interrupted `physical layout`): restored it "
                    "from %s", pdf_path, kept)
        _copy_file(kept, pdf_path)
        return pdf_path
    if required:
        state = "is not the PDF" if pdf_path.exists() else "is missing, the PDF"
        raise PhysicalError(f"{pdf_path} {state} {ws.layout_path(run)} describes (pdf_sha256): re-run "
                            f"`physical layout --run {run} --force`")
    return pdf_path


def _copy_file(src: Path, dst: Path) -> None:
    """Atomically put a copy of `src`'s bytes at `dst` (its own inode: editing one leaves the other)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, src.read_bytes())
