"""The run's files → what the report shows. The only module of the report that reads the run.

    printouts/<run>/manifest.json   header, galleries (PNG predictions), the prefilter curve
    printouts/<run>/layout.json     (presence only), printouts/<run>/<run>.pdf (presence only)
    captures/<run>/photos/          (listing only)
    captures/<run>/ingest.json      ingest section, photo crops in the galleries
    reports/<run>/metrics.json      the paper's Table 1, plots, the transfer matrix, and the
                                    crop predictions evaluate stored (schema: docs/metrics.md)
    reports/<run>/transforms.json   the transform rows (paper Section 4)
    captures/<run>/profile.json     the calibration profile of `simulate --profile` (or the one
                                    the manifest's EOT channel names), for the calibration section

Every file but the manifest is optional. Each is read once and normalised here into the small
frozen records below, so tables, plots and gallery index fields directly instead of re-checking
types: a number is a finite float or None, a name is a str, a list is a list. An unreadable
optional file becomes a line in `RunInputs.problems` and the page leaves its sections out.

The readers (`read_manifest`, `read_ingest`, `read_metrics`, `list_photos`, `read_run`) read
through physical.records (validated once, schema-checked); the views below turn the records into
what the page shows.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from physical.errors import PhysicalError
from physical import records
from physical.workspace import Workspace

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# normalising values
# --------------------------------------------------------------------------------------------

def num(v: Any) -> float | None:
    """A finite float, or None (missing, bool, text, NaN, ∞)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _pair(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        lo, hi = num(v[0]), num(v[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _dicts(v: Any) -> list[dict]:
    return [x for x in _list(v) if isinstance(x, dict)]


def _text(v: Any) -> str | None:
    """A non-empty value as text, else None."""
    return str(v) if v not in (None, "") else None


_VARIANT = re.compile(r"^(?P<attack>.+?)-eps(?P<eps>[0-9]+(?:\.[0-9]+)?)(?:-to(?P<target>[0-9]+))?$")


def variant_parts(name: str) -> tuple[str, float | None]:
    """(attack, ε) of a variant name `<attack>-eps<ε>[-to<class>]`; (name, None) for `clean` and
    anything else."""
    m = _VARIANT.match(name)
    return (m["attack"], float(m["eps"])) if m else (name, None)


def variant_target(name: str | None) -> int | None:
    """The class of a targeted variant name (`…-to<class>`); None for the others. (The twin of
    `attacks.variant_target`, which the report does not import: physical.attacks loads torch.)"""
    m = _VARIANT.match(name or "")
    return int(m["target"]) if m and m["target"] else None


def inside(base: Path, rel: Any) -> Path | None:
    """`base/rel` when it is an existing file inside `base` (paths in run files are data)."""
    if not rel or not isinstance(rel, str):
        return None
    try:
        path = (base / rel).resolve()
        path.relative_to(base.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pred:
    """A top-5 prediction (class indices, probabilities; top5 is never empty)."""
    top5: tuple[int, ...]
    prob5: tuple[float | None, ...]

    @classmethod
    def of(cls, v: Any) -> Pred | None:
        v = _dict(v)
        top5 = tuple(int(c) for c in v.get("top5") or () if _int(c) is not None)
        if not top5:
            return None
        return cls(top5, tuple(num(p) for p in v.get("prob5") or ()))

    @property
    def top1(self) -> int:
        return self.top5[0]

    @property
    def conf(self) -> float | None:
        return self.prob5[0] if self.prob5 else None


@dataclass(frozen=True)
class Variant:
    name: str
    attack: str          # "clean" for the clean image
    eps: float | None
    file: str | None     # relative to printouts/<run>/
    sha256: str | None   # as craft recorded it: the gallery shows only that file
    pred: Pred | None
    flipped: bool        # top-1 changed when the float image was saved as 8-bit PNG
    target: int | None = None   # targeted variants (`…-to<class>`): the class aimed at


@dataclass(frozen=True)
class ImageRec:
    id: str
    label_index: int | None
    label_name: str | None
    wnid: str | None
    variants: dict[str, Variant]


@dataclass(frozen=True)
class ModelInfo:
    spec: str | None = None
    arch: str | None = None
    weights_sha256: str | None = None
    input_size: int | None = None
    num_classes: int | None = None


@dataclass(frozen=True)
class Attack:
    name: str
    eps: tuple[float, ...]
    params: dict          # everything else of the manifest's attack block (alpha, steps_rule, …)


@dataclass(frozen=True)
class Manifest:
    model: ModelInfo
    variants: list[str]
    images: list[ImageRec]
    attacks: list[Attack]             # from the attacks block, else read off the variant names
    seed: int | None = None
    created: str | None = None
    source: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    n_skipped: int = 0

    def variant_parts(self, name: str) -> tuple[str, float | None]:
        """(attack, ε) of a variant as the images record it, else as its name says."""
        for image in self.images:
            if name in image.variants:
                v = image.variants[name]
                return v.attack, v.eps
        return variant_parts(name)


def _variant(name: str, rec: dict) -> Variant:
    if rec.get("attack") is not None:
        attack, eps = str(rec["attack"]), num(rec.get("eps"))
    else:
        attack, eps = variant_parts(name)
    target = _int(rec.get("target"))
    if target is None:
        target = variant_target(name)
    return Variant(name, attack, eps, _text(rec.get("file")), _text(rec.get("sha256")), Pred.of(rec.get("pred")),
                   bool(rec.get("quantization_flipped")), target)


def _image(im: dict) -> ImageRec:
    label = _dict(im.get("label"))
    variants = {str(n): _variant(str(n), rec) for n, rec in _dict(im.get("variants")).items() if isinstance(rec, dict)}
    return ImageRec(str(im.get("id")), _int(label.get("index")), _text(label.get("name")), _text(label.get("wnid")),
                    variants)


def _attacks(block: dict, variant_names: list[str]) -> list[Attack]:
    """The manifest's attacks block; without one, the attacks read off the variant names."""
    attacks = []
    for name, params in block.items():
        params = _dict(params)
        eps = tuple(e for e in map(num, _list(params.get("eps"))) if e is not None)
        attacks.append(Attack(str(name), eps, {k: v for k, v in params.items() if k != "eps"}))
    if attacks:
        return attacks
    seen: dict[str, list[float]] = {}
    for v in variant_names:
        a, e = variant_parts(v)
        if e is not None:
            seen.setdefault(a, []).append(e)
    return [Attack(a, tuple(sorted(es)), {}) for a, es in seen.items()]


def manifest_view(doc: Any) -> Manifest:
    """A manifest document (dict) as a `Manifest`; tolerant of missing or odd fields."""
    doc = _dict(doc)
    model = _dict(doc.get("model"))
    variant_names = [str(v) for v in _list(doc.get("variants"))]
    return Manifest(
        model=ModelInfo(_text(model.get("spec")), _text(model.get("arch")), _text(model.get("weights_sha256")),
                        _int(model.get("input_size")), _int(model.get("num_classes"))),
        variants=variant_names, images=[_image(im) for im in _dicts(doc.get("images"))],
        attacks=_attacks(_dict(doc.get("attacks")), variant_names), seed=_int(doc.get("seed")),
        created=_text(doc.get("created")), source=_dict(doc.get("source")), summary=_dict(doc.get("summary")),
        versions=_dict(doc.get("versions")), n_skipped=len(_list(doc.get("skipped"))))


@dataclass(frozen=True)
class Row:
    """One metrics.json row (docs/metrics.md): its keys, counts, and every number in it."""
    model: str
    attack: str           # "clean" when the row has none
    eps: float | None
    stage: str            # png | photo | transform:<kind>:<value>
    subset: str           # average | prefiltered
    n: int | None
    values: dict[str, float | None]
    cis: dict[str, tuple[float, float]]
    variant: str | None = None
    target: int | None = None    # targeted variants' rows: the class aimed at (None: untargeted)

    def v(self, name: str) -> float | None:
        return self.values.get(name)

    def ci(self, name: str) -> tuple[float, float] | None:
        return self.cis.get(name)

    def count(self, name: str) -> int | None:
        """An integer field (clean_n, destruction_n, …) — kept exact, not as a float."""
        v = self.values.get(name)
        return int(v) if v is not None and v == int(v) else None


_ROW_KEYS = ("model", "attack", "eps", "stage", "subset", "n", "variant", "crafted_by", "transform")


def row_view(r: dict) -> Row:
    variant = _text(r.get("variant"))
    target = _int(r.get("target"))
    if target is None:
        target = variant_target(variant)
    return Row(model=str(r.get("model")), attack=str(r["attack"]) if r.get("attack") is not None else "clean",
               eps=num(r.get("eps")), stage=str(r.get("stage")), subset=str(r.get("subset") or "average"),
               n=_int(r.get("n")),
               values={k: num(v) for k, v in r.items() if k not in _ROW_KEYS and not k.endswith("_ci")},
               cis={k[:-3]: c for k, v in r.items() if k.endswith("_ci") and (c := _pair(v)) is not None},
               variant=variant, target=target)


@dataclass(frozen=True)
class TransferEntry:
    stage: str                        # "digital" or "photo"
    attack: str
    eps: float | None
    error: dict[str, float | None]    # evaluating model → adversarial top-1 error
    target: int | None = None         # a targeted variant's class (its column must not merge with the untargeted one)


@dataclass(frozen=True)
class Transfer:
    crafted_by: str
    models: list[str]
    entries: list[TransferEntry]


@dataclass(frozen=True)
class Metrics:
    rows: list[Row]
    transfer: Transfer | None = None
    crop_predictions: dict[tuple[str, str, str], Pred] = field(default_factory=dict)  # (model, image id, variant)
    run: dict = field(default_factory=dict)       # evaluate's `run` block
    photo_message: str | None = None

    @property
    def models(self) -> list[str]:
        """The evaluating models, in the rows' order."""
        return list(dict.fromkeys(r.model for r in self.rows))

    @property
    def versions(self) -> dict:
        return _dict(self.run.get("versions"))


def metrics_view(doc: Any) -> Metrics | None:
    """A metrics document as `Metrics`; None when it has no `rows` list."""
    doc = _dict(doc)
    if not isinstance(doc.get("rows"), list):
        return None
    t = _dict(doc.get("transfer"))
    transfer = None
    if isinstance(t.get("entries"), list):
        entries = [TransferEntry("photo" if e.get("stage") == "photo" else "digital", str(e.get("attack")),
                                 num(e.get("eps")), {str(m): num(v) for m, v in e["error"].items()},
                                 variant_target(_text(e.get("variant"))))
                   for e in _dicts(t["entries"]) if isinstance(e.get("error"), dict)]
        transfer = Transfer(_text(t.get("crafted_by")) or "?", [str(m) for m in _list(t.get("models"))], entries)
    preds: dict[tuple[str, str, str], Pred] = {}
    for p in _dicts(doc.get("predictions")):
        pred = Pred.of(p)
        if pred is not None and p.get("stage", "photo") == "photo":
            preds.setdefault((str(p.get("model")), str(p.get("image_id")), str(p.get("variant"))), pred)
    return Metrics([row_view(r) for r in _dicts(doc["rows"])], transfer, preds, _dict(doc.get("run")),
                   _text(_dict(doc.get("photo")).get("message")))


@dataclass(frozen=True)
class Photo:
    file: str
    status: str            # accepted | rejected | …
    reason: str | None
    page: Any
    slots_found: Any


@dataclass(frozen=True)
class Crop:
    image_id: str
    variant: str
    file: str | None       # relative to captures/<run>/
    sha256: str | None     # as ingest recorded it (ingest.json of earlier versions: none)
    used: bool
    reprojection_error_px: float | None


@dataclass(frozen=True)
class Ingest:
    photos: list[Photo]
    crops: list[Crop]


def ingest_view(doc: Any) -> Ingest:
    doc = _dict(doc)
    photos = [Photo(str(p.get("file")), str(p.get("status") or ("accepted" if not p.get("reason") else "rejected")),
                    _text(p.get("reason")), p.get("page"), p.get("slots_found"))
              for p in _dicts(doc.get("photos"))]
    crops = [Crop(str(c.get("image_id")), str(c.get("variant")), _text(c.get("file")), _text(c.get("sha256")),
                  bool(c.get("used", True)),
                  num(c.get("reprojection_error_px")))
             for c in _dicts(doc.get("crops"))]
    return Ingest(photos, crops)


# --------------------------------------------------------------------------------------------
# reading the run
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunInputs:
    """Everything the page is built from."""
    run: str
    manifest: Manifest
    ingest: Ingest | None
    metrics: Metrics | None
    photos: list[Path]             # captures/<run>/photos/, as ingest lists them
    printouts: Path                # base folders for the relative file names in the records
    captures: Path
    out: Path                      # reports/<run>/
    has_layout: bool
    pdf_name: str | None           # the PDF's file name when it exists
    simulated: bool                # captures/<run>/simulated.json exists
    has_metrics_csv: bool
    problems: list[str]            # optional files that could not be read
    profile: dict | None = None    # the calibration profile the run was made with (read_profile)
    profile_origin: str | None = None   # where it came from, in words


def _read_optional(kind: records.Kind, ws: Workspace, run: str, problems: list[str]) -> dict | None:
    """An optional run file, validated by physical.records; a damaged one becomes a problem line."""
    try:
        rec = records.read_optional(kind, ws, run)
    except PhysicalError as exc:
        problems.append(str(exc))
        return None
    return None if rec is None else rec.dump()


def read_manifest(ws: Workspace, run: str) -> Manifest:
    """The run's manifest (no run → PhysicalError, one line)."""
    return manifest_view(ws.load_manifest(run).dump())


def read_ingest(ws: Workspace, run: str, problems: list[str]) -> Ingest | None:
    doc = _read_optional(records.INGEST, ws, run, problems)
    return None if doc is None else ingest_view(doc)


def read_metrics(ws: Workspace, run: str, problems: list[str]) -> Metrics | None:
    """evaluate's metrics.json with the rows of transforms.json (each command's own file)."""
    doc = _read_optional(records.METRICS, ws, run, problems)
    transformed = _read_optional(records.TRANSFORMS, ws, run, problems)
    if doc is None and transformed is None:
        return None
    doc = doc or {"rows": [], "run": transformed["run"]}
    if transformed is not None:
        doc = {**doc, "rows": doc["rows"] + transformed["rows"]}
    return metrics_view(doc)


def list_photos(ws: Workspace, run: str) -> list[Path]:
    """The files ingest reads (`Workspace.list_photos`: hidden ones such as .DS_Store are not photos)."""
    return ws.list_photos(run)


def load_profile_bytes(data: bytes, source: Path | str) -> dict:
    """A profile's bytes → its validated document (physical.profiles; one line for anything else)."""
    import json

    from physical.profiles import parse_profile

    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise PhysicalError(f"{source} is not JSON ({exc})") from None
    return parse_profile(doc, source).dump()


def read_profile(ws: Workspace, run: str, manifest_doc: dict, problems: list[str]) -> tuple[dict | None, str | None]:
    """The calibration profile the run was made with, and where it came from: the copy `simulate
    --profile` keeps in captures/<run>/ (sha-checked), else the profile an EOT channel was
    fitted through (`craft --channel profile.json`: the path and sha256 its manifest records),
    when that file is still there unchanged. (None, None) when the run used none."""
    from physical.workspace import read_verified, sha256_bytes

    try:
        sim = records.read_optional(records.SIMULATED, ws, run)
    except PhysicalError as exc:
        problems.append(str(exc))
        sim = None
    if sim is not None and sim.profile is not None and sim.profile.file:
        path = inside(ws.captures(run), sim.profile.file)
        if path is None:
            problems.append(f"{ws.captures(run) / sim.profile.file} (the profile simulate used) is missing: "
                            f"re-run `physical simulate --run {run} --profile FILE --force`")
            return None, None
        try:
            data = read_verified(path, sim.profile.sha256, f"physical simulate --run {run} --profile FILE --force")
            return load_profile_bytes(data, path), "the photos were simulated through it (simulate --profile)"
        except PhysicalError as exc:
            problems.append(str(exc))
            return None, None
    for name, params in _dict(manifest_doc.get("attacks")).items():
        prof = _dict(_dict(_dict(params).get("channel")).get("profile"))
        path = Path(str(prof["path"])) if prof.get("path") else None
        if path is None or not path.is_file():
            continue
        try:
            data = path.read_bytes()
            if prof.get("sha256") and sha256_bytes(data) != prof["sha256"]:
                problems.append(f"{path} changed since `physical craft` used it for {name}'s channel: not shown")
                continue
            return load_profile_bytes(data, path), f"{name} was crafted through it (craft --channel {path.name})"
        except (OSError, PhysicalError) as exc:
            problems.append(f"{path}: {exc}")
    return None, None


def read_run(ws: Workspace, run: str) -> RunInputs:
    manifest_doc = ws.load_manifest(run).dump()
    manifest = manifest_view(manifest_doc)
    problems: list[str] = []
    out, pdf = ws.reports(run), ws.pdf_path(run)
    profile, origin = read_profile(ws, run, manifest_doc, problems)
    return RunInputs(
        run=run, manifest=manifest, ingest=read_ingest(ws, run, problems),
        metrics=read_metrics(ws, run, problems), photos=list_photos(ws, run),
        printouts=ws.printouts(run), captures=ws.captures(run), out=out,
        has_layout=ws.layout_path(run).exists(), pdf_name=pdf.name if pdf.exists() else None,
        simulated=ws.simulated_path(run).exists(),
        has_metrics_csv=ws.metrics_csv_path(run).exists(), problems=problems, profile=profile,
        profile_origin=origin)


# --------------------------------------------------------------------------------------------
# class names
# --------------------------------------------------------------------------------------------

@cache
def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names (as `physical.models.imagenet_classes()` gives them), read
    straight from timm's bundled tables: importing timm would import torch (seconds) just for a
    text file. Falls back to timm's `ImageNetInfo`, then to no names (indices are shown)."""
    try:
        spec = importlib.util.find_spec("timm")
        info = Path(spec.origin).parent / "data" / "_info"
        wnids = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
        lemmas = dict(line.split("\t", 1) for line in
                      (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines() if "\t" in line)
        names = [lemmas[w].split(",")[0].strip() for w in wnids]
        if len(names) == 1000:
            return names
    except (AttributeError, TypeError, OSError, KeyError, ValueError):
        pass
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i).split(",")[0].strip() for i in range(len(info.label_names()))]
    except Exception as exc:  # a report without timm still works, with indices
        log.info("ImageNet class names unavailable (%s); showing class indices", exc)
        return []


class ClassNames:
    """index → human-readable name: ImageNet's when the model has 1000 classes, else whatever
    the manifest's labels say, else `class <index>`."""

    def __init__(self, manifest: Manifest):
        self.names: dict[int, str] = {}
        if manifest.model.num_classes in (1000, None):
            self.names.update(enumerate(imagenet_names()))
        for image in manifest.images:
            if image.label_index is not None and image.label_name:
                self.names[image.label_index] = image.label_name

    def __call__(self, index: int | None) -> str:
        return self.names.get(index, f"class {index}")
