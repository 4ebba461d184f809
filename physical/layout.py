"""Printable PDF of a run's clean/adversarial PNGs, each framed by its own fiducial markers.

`make_layout(workspace, run, ...)` reads ``printouts/<run>/manifest.json`` and writes
``printouts/<run>/<run>.pdf`` and ``printouts/<run>/layout.json``. Marker dictionary, ids and
the marker geometry around an image come from `physical.markers`.

Every layout has its own random ``layout_id`` (in its marker ids too) and is kept in
``printouts/<run>/layouts/<layout_id>/`` so photos of its sheets stay readable after
``--force``; how, and the order files are written in: physical/layout_history.py.

Printing
--------
* Every PNG is embedded losslessly: its own zlib (IDAT) stream goes into the PDF unchanged as a
  FlateDecode image with PNG predictors, so the PDF holds exactly the PNG's pixels and is about
  as large as the PNGs. PNGs that PDF cannot take verbatim (16-bit, palette, alpha, interlaced)
  are converted to 8-bit RGB first.
* Each image is drawn at a whole number of printer dots per image pixel at ``dpi``
  (``dots_per_pixel = round(image_mm / 25.4 · dpi / pixels)``), and every position and size on
  the page is a whole number of dots, so a printer at that resolution never resamples.
* Clean and adversarial versions of one source image sit side by side in one row ("group");
  a caption (image id, variant) sits between (or, for small images, under) its lower markers.
* Deterministic: reportlab ``invariant=1`` and the creation date is the manifest's
  ``created`` time, so the same run and layout id give the same bytes.

layout.json (schema 2; schema 1, written before layout ids, is read as before)
-------------------------------------------------------------------------------
Page millimetres: origin at the page's top-left corner, x right, y down. Marker corners in
ArUco order (top-left, top-right, bottom-right, bottom-left as printed)::

    {
     "schema": 2,
     "run": "r1",
     "layout_id": "3fa2c19e0b1d4e5f",     # random, one per layout (absent in schema 1)
     "created": "…",                       # the manifest's created time (also the PDF's date)
     "pdf": "r1.pdf", "pdf_sha256": "…", "manifest_sha256": "…",
     "paper": {"name": "a4", "width_mm": 210.0, "height_mm": 297.0, "margin_mm": 12.0},
     "dpi": 600,                          # printer dots per inch the sizes are whole multiples of
     "dots_per_pixel": 4,                 # printer dots per image pixel
     "image_mm_requested": 40.0, "image_mm": 37.9307,   # longest image side, asked / printed
     "variants": ["clean", "fgsm-eps16"],
     "markers": {"dictionary": "DICT_6X6_1000", "id_scheme": "rs241-v2",   # schema 1: "rs241-v1"
                 "cells": 8, "cell_mm": 0.9313, "size_mm": 7.4507,
                 "gap_mm": 1.8627,        # white space between a marker and its image
                 "quiet_cells": 2},
     "caption": "between the lower markers",   # or "below the lower markers" (small images)
     "run_tag": {"tag": 72, "offset": 44400},   # physical.markers.run_key(run, layout_id)
     "n_slots": 40, "slots_per_page": 16,
     "pages": [
      {"page": 1,                          # 1-based, the PDF page number
       "slots": [
        {"slot": 0,                        # 0-based position on the page (reading order)
         "index": 0,                       # 0-based run-wide slot number (the id scheme's n)
         "image_id": "coffee", "variant": "clean",
         "file": "images/coffee/clean.png",          # relative to printouts/<run>/
         "sha256": "…",                              # of that PNG, as printed
         "size_px": [224, 224],                      # width, height
         "rect_mm": [x0, y0, x1, y1],                # the image's printed pixels
         "markers": [                                # role order TL, TR, BR, BL of the image
           {"id": 17, "role": "TL", "corners_mm": [[x, y], [x, y], [x, y], [x, y]]}, …]}
       ]}
     ]
    }

A pixel (i, j) of the PNG (column i, row j, top-left corner at (i, j)) covers page mm
``x0 + (i .. i+1)·w_mm/width``, ``y0 + (j .. j+1)·h_mm/height``.
"""
from __future__ import annotations

import io
import logging
import math
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from physical import geometry, markers, records
from physical.errors import PhysicalError
from physical.layout_history import (SCHEMA, _keep, _copy_file, _new_layout_id, ensure_pdf,  # noqa: F401
                                     history_dir, kept_layouts, read_layout)
from physical.workspace import (Workspace, atomic_write_bytes, atomic_write_json, read_json, run_locked,
                                sha256_bytes, sha256_file)

log = logging.getLogger(__name__)

PAPERS = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
MARGIN_MM = 12.0          # all sides: inside every common printer's printable area (≤ 6.35 mm)
HEADER_MM = 15.0          # run name, page, printing instructions
FOOTER_MM = 11.0          # scale bar
PAIR_GAP_MM = 4.0         # between the variants of one source image
GROUP_GAP_MM = 10.0       # between source images
ROW_GAP_MM = 5.0
CAPTION_PT = 5.5
CAPTION_MM = 2.2          # caption line height: two lines (id, variant) between the lower markers
CAPTION_MIN_BAND_MM = 10.0  # narrower band between the lower markers → caption goes below them
MARKER_FRACTION = 0.2     # marker side ≈ 20 % of the image side, within:
MARKER_MIN_MM, MARKER_MAX_MM = 5.0, 12.0
SCALE_BAR_MM = 50.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- PNG → PDF image
@dataclass
class PngStream:
    """A PNG's pixel data ready for a PDF image XObject (FlateDecode + PNG predictors)."""
    width: int
    height: int
    colors: int          # 1 grey, 3 RGB
    data: bytes          # concatenated IDAT payload (zlib stream)


def png_stream(data: bytes) -> PngStream:
    """The PNG's IDAT stream when PDF can use it verbatim (8-bit grey/RGB, not interlaced);
    otherwise the pixels converted to 8-bit RGB and re-encoded as a PNG stream."""
    info = _parse_png(data)
    if info is not None:
        return info
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        mode = "L" if im.mode in ("1", "L", "I", "I;16") else "RGB"
        buf = io.BytesIO()
        im.convert(mode).save(buf, format="PNG")
    info = _parse_png(buf.getvalue())
    assert info is not None
    return info


def _parse_png(data: bytes) -> PngStream | None:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError("PNG without IHDR/IDAT")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or interlace != 0 or colour_type not in (0, 2):
        return None
    return PngStream(width, height, 1 if colour_type == 0 else 3, b"".join(idat))


def _png_xobject_class():
    from reportlab.pdfbase import pdfdoc

    class PNGImageXObject(pdfdoc.PDFImageXObject):
        """An image XObject whose stream is a PNG's IDAT data, decoded with PNG predictors."""

        def __init__(self, name, png: PngStream):
            super().__init__(name)
            self.width, self.height = png.width, png.height
            self.bitsPerComponent = 8
            self.colorSpace = "DeviceGray" if png.colors == 1 else "DeviceRGB"
            self.streamContent = png.data
            self._filters = ("FlateDecode",)
            self._colors = png.colors
            self.mask = None

        def format(self, document):
            S = pdfdoc.PDFStream(content=self.streamContent)
            d = S.dictionary
            d["Type"] = pdfdoc.PDFName("XObject")
            d["Subtype"] = pdfdoc.PDFName("Image")
            d["Width"] = self.width
            d["Height"] = self.height
            d["BitsPerComponent"] = 8
            d["ColorSpace"] = pdfdoc.PDFName(self.colorSpace)
            d["Filter"] = pdfdoc.PDFName("FlateDecode")
            d["DecodeParms"] = pdfdoc.PDFDictionary(
                {"Predictor": 15, "Colors": self._colors, "BitsPerComponent": 8, "Columns": self.width})
            d["Length"] = len(self.streamContent)
            return S.format(document)

    return PNGImageXObject


def _draw_png(canvas, xobject_class, png: PngStream, key: str, x_pt, y_pt, w_pt, h_pt) -> None:
    """Place a PNG stream (registered once per `key`) with its lower-left corner at (x, y) pt."""
    doc = canvas._doc
    name = "png" + key
    reg_name = doc.getXObjectName(name)
    if doc.idToObject.get(reg_name) is None:
        obj = xobject_class(name, png)
        canvas._setXObjects(obj)
        doc.Reference(obj, reg_name)
        doc.addForm(name, obj)
    canvas._currentPageHasImages = 1
    canvas.saveState()
    canvas.transform(w_pt, 0, 0, h_pt, x_pt, y_pt)
    canvas._code.append(f"/{reg_name} Do")
    canvas.restoreState()
    canvas._formsinuse.append(name)


# ----------------------------------------------------------------------------- planning
@dataclass
class Item:
    image_id: str
    variant: str
    file: str
    sha256: str
    width: int
    height: int
    data: bytes
    png: PngStream | None = None


def _mm(dots: int, dpi: int) -> float:
    return round(geometry.dots_to_mm(dots, dpi), 6)


def _dots(mm: float, dpi: int) -> int:
    return int(math.floor(geometry.mm_to_dots(mm, dpi) + 1e-9))


def plan(items: list[Item], run: str, paper: str, dpi: int, image_mm: float,
         layout_id: str | None = None) -> dict:
    """Positions of every image and marker (the layout.json dict, less file hashes). Without a
    `layout_id` the ids are those of the schema-1 scheme (rs241-v1), kept for tests of old runs."""
    if paper not in PAPERS:
        raise PhysicalError(f"unknown paper {paper!r}: use one of {', '.join(PAPERS)}")
    if dpi < 72 or dpi > 4800:
        raise PhysicalError(f"--dpi {dpi} is outside 72..4800")
    if not image_mm > 0:
        raise PhysicalError(f"--image-mm must be positive, got {image_mm}")
    if len(items) > markers.MAX_SLOTS:
        raise PhysicalError(
            f"{len(items)} images to print but the marker id scheme supports at most {markers.MAX_SLOTS} "
            "per run: pass fewer --variants or split the run")
    page_w, page_h = PAPERS[paper]
    side_px = max(max(it.width, it.height) for it in items)
    k = max(1, round(image_mm / 25.4 * dpi / side_px))
    img_side_mm = _mm(side_px * k, dpi)

    cell = max(1, round(min(max(MARKER_FRACTION * img_side_mm, MARKER_MIN_MM), MARKER_MAX_MM)
                        / markers.CELLS / 25.4 * dpi))
    m = markers.CELLS * cell                       # marker side, dots
    gap = markers.QUIET_CELLS * cell               # image ↔ marker, dots
    min_px = min(it.width for it in items)
    if min_px * k < 2 * m + gap:
        k_min = -(-(2 * m + gap) // min_px)
        raise PhysicalError(
            f"images of {img_side_mm:.1f} mm are too small for their markers ({_mm(m, dpi):.1f} mm each, two per "
            f"image edge): use --image-mm {math.ceil(side_px * k_min * 25.4 / dpi)} or more")

    # everything below in printer dots, page origin top-left
    W, H = _dots(page_w, dpi), _dots(page_h, dpi)
    left, top = _dots(MARGIN_MM, dpi), _dots(MARGIN_MM + HEADER_MM, dpi)
    usable_w = W - 2 * left
    usable_h = _dots(page_h - 2 * MARGIN_MM - HEADER_MM - FOOTER_MM, dpi)
    img_w = max(it.width for it in items) * k
    img_h = max(it.height for it in items) * k
    band = min(it.width for it in items) * k - 2 * m - 2 * gap   # between the lower markers
    cap_inside = band >= _dots(CAPTION_MIN_BAND_MM, dpi)
    cap = 0 if cap_inside else 2 * _dots(CAPTION_MM, dpi) + gap
    row_h = m + gap + img_h + gap + m + cap
    pair_gap = max(_dots(PAIR_GAP_MM, dpi), gap)
    group_gap = _dots(GROUP_GAP_MM, dpi)
    row_gap = _dots(ROW_GAP_MM, dpi)
    cols = (usable_w + pair_gap) // (img_w + pair_gap)
    rows = (usable_h + row_gap) // (row_h + row_gap)
    if cols < 1 or rows < 1:
        raise PhysicalError(
            f"an image of {img_side_mm:.1f} mm ({side_px} px × {k} dots at {dpi} dpi) with its markers and caption "
            f"does not fit {paper} paper (usable {_mm(usable_w, dpi):.0f} × {_mm(usable_h, dpi):.0f} mm): "
            "use a smaller --image-mm")

    # groups: the variants of one source image, in order; split into row chunks of ≤ cols
    groups: list[list[Item]] = []
    for it in items:
        if groups and groups[-1][0].image_id == it.image_id:
            groups[-1].append(it)
        else:
            groups.append([it])
    chunks = [g[i:i + cols] for g in groups for i in range(0, len(g), cols)]
    row_items: list[list[list[Item]]] = []     # row → chunks
    row_width: list[int] = []
    for chunk in chunks:
        cw = len(chunk) * img_w + (len(chunk) - 1) * pair_gap
        if row_items and row_width[-1] + group_gap + cw <= usable_w:
            row_items[-1].append(chunk)
            row_width[-1] += group_gap + cw
        else:
            row_items.append([chunk])
            row_width.append(cw)
    rows = min(rows, markers.MAX_SLOTS_PER_PAGE // cols)
    content_w = max(row_width)
    x_start = left + (usable_w - content_w) // 2

    pages = []
    n = 0
    key = markers.run_key(run, layout_id)
    for p0 in range(0, len(row_items), rows):
        slots = []
        for r, row in enumerate(row_items[p0:p0 + rows]):
            y_img = top + r * (row_h + row_gap) + m + gap
            x = x_start
            for chunk in row:
                for it in chunk:
                    w, h = it.width * k, it.height * k
                    x0 = x + (img_w - w) // 2
                    y0 = y_img + (img_h - h) // 2
                    rect = [_mm(x0, dpi), _mm(y0, dpi), _mm(x0 + w, dpi), _mm(y0 + h, dpi)]
                    corners = markers.slot_marker_corners([x0, y_img, x0 + w, y_img + img_h], m, gap)
                    ids = markers.slot_ids(n, key)
                    slots.append({
                        "slot": len(slots), "index": n, "image_id": it.image_id, "variant": it.variant,
                        "file": it.file, "sha256": it.sha256, "size_px": [it.width, it.height],
                        "rect_mm": rect,
                        "markers": [{"id": int(i), "role": markers.ROLES[role],
                                     "corners_mm": [[_mm(int(cx), dpi), _mm(int(cy), dpi)] for cx, cy in c]}
                                    for role, (i, c) in enumerate(zip(ids, corners))],
                    })
                    n += 1
                    x += img_w + pair_gap
                x += group_gap - pair_gap
        pages.append({"page": len(pages) + 1, "slots": slots})

    return {
        "schema": SCHEMA if layout_id else 1, "run": run, **({"layout_id": layout_id} if layout_id else {}),
        "paper": {"name": paper, "width_mm": page_w, "height_mm": page_h, "margin_mm": MARGIN_MM},
        "dpi": dpi, "dots_per_pixel": k,
        "image_mm_requested": float(image_mm), "image_mm": img_side_mm,
        "markers": {"dictionary": markers.DICTIONARY_NAME,
                    "id_scheme": markers.ID_SCHEME if layout_id else markers.ID_SCHEMES[0],
                    "cells": markers.CELLS, "cell_mm": _mm(cell, dpi), "size_mm": _mm(m, dpi),
                    "gap_mm": _mm(gap, dpi), "quiet_cells": markers.QUIET_CELLS},
        "caption": "between the lower markers" if cap_inside else "below the lower markers",
        "run_tag": key.as_dict(),
        "n_slots": n, "slots_per_page": max(len(p["slots"]) for p in pages),
        "pages": pages,
    }


# ----------------------------------------------------------------------------- drawing
def _pdf_date(created: str | None):
    try:
        dt = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        dt = datetime(2000, 1, 1, tzinfo=timezone.utc)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("D:%Y%m%d%H%M%S+00'00'")
    return lambda *_: text


_MARKER_RUNS: dict[int, list[tuple[int, int, int]]] = {}


def _marker_runs(marker_id: int) -> list[tuple[int, int, int]]:
    """(row, first col, n cells) of every horizontal run of black cells."""
    runs = _MARKER_RUNS.get(marker_id)
    if runs is None:
        bits = markers.marker_image(marker_id, markers.CELLS)
        runs = []
        for r, row in enumerate(bits):
            c = 0
            while c < len(row):
                if row[c] == 0:
                    c1 = c
                    while c1 < len(row) and row[c1] == 0:
                        c1 += 1
                    runs.append((r, c, c1 - c))
                    c = c1
                else:
                    c += 1
        _MARKER_RUNS[marker_id] = runs
    return runs


def render_pdf(layout: dict, items: dict[tuple[str, str], Item], created: str | None) -> bytes:
    from reportlab.lib.units import mm as MM
    from reportlab.pdfgen.canvas import Canvas

    page_w, page_h = layout["paper"]["width_mm"], layout["paper"]["height_mm"]
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(page_w * MM, page_h * MM), invariant=1, pageCompression=1)
    c.setDateFormatter(_pdf_date(created))
    c.setTitle(f"physical run {layout['run']}")
    c.setAuthor("physical")
    c.setCreator("physical layout")
    c.setSubject("Adversarial examples in the physical world: print at 100 % (actual size)")
    xobj = _png_xobject_class()

    def X(x):
        return x * MM

    def Y(y):
        return (page_h - y) * MM

    n_pages = len(layout["pages"])
    margin = layout["paper"]["margin_mm"]
    mk = layout["markers"]
    cell = mk["cell_mm"]
    for page in layout["pages"]:
        # header
        c.setFillGray(0)
        c.setFont("Helvetica-Bold", 10)
        c.drawString(X(margin), Y(margin + 3.5), f"physical · run {layout['run']} · page {page['page']} of {n_pages}")
        c.setFont("Helvetica", 7)
        c.drawRightString(X(page_w - margin), Y(margin + 3.5),
                          f"{layout['dpi']} dpi · {layout['dots_per_pixel']} printer dots per image pixel · "
                          f"images {layout['image_mm']:.1f} mm")
        c.setFont("Helvetica-Bold", 7.5)
        c.drawString(X(margin), Y(margin + 8.5),
                     "PRINT AT 100 % (\u201cActual size\u201d) \u2014 turn OFF \u201cFit to page\u201d/\u201cShrink\u201d "
                     "\u2014 in COLOUR \u2014 on plain white paper.")
        c.setFont("Helvetica", 7)
        c.drawString(X(margin), Y(margin + 11.5),
                     "Check: the bar at the bottom must measure exactly 50 mm. Photograph flat, in even light, "
                     "keeping every image's four markers in view.")
        # images, markers, captions
        c.setFont("Helvetica", CAPTION_PT)
        for slot in page["slots"]:
            it = items[(slot["image_id"], slot["variant"])]
            x0, y0, x1, y1 = slot["rect_mm"]
            _draw_png(c, xobj, it.png, it.sha256[:32], X(x0), Y(y1), X(x1) - X(x0), Y(y0) - Y(y1))
            for marker in slot["markers"]:
                ox, oy = marker["corners_mm"][0]
                p = c.beginPath()
                for r, col, length in _marker_runs(marker["id"]):
                    p.rect(X(ox + col * cell), Y(oy + (r + 1) * cell), length * cell * MM, cell * MM)
                c.drawPath(p, stroke=0, fill=1, fillMode=0)
            bl, br = slot["markers"][3]["corners_mm"], slot["markers"][2]["corners_mm"]
            if layout.get("caption", "").startswith("between"):
                max_w = (br[0][0] - bl[1][0] - 2 * mk["gap_mm"]) * MM
                y_text = (bl[0][1] + bl[3][1]) / 2 - CAPTION_MM / 2
            else:
                max_w = (x1 - x0) * MM
                y_text = bl[3][1] + mk["gap_mm"]
            for line, text in enumerate((slot["image_id"], slot["variant"])):
                size = CAPTION_PT        # shrink a long id down to 4.5 pt, then cut it short
                while c.stringWidth(text, "Helvetica", size) > max_w and size > 4.5:
                    size -= 0.25
                full, cut = text, 0          # then drop characters from the middle: ids differ at the end
                while c.stringWidth(text, "Helvetica", size) > max_w and cut < len(full) - 2:
                    cut += 1
                    keep = len(full) - cut
                    text = full[:(keep + 1) // 2] + "\u2026" + full[len(full) - keep // 2:]
                c.setFont("Helvetica", size)
                c.drawCentredString(X((x0 + x1) / 2), Y(y_text + (line + 0.8) * CAPTION_MM), text)
        # footer: scale bar
        yb = page_h - margin - 4.0
        c.setLineWidth(0.25)
        c.rect(X(margin), Y(yb), SCALE_BAR_MM * MM, 1.5 * MM, stroke=0, fill=1)
        for t in range(0, int(SCALE_BAR_MM) + 1, 10):
            c.line(X(margin + t), Y(yb - 1.5), X(margin + t), Y(yb + 3.0))
        c.setFont("Helvetica", 7)
        c.drawString(X(margin), Y(yb + 3.2 + 2.2), "0")
        c.drawString(X(margin + SCALE_BAR_MM + 1.5), Y(yb - 0.2),
                     "50 mm \u2014 measure me: if this bar is not 50 mm the print was scaled; print again at 100 %")
        c.drawRightString(X(page_w - margin), Y(yb + 3.2 + 2.2),
                          f"markers: ArUco {mk['dictionary']}, ids {mk['id_scheme']} · "
                          + (f"layout {layout['layout_id']} · " if layout.get("layout_id") else "")
                          + f"tag {layout['run_tag']['tag']}")
        c.showPage()
    c.save()
    return buf.getvalue()


# ----------------------------------------------------------------------------- the stage
@dataclass
class LayoutResult:
    pdf: Path
    layout_path: Path
    layout: dict
    summary: str


def collect_items(ws: Workspace, run: str, manifest: dict, variants: list[str] | None) -> list[Item]:
    crafted = list(manifest.get("variants") or [])
    for image in manifest.get("images", []):
        for v in image.get("variants", {}):
            if v not in crafted:
                crafted.append(v)
    if variants is None:
        variants = crafted
    for v in variants:
        if v not in crafted:
            raise PhysicalError(
                f"variant {v!r} was never crafted for run {run!r} (crafted: {', '.join(crafted) or 'none'})")
    if not variants:
        raise PhysicalError(f"run {run!r} has no variants to print")
    if not manifest.get("images"):
        raise PhysicalError(f"run {run!r} has no images in its manifest")
    root = ws.printouts(run)
    items = []
    for image in manifest["images"]:
        for v in variants:
            rec = image.get("variants", {}).get(v)
            if rec is None:
                raise PhysicalError(f"image {image['id']!r} of run {run!r} has no {v!r} PNG in the manifest")
            path = root / rec["file"]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PhysicalError(f"cannot read {path}: {exc.strerror} (re-run `physical craft`)") from None
            digest = sha256_bytes(data)
            if rec.get("sha256") and rec["sha256"] != digest:
                raise PhysicalError(f"{path} changed since it was crafted (sha256 differs from the manifest)")
            try:
                png = png_stream(data)
            except (ValueError, OSError) as exc:
                raise PhysicalError(f"{path} is not a readable PNG ({exc})") from None
            items.append(Item(image["id"], v, rec["file"], digest, png.width, png.height, data, png))
    return items


@run_locked("layout")
def make_layout(ws: Workspace, run: str, paper: str = "a4", dpi: int = 600, image_mm: float = 40.0,
                variants: list[str] | None = None, force: bool = False, *,
                layout_id: str | None = None) -> LayoutResult:
    """Write printouts/<run>/<run>.pdf and layout.json (and keep them in layouts/<layout_id>/);
    returns paths, the layout and a summary. `layout_id` (16 hex digits) is drawn at random
    unless given (tests: the same inputs and id give the same bytes)."""
    manifest = ws.load_manifest(run).dump()
    pdf_path, layout_path = ws.pdf_path(run), ws.layout_path(run)
    current = read_layout(layout_path, run) if layout_path.exists() else None
    if current is not None:
        ensure_pdf(ws, run, current, required=False)
    if not force:
        for path in (pdf_path, layout_path):
            if path.exists():
                raise PhysicalError(f"{path} already exists: pass --force to overwrite it "
                                    f"(the earlier layout is kept in {history_dir(ws, run)})")
    items = collect_items(ws, run, manifest, variants)
    kept = kept_layouts(ws, run)
    layout_id = _new_layout_id(run, kept, current, layout_id)
    layout = plan(items, run, paper, dpi, image_mm, layout_id)
    created = manifest.get("created")
    pdf = render_pdf(layout, {(it.image_id, it.variant): it for it in items}, created)
    layout = {"schema": layout["schema"], "run": run, "layout_id": layout_id, "created": created,
              "pdf": pdf_path.name, "pdf_sha256": sha256_bytes(pdf),
              "manifest_sha256": sha256_file(ws.manifest_path(run)),
              "variants": list(dict.fromkeys(it.variant for it in items)),
              **{k: v for k, v in layout.items() if k not in ("schema", "run", "layout_id")}}
    folder = history_dir(ws, run) / layout_id
    old = folder / "layout.json"
    if old.exists() and read_json(old) != layout:
        raise PhysicalError(f"layout id {layout_id} is already used by another layout of run {run!r} ({old})")
    if current is not None:
        _keep(ws, run, current)
    atomic_write_bytes(folder / pdf_path.name, pdf)
    layout = records.parse(records.LAYOUT, layout, layout_path, run).dump()   # the record's type, checked
    atomic_write_json(old, layout)
    atomic_write_json(layout_path, layout)               # the commit (validated above): names its PDF by pdf_sha256
    _copy_file(folder / pdf_path.name, pdf_path)
    summary = summarize(layout, pdf_path)
    return LayoutResult(pdf_path, layout_path, layout, summary)


def summarize(layout: dict, pdf_path) -> str:
    k, dpi = layout["dots_per_pixel"], layout["dpi"]
    sizes = {tuple(s["size_px"]) for p in layout["pages"] for s in p["slots"]}
    w, h = max(sizes)
    size = f"{w * k * 25.4 / dpi:.1f} × {h * k * 25.4 / dpi:.1f} mm"
    asked = layout["image_mm_requested"]
    note = ""
    if abs(layout["image_mm"] - asked) > 0.05:
        note = (f" (asked {asked:g} mm: rounded to a whole {k} printer dots per pixel)")
    n_pages = len(layout["pages"])
    return (f"wrote {pdf_path}: {n_pages} page{'s' if n_pages != 1 else ''}, "
            f"{layout['slots_per_page']} images per page ({layout['n_slots']} in all), each {size}{note}, "
            f"{k} printer dots per image pixel at {dpi} dpi — print at 100 % / actual size")
