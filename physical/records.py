"""Typed run files: one record type per file a stage writes, read and validated in one place.

Every stage reads what earlier stages wrote through `read(...)` and writes its own file through
`write(...)`; no module parses a run file's JSON by hand. A record is a pydantic model:

* validation on read: a damaged, foreign or hand-edited file is one clear line naming the file
  and the first field that is wrong (``manifest.json: images.3.label.index: not an integer``),
  never a KeyError or TypeError deep inside a stage;
* a schema version per file: a file newer than this `physical` understands, or older than it
  can read, is one line saying which and what to do;
* the same types on write, so a stage cannot write a file that the next stage would refuse;
* JSON Schema for docs/internals.md, generated from these classes (`json_schemas()`).

Why pydantic (v2): the validation, the error locations and the JSON Schema come from one class
definition, and pydantic-core validates a manifest of thousands of images in milliseconds. Fields
a reader relies on are typed; blocks that are only recorded (camera draws, package versions,
attack settings) stay open dicts, and unknown extra fields are kept (`extra="allow"`), so a newer
writer's additions survive a round trip through an older reader.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from physical.errors import PhysicalError
from physical.workspace import Workspace, atomic_write_json, atomic_write_text, read_json


class Record(BaseModel):
    """Base of every record: extra fields kept, field names as in the JSON files."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def dump(self) -> dict:
        """The JSON object as written: fields as given (unset defaults are not added)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class FileRecord(Record):
    """A whole run file: carries its schema version and its run's name."""

    schema_version: int = Field(alias="schema")
    run: str


# ------------------------------------------------------------------------------ manifest.json
class Pred(Record):
    top5: list[int]
    prob5: list[float]


class Label(Record):
    index: int
    wnid: str | None = ""           # None for a model whose classes have no WordNet ids
    name: str | None = ""


class VariantFile(Record):
    """One PNG of an image: clean or adversarial."""

    file: str                       # relative to printouts/<run>/
    sha256: str
    pred: Pred | None = None        # the crafting model's prediction of the PNG as read back
    attack: str | None = None
    eps: float | None = None
    target: int | None = None       # targeted variants: the class aimed at


class ImageEntry(Record):
    id: str
    source: str
    source_sha256: str
    label: Label
    variants: dict[str, VariantFile]


class ModelInfo(Record):
    spec: str
    arch: str | None = None
    weights_sha256: str | None = None
    num_classes: int = 1000


class ProfileRef(Record):
    """The calibration profile an EOT channel was built from (`--channel profile.json`)."""

    path: str                       # as resolved when crafting
    sha256: str                     # of the file: its identity (the file may move)
    chart: dict[str, Any]           # the chart it was fitted on: name, version, id, paper
    heldout_mean_de00: float | None = None


class ChannelRec(Record):
    """The channel eot variants were optimised through (`physical.channel.Channel.describe`)."""

    table: str                      # a preset's name, or "profile"
    stages: list[str]
    ranges: dict[str, list[float]] | list[dict[str, list[float]]] = {}   # a mixture: one per member
    preset: str | None = None       # with a profile: the preset geometry and light are drawn from
    profile: ProfileRef | None = None


class AttackEntry(Record):
    """One entry of the manifest's attacks block (settings are recorded; the channel is typed)."""

    eps: list[float] = []
    channel: ChannelRec | None = None


class Manifest(FileRecord):
    created: str
    model: ModelInfo
    attacks: dict[str, AttackEntry]
    seed: int = 0
    versions: dict[str, str] = {}
    source: dict[str, Any] = {}
    variants: list[str]
    images: list[ImageEntry]
    skipped: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}


# ------------------------------------------------------------------------------ layout.json
class MarkerRec(Record):
    id: int
    role: str
    corners_mm: list[list[float]]


class SlotRec(Record):
    slot: int
    index: int
    image_id: str
    variant: str
    file: str
    sha256: str
    size_px: list[int]
    rect_mm: list[float]
    markers: list[MarkerRec]


class PageRec(Record):
    page: int
    slots: list[SlotRec]


class Layout(FileRecord):
    layout_id: str | None = None    # schema 2: the layout's own identity (in its markers' codes)
    created: str | None = None
    pdf: str
    pdf_sha256: str
    manifest_sha256: str
    paper: dict[str, Any]
    dpi: int
    dots_per_pixel: int
    image_mm: float
    variants: list[str]
    markers: dict[str, Any]
    run_tag: dict[str, int]
    n_slots: int
    pages: list[PageRec]


# ------------------------------------------------------------------------------ simulated.json
class SimulatedPhoto(Record):
    file: str                       # relative to captures/<run>/
    sha256: str
    page: int
    size: list[int]
    slots: list[dict[str, Any]]


class ChartPhoto(Record):
    """A small JPEG of one chart photo a profile was fitted on (`calibrate fit` keeps it in the
    profile, so the profile stays one file and a report can show what the fit saw)."""

    file: str                       # the photo's file name, as fitted
    sha256: str                     # of the photo (not of the thumbnail)
    width: int                      # of the thumbnail, pixels
    height: int
    jpeg_base64: str


class SimulatedProfile(Record):
    """simulate --profile: which profile printed and photographed the run. `file` is the copy kept
    in captures/<run>/ (the report reads it there, checked against `sha256`); older simulations
    recorded only `chart` and `heldout`."""

    chart: dict[str, Any]
    heldout: dict[str, Any]
    file: str | None = None         # relative to captures/<run>/
    sha256: str | None = None       # of that copy
    source: str | None = None       # the path the profile was given as


class Simulated(FileRecord):
    pdf_sha256: str
    layout_sha256: str
    preset: str
    seed: int
    photos_per_page: int
    resolution: list[int]
    pages: list[dict[str, Any]]
    photos: list[SimulatedPhoto]
    profile: SimulatedProfile | None = None     # simulate --profile


# ------------------------------------------------------------------------------ ingest.json
class PhotoRec(Record):
    file: str
    sha256: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    page: int | None = None
    slots_found: int = 0


class CropRec(Record):
    image_id: str
    variant: str
    file: str                       # relative to captures/<run>/
    photo: str
    photo_sha256: str
    used: bool = False
    sha256: str | None = None       # of the crop PNG (ingest ≥ schema 2)
    sharpness: float = 0.0
    reprojection_error_px: float = 0.0


class Ingest(FileRecord):
    layout_sha256: str
    photos: list[PhotoRec]
    crops: list[CropRec]
    sessions: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}


# ------------------------------------------------------------------------------ metrics.json
class MetricRow(Record):
    """One row of the paper's numbers: a model × variant × stage × subset (docs/metrics.md)."""

    model: str
    crafted_by: str
    attack: str
    eps: float | None
    variant: str
    stage: str
    subset: Literal["average", "prefiltered"]
    n: int


class CropPrediction(Record):
    model: str
    image_id: str
    variant: str
    stage: str
    top5: list[int]
    prob5: list[float]


class RunBlock(Record):
    """The context of an evaluation: which craft of which run, which models, which threshold."""

    name: str
    created: str
    manifest_sha256: str
    model: dict[str, Any] | None = None          # the crafting model (manifest's block)
    threshold: float
    models: list[dict[str, Any]]                 # the evaluating models' identities


class Metrics(FileRecord):
    """reports/<run>/metrics.json, written by `physical evaluate` only (PNG and photo stages)."""

    run: RunBlock
    photo: dict[str, Any] | None = None
    rows: list[MetricRow]
    transfer: dict[str, Any] | None = None
    predictions: list[CropPrediction] = []


class Transforms(FileRecord):
    """reports/<run>/transforms.json, written by `physical transforms` only (paper Section 4)."""

    run: RunBlock
    transforms: dict[str, Any]      # seed, kinds, grid, eps, ops, threshold, models, manifest_sha256
    rows: list[MetricRow]


# ------------------------------------------------------------------------------ the files
class Kind:
    """A run file: its record type, where it lives, the schema versions this code reads."""

    def __init__(self, name: str, record: type[FileRecord], tree: str, filename: str, version: int,
                 readable: tuple[int, ...], stage: str):
        self.name, self.record, self.tree, self.filename = name, record, tree, filename
        self.version, self.readable, self.stage = version, readable, stage

    def path(self, ws: Workspace, run: str) -> Path:
        return getattr(ws, self.tree)(run) / self.filename


MANIFEST = Kind("manifest", Manifest, "printouts", "manifest.json", 1, (1,), "craft")
LAYOUT = Kind("layout", Layout, "printouts", "layout.json", 2, (1, 2), "layout")
SIMULATED = Kind("simulated", Simulated, "captures", "simulated.json", 1, (1,), "simulate")
INGEST = Kind("ingest", Ingest, "captures", "ingest.json", 1, (1,), "ingest")
METRICS = Kind("metrics", Metrics, "reports", "metrics.json", 1, (1,), "evaluate")
TRANSFORMS = Kind("transforms", Transforms, "reports", "transforms.json", 1, (1,), "transforms")
KINDS = (MANIFEST, LAYOUT, SIMULATED, INGEST, METRICS, TRANSFORMS)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the file"
    return f"{where}: {err['msg'][0].lower() + err['msg'][1:]}"


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def parse(kind: Kind, data: Any, source: str | Path, run: str | None = None):
    """Validate an already-decoded JSON value as a `kind` record; PhysicalError on any problem."""
    label = f"{source}"
    if not isinstance(data, dict):
        raise PhysicalError(f"{label} is not {_a(kind.name)} file (a JSON {type(data).__name__}, not an object)")
    version = data.get("schema")
    if isinstance(version, int) and not isinstance(version, bool):
        if version > kind.version:
            raise PhysicalError(f"{label} has {kind.name} schema {version}, newer than this physical reads "
                                f"({', '.join(map(str, kind.readable))}): upgrade physical")
        if version not in kind.readable:
            raise PhysicalError(f"{label} has {kind.name} schema {version}, older than this physical reads: "
                                f"re-run `physical {kind.stage} --force`")
    try:
        record = kind.record.model_validate(data)
    except ValidationError as exc:
        raise PhysicalError(f"{label} is not a valid {kind.name} file ({_first_error(exc)}): "
                            f"re-run `physical {kind.stage}`") from None
    name = record.run if isinstance(record.run, str) else getattr(record.run, "name", None)
    if run is not None and name != run:
        raise PhysicalError(f"{label} belongs to run {name!r}, not {run!r} (copied from another run?)")
    return record


def read(kind: Kind, ws: Workspace, run: str, missing: str | None = None):
    """The `kind` file of run `run`, validated. `missing`: the message when there is none
    (default: a line saying which command makes it)."""
    path = kind.path(ws, run)
    if not path.exists():
        raise PhysicalError(missing or f"{path} does not exist: run `physical {kind.stage} --run {run}` first")
    return parse(kind, read_json(path), path, run)


def read_optional(kind: Kind, ws: Workspace, run: str):
    """The record, or None when the file does not exist (a damaged file is still an error)."""
    path = kind.path(ws, run)
    return parse(kind, read_json(path), path, run) if path.exists() else None


def write(kind: Kind, ws: Workspace, run: str, record: FileRecord | dict, compact: bool = False) -> Path:
    """Validate and write atomically; returns the path. A dict is validated as `kind` first.
    `compact`: one line (json's C encoder; indented JSON is written by its Python encoder, ~3x
    slower), for a file rewritten often before its final, indented, version (ingest.json)."""
    if isinstance(record, dict):
        record = kind.record.model_validate(record)
    elif not isinstance(record, kind.record):
        raise TypeError(f"expected a {kind.record.__name__}, got {type(record).__name__}")
    path = kind.path(ws, run)
    atomic_write_json(path, record.dump(), indent=None if compact else 1)
    return path


class Rewriter:
    """`write(kind, ws, run, record, compact=True)` for a file rewritten after every step while
    its lists grow (ingest.json after every photo): the same bytes, but an item of `lists` written
    before (the same object, with the same values under `watch`) is neither validated nor encoded
    again, so a rewrite costs what is new, not the whole file (~11 ms a photo on 24 photos, and
    growing). The caller only appends items, or changes their `watch` keys (a crop's "used"): an
    item changed otherwise would keep its old text. The final `write` validates everything."""

    def __init__(self, kind: Kind, ws: Workspace, run: str, lists: tuple[str, ...], watch: tuple[str, ...] = ()):
        self.kind, self.path, self.lists, self.watch = kind, kind.path(ws, run), lists, watch
        self._text: dict[int, tuple[dict, tuple, str]] = {}   # id(item) -> (item, its watched values, its JSON)

    def _known(self, item: dict) -> bool:
        seen = self._text.get(id(item))
        return seen is not None and seen[0] is item and seen[1] == tuple(item.get(k) for k in self.watch)

    def write(self, record: dict) -> Path:
        new = {k: [it for it in record[k] if not self._known(it)] for k in self.lists}
        dumped = self.kind.record.model_validate({**record, **new}).dump()   # new items and every other field
        enc = lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False)  # noqa: E731 (atomic_write_json's)
        for k in self.lists:
            for item, out in zip(new[k], dumped[k]):
                self._text[id(item)] = (item, tuple(item.get(w) for w in self.watch), enc(out))
        parts = [f"{enc(k)}: " + ("[" + ", ".join(self._text[id(it)][2] for it in record[k]) + "]"
                                  if k in self.lists else enc(v)) for k, v in dumped.items()]
        atomic_write_text(self.path, "{" + ", ".join(parts) + "}\n")
        return self.path


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every run file, for docs/internals.md."""
    return {kind.filename: kind.record.model_json_schema(by_alias=True) for kind in KINDS}


def schema_markdown() -> str:
    """docs/internals.md's generated section: one JSON Schema per run file."""
    parts = ["<!-- generated by `python docs/gen_schemas.py` from physical/records.py: do not edit -->"]
    for kind in KINDS:
        parts.append(f"### {kind.tree}/<run>/{kind.filename} (schema {kind.version}, written by "
                     f"`physical {kind.stage}`)\n\n```json\n"
                     + json.dumps(kind.record.model_json_schema(by_alias=True), indent=1) + "\n```")
    return "\n\n".join(parts) + "\n"
