"""Fiducial markers: dictionary, id scheme, geometry, detection and identification.

The single source of truth shared by `physical layout` (which draws the markers) and
`physical ingest` (which finds them in photos). Geometry of a particular PDF lives in its
layout.json (schema in `physical/layout.py`); this module only says how markers look, how ids
are chosen and how a photo's detections are matched against a layout.

Conventions
-----------
* Page coordinates: millimetres, origin at the page's top-left corner, x right, y down.
* Photo coordinates: pixels, x right, y down, **a pixel's top-left corner at its integer
  coordinate** (pixel centres at integer + 0.5), as in docs/internals.md. OpenCV's detector
  reports corners with pixel centres at integers; `detect` adds 0.5 so that a printed point at
  page position (x, y) mm rendered at `s` px/mm is found at (x·s, y·s).
* Marker corners are in ArUco order as printed: top-left, top-right, bottom-right, bottom-left.

Dictionary
----------
`DICT_6X6_1000`: 6×6 data bits plus a one-cell black border (8×8 cells), 1,000 ids. Markers
are drawn as vector rectangles, one per black cell, with a white quiet zone of at least
`QUIET_CELLS` cells around each marker.

Id schemes ("rs241-v2", and "rs241-v1" read for older layouts)
--------------------------------------------------------------
Each printed image ("slot") is framed by its own four markers, one per image corner
(role r = 0 TL, 1 TR, 2 BR, 3 BL; TL/TR sit just above the image's top edge, BR/BL just below
its bottom edge). The role is carried by the id range: ``id = 250·r + v`` with v in [0, 241).
The values v_0..v_3 of one slot are a Reed–Solomon-like codeword over GF(241)::

    v_r = (m0 + m1·r + t·r²) mod 241

* ``t`` (0..240) is the layout tag, ``t = h mod 241``;
* ``(m0, m1) = divmod``-digits of ``e = (n + offset) mod 241²`` with ``m0 = e mod 241``,
  ``m1 = e // 241``, where n is the slot's run-wide index (0-based, in page order) and
  ``offset = (h // 241) mod 241²``;
* "rs241-v2" (layout.json schema 2): ``h = sha256(run + "/" + layout_id)``, where
  ``layout_id`` is 16 random hex digits drawn by `physical layout` for every layout, so two
  layouts of one run, or two workspaces' runs of the same name, print different codes;
* "rs241-v1" (schema 1, no layout id): ``h = sha256(run)``; every layout of a run had the same
  code, which is why a re-layout made its older sheets readable as the new one's.

Properties (tested in tests/test_markers.py for 5,000 slots):

* Within a layout two slots share **at most one** marker id (two lines agree in ≤ 1 point), so
  two markers of one slot name it, and ids never repeat within 237 consecutive slots, hence
  never on one page (at most `MAX_SLOTS_PER_PAGE` slots).
* Slots of layouts with different tags share at most **two** ids (two quadratics agree in ≤ 2
  points); three markers of one slot give the tag (`decode_tag`).
* Capacity: 241² = 58,081 codewords; `MAX_SLOTS` = 5,000 printed images per layout.

Identification rule (what keeps a photo of another sheet from being read as this layout's)
-----------------------------------------------------------------------------------------
Two markers of *any* sheet decode to *some* slot of a layout (two points always fix a line
over GF(241)): a pair of markers from an older or foreign sheet lands on a valid slot of the
current layout about n_slots / 58,081 of the time, at the right spacing, so pairs alone can never
be trusted. `identify` therefore:

1. matches markers to slots by id and keeps, per page, only markers that one homography maps
   onto their layout corners (false and displaced detections drop out);
2. refuses a slot when a marker printed nowhere on that page lies within the slot's frame (its
   image and its markers' rows). This catches markers that frame something else at the right
   spacing: above all, TL and BL of slot n with TR and BR of slot n + k of *any* sheet are
   always a codeword (of tag t − k/2) around a frame k images wide, which a layout with that
   tag and wider images would otherwise read as its own image — the markers of the images in
   between give it away; and a marker of another id sitting where one of the slot's own should
   be (a sheet of another layout printed with the same geometry);
3. **accepts a page only when one of its slots shows ≥ `MIN_TAG_MARKERS` (3) of its own
   markers** — three ids on one codeword of this layout's tag. Three markers of one slot of a
   layout with another tag never match (see above), so the page's geometry is then known to
   be this layout's; only then do its other slots count with 2 or even 1 marker (an inlier of
   that page's homography lies on the same sheet);
4. `physical layout` draws a new layout's id until its tag differs from the tags of every layout
   of the run it keeps (printouts/<run>/layouts/) and from the run's "rs241-v1" tag, so no slot
   of an earlier sheet of the run shares three ids with a slot of the current layout;
5. with several layouts (ingest reads the current one and every kept one: `identify_layouts`)
   each marker explains at most one layout, and the layout explaining the most markers of the
   photo is matched first: a whole page of an earlier sheet is read as that sheet, and the few
   of its markers that might, by chance, line up with a slot of another layout are used up.

What is left is a sheet of an unknown layout (another workspace, a deleted history) with the
same tag (1 in 241) *and* a codeword range overlapping this layout's (≈ 2·n_slots / 58,081):
about 1 in 175,000 for 40 images; and photos that show too little to apply rule 2: three or
four markers of different images of such a sheet, with everything between them out of frame,
at the spacing of one image and carrying its ids (tested: `identify` reads those four alone).
A photo showing only two markers of an image is refused ("unknown markers"): it cannot be told
apart from a collision. Tags in messages come from `photo_tags`, which reads a tag only from
four markers that are a codeword (three always fit some quadratic).
"""
from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from physical import geometry

DICTIONARY_NAME = "DICT_6X6_1000"
ID_SCHEME = "rs241-v2"
ID_SCHEMES = ("rs241-v1", "rs241-v2")   # read; only ID_SCHEME is written
MIN_TAG_MARKERS = 3      # own markers of one slot that confirm a page (they fix the tag)
MARKER_BITS = 6          # data bits per side
BORDER_BITS = 1
CELLS = MARKER_BITS + 2 * BORDER_BITS   # cells per marker side, border included
QUIET_CELLS = 2          # white cells kept free around every marker
PRIME = 241
ROLE_SPAN = 250          # ids of role r are 250·r + [0, 241)
ROLES = ("TL", "TR", "BR", "BL")
CODEWORDS = PRIME * PRIME
MAX_SLOTS = 5000
MAX_SLOTS_PER_PAGE = 237

STATUS_OK = "ok"
STATUS_NO_MARKERS = "no markers"
STATUS_OTHER_RUN = "other run"
STATUS_UNKNOWN = "unknown markers"

_DICTIONARY = None


def dictionary() -> cv2.aruco.Dictionary:
    """The ArUco dictionary every sheet uses (`DICTIONARY_NAME`)."""
    global _DICTIONARY
    if _DICTIONARY is None:
        _DICTIONARY = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY_NAME))
    return _DICTIONARY


def marker_image(marker_id: int, cells: int = CELLS) -> np.ndarray:
    """The marker's cells, border included, as a (cells, cells) uint8 array: 1 = white, 0 = black.

    Row 0 is the printed top row. `cells` must be `CELLS` plus an even number (a wider black
    border), e.g. 8 for the standard one-cell border.
    """
    if not 0 <= marker_id < 1000:
        raise ValueError(f"marker id {marker_id} outside 0..999")
    border = (cells - MARKER_BITS) // 2
    if border < 1 or MARKER_BITS + 2 * border != cells:
        raise ValueError(f"cells must be {CELLS} (or {CELLS} + an even number), got {cells}")
    img = cv2.aruco.generateImageMarker(dictionary(), int(marker_id), cells, borderBits=border)
    return (img > 127).astype(np.uint8)


# ----------------------------------------------------------------------------- id scheme
@dataclass(frozen=True)
class RunKey:
    """What a layout (run name + layout id; "rs241-v1": run name only) contributes to its ids."""
    tag: int      # 0..240, the quadratic coefficient
    offset: int   # 0..241²-1, added to the slot index

    def as_dict(self) -> dict:
        return {"tag": self.tag, "offset": self.offset}


def run_key(run: str, layout_id: str | None = None) -> RunKey:
    """The key of a layout: "rs241-v2" with a `layout_id`, "rs241-v1" (the run name alone) without."""
    text = run if layout_id is None else f"{run}/{layout_id}"
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    return RunKey(tag=h % PRIME, offset=(h // PRIME) % CODEWORDS)


def _key(run: str | RunKey | dict) -> RunKey:
    if isinstance(run, RunKey):
        return run
    if isinstance(run, dict):
        return RunKey(int(run["tag"]), int(run["offset"]))
    return run_key(run)


def slot_ids(n: int, run: str | RunKey | dict) -> tuple[int, int, int, int]:
    """Marker ids (TL, TR, BR, BL) of the run's n-th printed image (0-based)."""
    if not 0 <= n < CODEWORDS:
        raise ValueError(f"slot index {n} outside the id scheme's 0..{CODEWORDS - 1}")
    key = _key(run)
    e = (n + key.offset) % CODEWORDS
    m0, m1 = e % PRIME, e // PRIME
    return tuple(ROLE_SPAN * r + (m0 + m1 * r + key.tag * r * r) % PRIME for r in range(4))


def split_id(marker_id: int) -> tuple[int, int] | None:
    """(role, value) of a marker id, or None when the id is not one this scheme prints."""
    role, value = divmod(int(marker_id), ROLE_SPAN)
    if role > 3 or value >= PRIME:
        return None
    return role, value


def decode_slot(ids: dict[int, int], run: str | RunKey | dict) -> int | None:
    """Slot index n from ≥ 2 markers of one slot, `ids` = {role: marker id}.

    Returns None when the markers are not a consistent codeword of this run (another run, or
    markers of different slots)."""
    key = _key(run)
    pts = []
    for role, marker_id in ids.items():
        sv = split_id(marker_id)
        if sv is None or sv[0] != role:
            return None
        pts.append((role, (sv[1] - key.tag * role * role) % PRIME))
    if len(pts) < 2:
        return None
    (r0, w0), (r1, w1) = pts[0], pts[1]
    m1 = (w1 - w0) * pow(r1 - r0, -1, PRIME) % PRIME
    m0 = (w0 - m1 * r0) % PRIME
    if any((m0 + m1 * r) % PRIME != w for r, w in pts):
        return None
    return (m0 + PRIME * m1 - key.offset) % CODEWORDS


def decode_tag(ids: dict[int, int]) -> int | None:
    """The run tag t from ≥ 3 markers of one slot ({role: id}); None if inconsistent."""
    pts = []
    for role, marker_id in ids.items():
        sv = split_id(marker_id)
        if sv is None or sv[0] != role:
            return None
        pts.append(sv)
    if len(pts) < 3:
        return None
    # Lagrange: the r² coefficient of the quadratic through the first three points.
    (a, va), (b, vb), (c, vc) = pts[:3]
    inv = lambda x: pow(x % PRIME, -1, PRIME)  # noqa: E731
    t = (va * inv((a - b) * (a - c)) + vb * inv((b - a) * (b - c)) + vc * inv((c - a) * (c - b))) % PRIME
    m1 = ((vb - va) * inv(b - a) - t * (a + b)) % PRIME
    m0 = (va - m1 * a - t * a * a) % PRIME
    if any((m0 + m1 * r + t * r * r) % PRIME != v for r, v in pts):
        return None
    return t


# ----------------------------------------------------------------------------- geometry
def slot_marker_corners(rect_mm, marker_mm: float, gap_mm: float) -> list[np.ndarray]:
    """Corners (ArUco order) in page mm of the four markers framing image rectangle
    `rect_mm` = [x0, y0, x1, y1]: TL/TR above the top edge flush with its left/right ends,
    BR/BL below the bottom edge, each `gap_mm` away from the image. Returned in role order."""
    x0, y0, x1, y1 = map(float, rect_mm)
    m, g = float(marker_mm), float(gap_mm)
    origins = [(x0, y0 - g - m), (x1 - m, y0 - g - m), (x1 - m, y1 + g), (x0, y1 + g)]
    return [geometry.rect_corners((ox, oy, ox + m, oy + m)) for ox, oy in origins]


# ----------------------------------------------------------------------------- detection
@dataclass
class Detection:
    """One marker found in a photo. corners_px: (4, 2) float64 in ArUco order (TL, TR, BR, BL
    as printed), pixel top-left corners at integer coordinates (see module docstring)."""
    id: int
    corners_px: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return self.corners_px.mean(axis=0)

    @property
    def side_px(self) -> float:
        """Mean edge length: the float np.mean(np.linalg.norm(c - np.roll(c, -1, 0), axis=1))
        gives (same operations in the same order, tested), in plain floats: numpy's call overhead
        was ~7 % of a photo's ingest (it is asked ~130 times a photo)."""
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.corners_px.tolist()
        a, b, c, d = x1 - x0, x2 - x1, x3 - x2, x0 - x3
        e, f, g, h = y1 - y0, y2 - y1, y3 - y2, y0 - y3
        return (((math.sqrt(a * a + e * e) + math.sqrt(b * b + f * f)) + math.sqrt(c * c + g * g))
                + math.sqrt(d * d + h * h)) / 4


def detector_parameters() -> cv2.aruco.DetectorParameters:
    """Parameters tuned for phone photos (12 MP, markers ~40–150 px, blur, JPEG, perspective)."""
    p = cv2.aruco.DetectorParameters()
    p.adaptiveThreshWinSizeMin = 5
    p.adaptiveThreshWinSizeMax = 35      # 5, 15, 25, 35: as good as up to 65 on 40–150 px markers, 2× faster
    p.adaptiveThreshWinSizeStep = 10
    p.adaptiveThreshConstant = 7
    p.minMarkerPerimeterRate = 0.01      # ~30 px markers in a 4000 px photo
    p.maxMarkerPerimeterRate = 4.0
    p.polygonalApproxAccuracyRate = 0.05
    p.minCornerDistanceRate = 0.05
    p.perspectiveRemovePixelPerCell = 8
    p.perspectiveRemoveIgnoredMarginPerCell = 0.15
    p.maxErroneousBitsInBorderRate = 0.35
    p.errorCorrectionRate = 0.6
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    p.cornerRefinementWinSize = 8
    if hasattr(p, "relativeCornerRefinmentWinSize"):   # OpenCV ≥ 4.9 (sic: "Refinment")
        p.relativeCornerRefinmentWinSize = 0.6   # half-window ≤ 0.6 cell (the default 0.3 is ~1 px on small markers)
    p.cornerRefinementMaxIterations = 60
    p.cornerRefinementMinAccuracy = 0.01
    return p


def _detections(corners, ids) -> list[Detection]:
    if ids is None:
        return []
    return [Detection(int(i), geometry.from_opencv(np.asarray(c, dtype=np.float64).reshape(4, 2)))
            for c, i in zip(corners, np.asarray(ids).ravel())]


class Detector:
    """ArUco detection of `DICTIONARY_NAME` markers with given parameters (default
    `detector_parameters`); faster, not different, when the ids that matter are given (`ids`:
    those of the layouts a photo is read against, `layout_ids`).

    OpenCV (5.0) identifies a marker candidate by comparing its cells with the dictionary's
    codes in order and taking the first within the error correction (errorCorrectionRate ·
    maxCorrectionBits = 2 wrong cells): a marker with id 900 costs 900 comparisons, which on a
    12 MP photo's half-size copy was three quarters of the detection time. With `ids` the
    detector holds the same 1,000 codes with those first, so the markers of the sheet
    photographed are found after a few comparisons. The order cannot change an answer: any two
    codes differ in ≥ 9 cells in every rotation, so no candidate is within 2 wrong cells of two
    codes; every marker of another run or layout is still found (identification needs those)."""

    def __init__(self, params: cv2.aruco.DetectorParameters | None = None, ids=None):
        full = dictionary()
        n = len(full.bytesList)
        first = [] if ids is None else sorted({int(i) for i in ids if 0 <= int(i) < n})
        self.order = np.array(first + sorted(set(range(n)) - set(first)), dtype=np.int64)
        codes = full if not first else cv2.aruco.Dictionary(full.bytesList[self.order], full.markerSize,
                                                              full.maxCorrectionBits)
        self._detector = cv2.aruco.ArucoDetector(codes, params or detector_parameters())

    def __call__(self, grey: np.ndarray) -> list[Detection]:
        """Markers in a grey uint8 image (corners in pixel-corner coordinates), in OpenCV's order."""
        corners, index, _ = self._detector.detectMarkers(np.ascontiguousarray(grey))
        return _detections(corners, None if index is None else self.order[np.asarray(index).ravel()])


_DETECTORS: dict = {}


def cached_detector(ids=None, parameters: Callable[[], cv2.aruco.DetectorParameters] = detector_parameters
                    ) -> Detector:
    """A `Detector` per (parameters function, ids), kept for the next photo (building one copies
    the dictionary); a few at most, since ids change only with the layouts read."""
    key = (parameters, None if ids is None else tuple(sorted({int(i) for i in ids})))
    if key not in _DETECTORS:
        if len(_DETECTORS) > 8:
            _DETECTORS.clear()
        _DETECTORS[key] = Detector(parameters(), key[1])
    return _DETECTORS[key]


def layout_ids(*layouts: dict) -> list[int]:
    """Every marker id the layouts print (layout.json dicts), sorted."""
    return sorted({int(m["id"]) for lay in layouts for page in lay["pages"] for slot in page["slots"]
                   for m in slot["markers"]})


def detect(image: np.ndarray, ids=None) -> list[Detection]:
    """All markers of `DICTIONARY_NAME` in a BGR or grey uint8 image, sorted by id. `ids` (of the
    layouts that matter, `layout_ids`) makes it faster, not different (`Detector`)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"detect() wants a uint8 image, got {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            image = image[..., 0]
    elif image.ndim != 2:
        raise ValueError(f"detect() wants an H×W or H×W×3 image, got shape {image.shape}")
    out = cached_detector(ids)(image)
    out.sort(key=lambda d: (d.id, d.corners_px[0, 1], d.corners_px[0, 0]))
    return out


# ----------------------------------------------------------------------------- identification
@dataclass
class SlotMatch:
    """A printed image found in a photo. points_mm/points_px: (K, 2) corresponding page-mm and
    photo-px points — the corners of this slot's own markers that were found and, when fewer
    than 4 of them were, of the nearest other found markers on the same page (so K ≥ 16 when
    the page shows enough markers)."""
    page: int
    slot: int
    image_id: str
    variant: str
    points_mm: np.ndarray
    points_px: np.ndarray
    markers_found: int
    markers_expected: int


@dataclass
class Identification:
    """What a photo shows. status: "ok" (≥ 1 slot of this run found) | "no markers" |
    "other run" (markers of this scheme that belong to another run's or layout's sheet) |
    "unknown markers" (markers found but nothing of this layout can be identified); reason: one
    line when not ok. page_points_mm/px: every matched marker corner per page (for a whole-page
    homography); used: indices (into the detections given) of the markers those points came from;
    tags: layout tags decoded from the photo's markers when nothing matched."""
    status: str
    reason: str | None
    pages: list[int] = field(default_factory=list)
    slots: list[SlotMatch] = field(default_factory=list)
    page_points_mm: dict[int, np.ndarray] = field(default_factory=dict)
    page_points_px: dict[int, np.ndarray] = field(default_factory=dict)
    used: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)


def _layout_index(layout: dict):
    """id -> [(page, slot dict, role, corners_mm)]"""
    index: dict[int, list] = {}
    for page in layout["pages"]:
        for slot in page["slots"]:
            for role, marker in enumerate(slot["markers"]):
                index.setdefault(int(marker["id"]), []).append(
                    (int(page["page"]), slot, role, np.asarray(marker["corners_mm"], dtype=np.float64)))
    return index


def _consistent(mm: np.ndarray, px: np.ndarray, tol: float) -> np.ndarray:
    """Per-point inlier mask of a page-mm → photo-px homography (RANSAC)."""
    if len(mm) < 8:
        return np.ones(len(mm), bool)
    H, mask = geometry.fit_homography(mm, px, ransac_tol=tol)
    if H is None:
        return np.zeros(len(mm), bool)
    proj = geometry.map_points(H, mm)
    return np.linalg.norm(proj - px, axis=1) <= tol


def identify(detections: list[Detection], layout: dict, explain: bool = True) -> Identification:
    """Match a photo's detections against a layout (layout.json as a dict). `explain=False`
    skips working out why nothing matched (the reason and tags of a failed match).

    A page is identified by a slot showing ≥ `MIN_TAG_MARKERS` of its own markers (three ids
    of one codeword of this layout's tag: see "Identification rule" above); its other slots then
    by 2 or even 1 of theirs (ids are unique within a page). Markers are kept only where one
    homography per page maps their layout corners onto their detected corners within a generous
    tolerance (lens distortion), which throws out false or duplicated detections.
    """
    if not detections:
        return Identification(STATUS_NO_MARKERS, "no markers found")
    index = _layout_index(layout)
    sides = np.array([d.side_px for d in detections])
    tol = max(3.0, 1.0 * float(np.median(sides)))
    # one numpy call for all (the same floats as [d.center for d in detections])
    centres_px = np.array([d.corners_px for d in detections]).mean(axis=1)

    # 1) candidate (page, slot) votes
    # (page, slot) -> {role: [detection indices]}: an id seen twice (two sheets in one photo)
    # keeps both candidates, and the page homography below chooses
    votes: dict[tuple[int, int], dict[int, list[int]]] = {}
    slot_of: dict[tuple[int, int], dict] = {}
    for d, det in enumerate(detections):
        for page, slot, role, _ in index.get(det.id, []):
            key = (page, int(slot["slot"]))
            votes.setdefault(key, {})
            slot_of[key] = slot
            votes[key].setdefault(role, []).append(d)
    confirmed = {k: v for k, v in votes.items() if len(v) >= MIN_TAG_MARKERS}
    pages = sorted({k[0] for k in confirmed})

    # 2) per page: all markers of this page that were seen, checked by one homography
    matches: list[SlotMatch] = []
    page_mm: dict[int, np.ndarray] = {}
    page_px: dict[int, np.ndarray] = {}
    good_pages, used = [], []
    for page in pages:
        found = []  # (slot_no, role, corners_mm, corners_px, detection index)
        for (p, s), roles in votes.items():
            if p != page:
                continue
            for role, ds in roles.items():
                corners_mm = np.asarray(slot_of[(p, s)]["markers"][role]["corners_mm"], dtype=np.float64)
                found.extend((s, role, corners_mm, detections[d].corners_px, d) for d in ds)
        mm = np.concatenate([f[2] for f in found])
        px = np.concatenate([f[3] for f in found])
        inl = _consistent(mm, px, tol).reshape(-1, 4).all(axis=1)
        seen = set()   # one detection per (slot, role): the first inlier
        found = [f for f, ok in zip(found, inl) if ok and (f[:2] not in seen and not seen.add(f[:2]))]
        per_slot: dict[int, list] = {}
        for f in found:
            per_slot.setdefault(f[0], []).append(f)
        if len(found) >= MIN_TAG_MARKERS:
            # another marker within a slot's frame (its image and its markers' rows) contradicts
            # it: its markers frame something else, e.g. two images of another sheet read as one
            # wider image of this layout, or a marker of another id where its own should be
            H, _ = cv2.findHomography(np.concatenate([f[2] for f in found]), np.concatenate([f[3] for f in found]), 0)
            if H is not None and abs(np.linalg.det(H)) > 1e-12:
                centres_mm = cv2.perspectiveTransform(centres_px.reshape(-1, 1, 2), np.linalg.inv(H)).reshape(-1, 2)
                page_ids = {det_id for det_id, entries in index.items() if any(e[0] == page for e in entries)}
                for s in [s for s in per_slot if _intruded(slot_of[(page, s)], centres_mm, detections, page_ids)]:
                    del per_slot[s]
                found = [f for f in found if f[0] in per_slot]
        # the page needs one slot with 3 own markers (the tag); then 1 is enough for the others
        if not any(len(v) >= MIN_TAG_MARKERS for v in per_slot.values()):
            continue
        good_pages.append(page)
        used.extend(f[4] for f in found)
        page_mm[page] = np.concatenate([f[2] for f in found])
        page_px[page] = np.concatenate([f[3] for f in found])
        centers = np.array([f[2] for f in found]).mean(axis=1)   # each marker's centre (mm)
        for s in sorted(per_slot):
            own = per_slot[s]
            slot = slot_of[(page, s)]
            pts_mm = [f[2] for f in own]
            pts_px = [f[3] for f in own]
            if len(own) < 4:
                rect = np.asarray(slot["rect_mm"], dtype=np.float64)
                centre = (rect[:2] + rect[2:]) / 2
                order = np.argsort(np.linalg.norm(centers - centre, axis=1))
                for i in order:
                    if len(pts_mm) >= 4:
                        break
                    if found[i][0] != s:
                        pts_mm.append(found[i][2])
                        pts_px.append(found[i][3])
            matches.append(SlotMatch(page=page, slot=s, image_id=slot["image_id"], variant=slot["variant"],
                                     points_mm=np.concatenate(pts_mm), points_px=np.concatenate(pts_px),
                                     markers_found=len(own), markers_expected=len(slot["markers"])))
    if matches:
        return Identification(STATUS_OK, None, good_pages, matches, page_mm, page_px, sorted(set(used)))
    if not explain:
        return Identification(STATUS_UNKNOWN, "not explained")

    # 3) nothing of this layout: another run's or layout's sheet, or unknown markers
    ours = [d for d in detections if split_id(d.id) is not None]
    run = layout.get("run", "?")
    my_tag = (layout.get("run_tag") or {}).get("tag")
    tags = photo_tags(ours)
    if set(tags) - {my_tag}:
        return Identification(STATUS_OTHER_RUN,
                              f"markers belong to another run's sheet or another layout's (tag "
                              f"{[t for t in tags if t != my_tag][0]}; run {run!r}, {_layout_name(layout)}, has tag "
                              f"{my_tag})", tags=tags)
    if len(ours) >= 2 and len({split_id(d.id)[0] for d in ours}) >= 2 and not any(d.id in index for d in ours):
        return Identification(STATUS_OTHER_RUN,
                              f"{len(ours)} markers found, none of them printed for run {run!r} (another run's sheet)",
                              tags=tags)
    if ours:
        n_known = sum(d.id in index for d in ours)
        return Identification(STATUS_UNKNOWN,
                              f"{len(detections)} markers found but no printed image of run {run!r} has "
                              f"{MIN_TAG_MARKERS} of them ({n_known} match this layout's ids; a sheet of another "
                              "run or layout, or too little of one image in the photo)", tags=tags)
    return Identification(STATUS_UNKNOWN, f"{len(detections)} markers found, none from a `physical` sheet")


def _intruded(slot: dict, centres_mm: np.ndarray, detections: list[Detection], page_ids: set[int]) -> bool:
    """Whether a marker printed nowhere on this page lies within the slot's frame (the bounding
    box of its markers, less a quarter marker on each side: a neighbour's marker is at least 3/4
    of a marker outside it, so lens distortion does not push one in). A marker of this page out
    of place is a false or duplicated detection, which the homography check already set aside."""
    corners = np.concatenate([np.asarray(m["corners_mm"], np.float64) for m in slot["markers"]])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    inset = 0.25 * float(np.linalg.norm(corners[1] - corners[0]))
    inside = np.all((centres_mm > lo + inset) & (centres_mm < hi - inset), axis=1)
    return any(detections[i].id not in page_ids for i in np.flatnonzero(inside))


def _inside_convex(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mask of `pts` strictly inside the convex polygon `poly` (either winding)."""
    e = np.roll(poly, -1, axis=0) - poly                                    # (k, 2) edges
    rel = pts[:, None, :] - poly[None, :, :]                                # (n, k, 2)
    cross = e[None, :, 0] * rel[..., 1] - e[None, :, 1] * rel[..., 0]
    return (cross > 0).all(axis=1) | (cross < 0).all(axis=1)


def _layout_name(layout: dict) -> str:
    lid = layout.get("layout_id")
    return f"layout {lid}" if lid else f"layout of id scheme {(layout.get('markers') or {}).get('id_scheme', 'rs241-v1')}"


def photo_tags(detections: list[Detection]) -> list[int]:
    """The layout tags a photo's markers show, best supported first.

    Any three markers of distinct roles fit *some* quadratic, so a tag is only read from four
    (one per role) whose values are a codeword (third difference v3 − 3·v2 + 3·v1 − v0 ≡ 0,
    which a random four meets 1 time in 241), that lie within 12 marker sides of each other,
    go round in the printed order (TL → TR → BR → BL turning the way each marker's own corners
    do) and hold no other marker between them. (That last test matters: TL and BL of slot n
    with TR and BR of slot n + k are always a codeword, of tag t − k/2, around a wider frame.)
    Each such four votes; tags with half the best count of votes are kept."""
    centres = np.array([d.center for d in detections]) if detections else np.zeros((0, 2))
    by_role: list[list[tuple[int, Detection]]] = [[] for _ in ROLES]
    for d in detections:
        sv = split_id(d.id)
        if sv is not None:
            by_role[sv[0]].append((sv[1], d))
    if not all(by_role):
        return []
    bl: dict[int, list[Detection]] = {}
    for v, d in by_role[3]:
        bl.setdefault(v, []).append(d)
    votes: dict[int, int] = {}
    for v0, a in by_role[0]:
        for v1, b in by_role[1]:
            for v2, c in by_role[2]:
                for d in bl.get((3 * v2 - 3 * v1 + v0) % PRIME, ()):
                    if _one_image(a, b, c, d) and not _holds_others(a, b, c, d, centres):
                        t = (v2 - 2 * v1 + v0) * pow(2, -1, PRIME) % PRIME
                        votes[t] = votes.get(t, 0) + 1
    best = max(votes.values(), default=0)
    return [t for t, n in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])) if n >= best / 2]


def _holds_others(a: Detection, b: Detection, c: Detection, d: Detection, centres: np.ndarray) -> bool:
    """Whether another marker's centre lies inside the convex hull of these four markers."""
    four = np.concatenate([x.corners_px for x in (a, b, c, d)])
    hull = cv2.convexHull(four.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    inside = _inside_convex(hull, centres)
    mine = np.array([x.center for x in (a, b, c, d)])
    others = ~(np.abs(centres[:, None] - mine[None]).max(axis=2) < 1e-9).any(axis=1)
    return bool((inside & others).any())


def _one_image(*dets: Detection) -> bool:
    """Whether four markers (TL, TR, BR, BL) can frame one printed image: close together, and
    their centres turning the same way round as each marker's own corners."""
    centres = np.array([d.center for d in dets])
    side = max(d.side_px for d in dets)
    if np.linalg.norm(centres[:, None] - centres[None], axis=2).max() > 12 * side:
        return False

    def turns(p):  # signs of the cross products at each vertex of the closed polygon p
        e = np.roll(p, -1, axis=0) - p
        return np.sign(e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0])

    own = turns(dets[0].corners_px)
    t = turns(centres)
    return bool(own.min() == own.max() != 0 and t.min() == t.max() == own[0])


def identify_layouts(detections: list[Detection], layouts: list[dict]) -> list[tuple[int, Identification]]:
    """Match a photo against several layouts (ingest: the current one and the kept earlier ones).

    Each marker explains at most one layout: the layout whose identification uses the most
    markers is taken first, its markers are removed, and the rest are matched again (rule 4 of
    the module docstring). Returns (index into `layouts`, Identification) of every layout found,
    in that order; the identifications' `used` index into `detections`. Empty when none matched."""
    left = list(range(len(detections)))
    out: list[tuple[int, Identification]] = []
    todo = list(range(len(layouts)))
    while todo and len(left) >= MIN_TAG_MARKERS:
        best = None
        for k in todo:
            idf = identify([detections[i] for i in left], layouts[k], explain=False)
            if idf.status == STATUS_OK and (best is None or len(idf.used) > len(best[1].used)):
                best = (k, idf)
        if best is None:
            break
        k, idf = best
        idf.used = [left[i] for i in idf.used]
        out.append((k, idf))
        todo.remove(k)
        gone = set(idf.used)
        left = [i for i in left if i not in gone]
    return out
