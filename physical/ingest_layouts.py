"""Which layout a photo shows: the current one, a kept earlier one, or none (one line why).

Ingest reads every photo against the run's current layout *and* each earlier layout kept in
printouts/<run>/layouts/ (physical/layout_history.py), each marker explaining at most one
layout (`markers.identify_layouts`). A sheet of an earlier layout is labelled by that layout's
slots, never the current one's; a slot of it is refused unless the PNG it printed is still the
manifest's (same sha256). A photo that no layout reads gets one line naming what it shows.
"""
from __future__ import annotations

from dataclasses import dataclass

from physical import markers
from physical.layout_history import kept_layouts, layout_label

_STATUS_REASON = {markers.STATUS_OTHER_RUN: "markers of another run",
                  markers.STATUS_UNKNOWN: "unknown markers"}


@dataclass
class KeptLayout:
    """An earlier layout of the run (printouts/<run>/layouts/<label>/): its sheets are read
    against it, except slots whose PNG is no longer the manifest's (`stale`: the reason)."""
    label: str
    layout: dict
    rects: dict                 # (page, slot) -> rect_mm
    stale: dict                 # (page, slot) -> reason the slot's crop is refused


def kept_contexts(ws, run: str, layout: dict, manifest: dict, source_size: dict) -> tuple[str, list[KeptLayout]]:
    """The current layout's label and every other kept layout, with the slots whose crops are
    refused (`stale`); adds the PNG sizes of the kept layouts' usable slots to `source_size`."""
    label = layout_label(layout, ws.layout_path(run))
    pngs = {(im["id"], v): rec for im in manifest["images"] for v, rec in im["variants"].items()}
    kept = []
    for name, lay in kept_layouts(ws, run).items():
        if name == label:
            continue
        k_rects, stale = {}, {}
        for page in lay["pages"]:
            for slot in page["slots"]:
                where = (int(page["page"]), int(slot["slot"]))
                k_rects[where] = [float(v) for v in slot["rect_mm"]]
                key = (slot["image_id"], slot["variant"])
                rec = pngs.get(key)
                if rec is None:
                    stale[where] = f"printed by layout {name} from an image or variant the manifest no longer has"
                elif not slot.get("sha256") or slot["sha256"] != rec.get("sha256") or not slot.get("size_px"):
                    stale[where] = (f"printed by layout {name} from another PNG than the manifest's "
                                    "(sha256 differs: the run was crafted again since)")
                else:
                    source_size.setdefault(key, tuple(int(v) for v in slot["size_px"]))
        kept.append(KeptLayout(name, lay, k_rects, stale))
    return label, kept


def identify_all(dets: list[markers.Detection], ident: "markers.Identification", ctx) -> list:
    """The layouts a photo shows: the current one and the kept earlier ones, each marker
    explaining at most one (`markers.identify_layouts`). Photos of an earlier layout's sheet are
    labelled by that layout's slots — never by the current one's."""
    current = KeptLayout(ctx.label, ctx.layout, ctx.rects, {})
    if not ctx.kept:
        return [(current, ident)] if ident.status == markers.STATUS_OK else []
    layouts = [current, *ctx.kept]
    return [(layouts[k], idf) for k, idf in markers.identify_layouts(dets, [lay.layout for lay in layouts])]


def unmatched_reason(dets: list[markers.Detection], ident: "markers.Identification", ctx) -> str:
    """One line naming whose sheet a photo shows when no layout of the run could read it."""
    if ident.status == markers.STATUS_NO_MARKERS:
        return "no markers found"
    lay = ctx.layout
    run, mine = lay.get("run", "?"), lay["run_tag"]["tag"]
    ranked = markers.photo_tags(dets)           # best supported first
    tags = set(ranked[:1])                        # the sheet's own tag; a second is rare noise
    for kept in ctx.kept:
        if kept.layout["run_tag"]["tag"] in tags:
            return (f"markers of an earlier layout of this run: {kept.label} (kept in layouts/), but no image "
                    f"of it shows {markers.MIN_TAG_MARKERS} of its markers in the photo")
    v1 = markers.run_key(run).tag
    if v1 in tags and v1 != mine:
        return ("markers of an earlier layout of this run: one printed before layout ids (id scheme rs241-v1) "
                "and not kept, so its photos cannot be read: print the current PDF and photograph that")
    if tags - {mine}:
        kept = "".join(f", {k.label} (tag {k.layout['run_tag']['tag']})" for k in ctx.kept)
        return (f"markers of another run or layout (tag {ranked[0]}): not a sheet of run {run!r}'s "
                f"layout {ctx.label} (tag {mine}){' or a kept one' + kept if kept else ''} — another workspace's "
                "run of that name, or a layout whose folder was deleted")
    return f"{_STATUS_REASON.get(ident.status, ident.status)}: {ident.reason}"
