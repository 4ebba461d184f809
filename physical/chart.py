"""The calibration chart: one page of colour patches, paper-white patches, slanted edges and
flat patches, framed by ArUco markers of an id range that no run's sheet uses.

`physical calibrate chart` writes chart.pdf and chart.json; `physical calibrate fit` reads the
patch positions back from `chart_spec(paper)` (the same pure function), so a fit needs only the
photos. chart.json is what a person or another tool reads: every patch's digital value and its
rectangle in page millimetres (origin top-left, y down, as layout.json).

Marker ids
----------
Run sheets use ids ``250·r + v`` with v < 241 (markers.py, id schemes rs241-v1 and rs241-v2:
`markers.split_id` refuses anything else). Ids with v in 241..249 of each role range (241..249,
491..499, 741..749, 991..999: 36 ids) are never printed on a run's sheet, so the chart uses
them: A4 charts the 18 ids 241..249 + 491..499, Letter charts the 18 ids 741..749 + 991..999.
A chart photo is therefore "none from a `physical` sheet" to ingest, and a sheet photo has no
chart marker; the ids found also say which paper the chart was printed for.

Geometry is whole 600-dpi dots (like layout.py), markers are vector cells (layout's drawing).
"""
from __future__ import annotations

import hashlib
import io
import json
import math

import numpy as np

from physical import geometry, markers
from physical.errors import PhysicalError

CHART_NAME = "physical-calibration-chart"
CHART_VERSION = 1
PAPERS = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
DPI = 600
MARGIN_MM = 12.0
MARKER_CELL_DOTS = 42                     # 1.778 mm cells: 14.2 mm markers
COLS = 16
CELL_MM = 9.0                            # patch pitch; a patch is CELL_MM - 2·GAP_MM wide
GAP_MM = 1.0
EDGE_TILT_DEG = 5.0                       # slanted edges: ISO 12233 uses ~5°
FLAT_LEVELS = (0, 51, 102, 153, 204, 255)
GREY_STEPS = 24
PRIMARIES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0),
             (128, 0, 0), (0, 128, 0), (0, 0, 128), (0, 128, 128), (128, 0, 128), (128, 128, 0)]


def _ids(paper: str) -> list[int]:
    """The chart's 18 marker ids for a paper (see the module docstring)."""
    spans = (0, 1) if paper == "a4" else (2, 3)
    ids = [markers.ROLE_SPAN * r + v for r in spans for v in range(markers.PRIME, markers.ROLE_SPAN)]
    assert all(markers.split_id(i) is None for i in ids)
    return ids


def chart_ids() -> set[int]:
    """Every id a chart of any paper prints."""
    return {i for p in PAPERS for i in _ids(p)}


def _snap(mm: float) -> float:
    """Round to a whole printer dot at `DPI`."""
    return round(geometry.dots_to_mm(round(geometry.mm_to_dots(mm, DPI)), DPI), 6)


def _patch_values(rng: np.random.Generator) -> list[tuple[str, tuple[int, int, int]]]:
    levels = [round(255 * i / 5) for i in range(6)]
    vals = [("cube", (r, g, b)) for r in levels for g in levels for b in levels]
    vals += [("grey", (v, v, v)) for v in (round(255 * i / (GREY_STEPS - 1)) for i in range(GREY_STEPS))]
    vals += [("primary", p) for p in PRIMARIES]
    order = rng.permutation(len(vals))   # colour decorrelated from position (light fall-off)
    return [vals[i] for i in order]


def chart_spec(paper: str = "a4") -> dict:
    """The chart as a dict (chart.json without file hashes); deterministic per paper."""
    paper = paper.lower()
    if paper not in PAPERS:
        raise PhysicalError(f"unknown paper {paper!r}: use one of {', '.join(PAPERS)}")
    pw, ph = PAPERS[paper]
    cell = geometry.dots_to_mm(MARKER_CELL_DOTS, DPI)
    m = markers.CELLS * cell
    x0, x1 = MARGIN_MM, pw - MARGIN_MM
    y0, y1 = MARGIN_MM, ph - MARGIN_MM
    # 18 markers: 5 along the top, 5 along the bottom, 4 more down each side
    spots = [(x0 + (x1 - m - x0) * i / 4, y0) for i in range(5)]
    spots += [(x0 + (x1 - m - x0) * i / 4, y1 - m) for i in range(5)]
    for j in range(1, 5):
        y = y0 + (y1 - m - y0) * j / 5
        spots += [(x0, y), (x1 - m, y)]
    ids = _ids(paper)
    mk = [{"id": int(i), "corners_mm": geometry.rect_corners((_snap(x), _snap(y), _snap(x) + _snap(m),
                                                               _snap(y) + _snap(m))).round(6).tolist()}
          for i, (x, y) in zip(ids, spots)]

    rng = np.random.default_rng(CHART_VERSION)
    values = _patch_values(rng)
    inner_x0 = x0 + m + 3.0
    inner_w = (x1 - m - 3.0) - inner_x0
    gx0 = inner_x0 + (inner_w - COLS * CELL_MM) / 2
    gy0 = y0 + m + 6.0                      # a line of text under the top markers
    white_cells = {(r, c) for r in range(0, 40, 4) for c in (0, 5, 10, 15)}
    patches, r, c, n = [], 0, 0, 0
    while n < len(values):
        if (r, c) in white_cells or (r % 4 == 2 and c in (2, 7, 13)):
            kind, rgb = "white", (255, 255, 255)
        else:
            kind, rgb = values[n]
            n += 1
        px, py = gx0 + c * CELL_MM + GAP_MM, gy0 + r * CELL_MM + GAP_MM
        patches.append({"id": len(patches), "kind": kind, "rgb": list(rgb),
                        "rect_mm": [_snap(px), _snap(py), _snap(px + CELL_MM - 2 * GAP_MM),
                                    _snap(py + CELL_MM - 2 * GAP_MM)]})
        c += 1
        if c == COLS:
            c, r = 0, r + 1
    rows = r + (c > 0)
    band_y = gy0 + rows * CELL_MM + 2.0
    band_h = (y1 - m - 2.0) - band_y
    size = min(17.0, (band_h - 3.0) / 2)
    # flats (noise), then slanted black squares (blur) on white, evenly across the grid's width
    grid_w = COLS * CELL_MM
    for k, level in enumerate(FLAT_LEVELS):
        px = gx0 + (grid_w - size) * k / (len(FLAT_LEVELS) - 1)
        patches.append({"id": len(patches), "kind": "flat", "rgb": [level] * 3,
                        "rect_mm": [_snap(px), _snap(band_y), _snap(px + size), _snap(band_y + size)]})
    edges = []
    n_edges = 5
    ey = band_y + size + 3.0 + size / 2
    for k in range(n_edges):
        cx = gx0 + size / 2 + (grid_w - size) * k / (n_edges - 1)
        half = size * 0.38
        a = math.radians(EDGE_TILT_DEG + 2 * k)   # tilts 5..13°: sub-pixel phases vary
        corner = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = corner @ rot.T + [cx, ey]
        edges.append({"id": k, "kind": "slanted square", "rgb": [0, 0, 0], "background_rgb": [255, 255, 255],
                      "corners_mm": pts.round(6).tolist()})
    spec = {"chart": CHART_NAME, "version": CHART_VERSION, "paper": {"name": paper, "width_mm": pw, "height_mm": ph},
            "dpi": DPI,
            "markers": {"dictionary": markers.DICTIONARY_NAME, "size_mm": round(m, 6),
                        "cells": markers.CELLS, "ids": "v in 241..249 of role ranges " +
                        ("0, 1 (241..249, 491..499)" if paper == "a4" else "2, 3 (741..749, 991..999)"),
                        "list": mk},
            "patches": patches, "edges": edges,
            "coordinates": "page mm from the top-left corner, y down; rect_mm = [x0, y0, x1, y1]"}
    spec["chart_id"] = chart_id(spec)
    return spec


def chart_id(spec: dict) -> str:
    """Identity of a chart: sha256 of its version, paper, markers, patches and edges (16 hex)."""
    core = {k: spec[k] for k in ("chart", "version", "paper", "markers", "patches", "edges")}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def spec_for_ids(ids) -> dict | None:
    """The chart spec whose markers these detected ids are (None: no chart marker among them)."""
    ids = set(int(i) for i in ids)
    best = max(PAPERS, key=lambda p: len(ids & set(_ids(p))))
    return chart_spec(best) if ids & set(_ids(best)) else None


def render_pdf(spec: dict) -> bytes:
    """The chart as a one-page PDF (reportlab, deterministic bytes)."""
    from reportlab.lib.units import mm as MM
    from reportlab.pdfgen.canvas import Canvas

    from physical.layout import _marker_runs

    pw, ph = spec["paper"]["width_mm"], spec["paper"]["height_mm"]
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(pw * MM, ph * MM), invariant=1, pageCompression=1)
    c.setTitle(f"physical calibration chart v{spec['version']} ({spec['paper']['name']})")
    c.setAuthor("physical")
    c.setCreator("physical calibrate chart")

    def X(x):
        return x * MM

    def Y(y):
        return (ph - y) * MM

    cell = spec["markers"]["size_mm"] / markers.CELLS
    c.setFillGray(0)
    for mk in spec["markers"]["list"]:
        ox, oy = mk["corners_mm"][0]
        p = c.beginPath()
        for r, col, length in _marker_runs(mk["id"]):
            p.rect(X(ox + col * cell), Y(oy + (r + 1) * cell), length * cell * MM, cell * MM)
        c.drawPath(p, stroke=0, fill=1, fillMode=0)
    top = spec["markers"]["list"][0]["corners_mm"][2][1]
    c.setFont("Helvetica-Bold", 8)
    c.drawString(X(MARGIN_MM + 17), Y(top + 3.8),
                 f"physical calibration chart v{spec['version']} \u00b7 {spec['paper']['name']} \u00b7 id {spec['chart_id']}")
    c.setFont("Helvetica", 6.5)
    c.drawRightString(X(pw - MARGIN_MM - 17), Y(top + 3.8),
                      "print at 100 % \u00b7 take 2\u20135 photos")
    for p in spec["patches"]:
        if p["kind"] == "white":
            continue                     # paper white: nothing is printed
        x0, y0, x1, y1 = p["rect_mm"]
        r, g, b = (v / 255 for v in p["rgb"])
        c.setFillColorRGB(r, g, b)
        c.rect(X(x0), Y(y1), (x1 - x0) * MM, (y1 - y0) * MM, stroke=0, fill=1)
    c.setFillGray(0)
    for e in spec["edges"]:
        pts = e["corners_mm"]
        p = c.beginPath()
        p.moveTo(X(pts[0][0]), Y(pts[0][1]))
        for x, y in pts[1:]:
            p.lineTo(X(x), Y(y))
        p.close()
        c.drawPath(p, stroke=0, fill=1)
    c.showPage()
    c.save()
    return buf.getvalue()


def write_chart(out_dir, paper: str = "a4") -> tuple[dict, str]:
    """Write chart.pdf and chart.json into `out_dir`; returns (chart.json dict, summary line)."""
    from pathlib import Path

    from physical.workspace import atomic_write_bytes, atomic_write_json, sha256_bytes

    spec = chart_spec(paper)
    pdf = render_pdf(spec)
    out = Path(out_dir)
    atomic_write_bytes(out / "chart.pdf", pdf)
    doc = {"schema": 1, **spec, "pdf": "chart.pdf", "pdf_sha256": sha256_bytes(pdf)}
    atomic_write_json(out / "chart.json", doc)
    counts = {}
    for p in spec["patches"]:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    colour = counts.get("cube", 0) + counts.get("grey", 0) + counts.get("primary", 0)
    return doc, (f"wrote {out / 'chart.pdf'} and chart.json ({spec['paper']['name']}, chart v{spec['version']} "
                 f"id {spec['chart_id']}): {colour} colour patches, {counts.get('white', 0)} paper-white, "
                 f"{counts.get('flat', 0)} flat, {len(spec['edges'])} slanted-edge squares, "
                 f"{len(spec['markers']['list'])} markers — print at 100 %, take 2–5 photos, then "
                 "`physical calibrate fit --photos DIR`")


def simulate_photos(chart_dir, out_dir, printer: dict | None = None, camera: dict | None = None,
                    seed: int = 0, n: int = 3, resolution: tuple[int, int] = (1600, 1200),
                    preset: str = "mild", min_render_dpi: float = 300.0) -> dict:
    """Photograph chart_dir/chart.pdf in software with simulate's own printer and camera:
    parameters drawn from `preset` with `seed`, then `printer` / `camera` values put over them
    (settings unlike any preset, for recovery tests). Writes out_dir/chart-<i>.jpg; returns the
    truth {"printer", "cameras", "files", "render_dpi"}. The page is rendered at ≥ 300 dpi, so
    the render adds next to no blur of its own (simulate_run renders just as fine as it needs)."""
    from pathlib import Path

    import pypdfium2

    from physical import simulate
    from physical.workspace import atomic_write_bytes

    pdf_path = Path(chart_dir) / "chart.pdf"
    if not pdf_path.exists():
        raise PhysicalError(f"{pdf_path} does not exist: run `physical calibrate chart --out {chart_dir}` first")
    rng = np.random.default_rng(seed)
    pr = {**simulate.draw_printer(rng, preset), **(printer or {})}
    long_side, short_side = resolution
    pdf = pypdfium2.PdfDocument(str(pdf_path))
    try:
        w_pt, h_pt = pdf[0].get_size()
        page_mm = (w_pt / simulate.PT_PER_INCH * geometry.MM_PER_INCH, h_pt / simulate.PT_PER_INCH * geometry.MM_PER_INCH)
        shots = []
        for _ in range(n):
            cam = {**simulate.draw_camera(rng, preset), **(camera or {})}
            frame = (short_side, long_side) if cam["portrait"] else (long_side, short_side)
            shots.append((cam, frame, simulate.camera_homography(page_mm, frame, cam), int(rng.integers(2 ** 63))))
        need = max(simulate.max_scale(H, page_mm) for _, _, H, _ in shots) * geometry.MM_PER_INCH
        dpi = float(min(simulate.MAX_RENDER_DPI, max(min_render_dpi, math.ceil(need))))
        rendered, px_per_mm = simulate.render_pdf_page(pdf, 0, dpi)
    finally:
        pdf.close()
    printed = simulate.print_page(rendered, float(np.mean(px_per_mm)), pr)
    files = []
    for i, (cam, frame, H, photo_seed) in enumerate(shots, 1):
        dist = simulate.distortion_of(frame, cam)
        img = simulate.photograph(printed, px_per_mm, H, dist, frame, cam, np.random.default_rng(photo_seed))
        name = f"chart-{i}.jpg"
        atomic_write_bytes(Path(out_dir) / name, simulate.encode_jpeg(img, cam["jpeg_quality"], cam["exif_orientation"]))
        files.append(name)
    return {"printer": pr, "cameras": [s[0] for s in shots], "files": files, "render_dpi": dpi,
            "homographies": [s[2].tolist() for s in shots]}
