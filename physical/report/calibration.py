"""The calibration section (issue 13): the profile a run was made with — held-out ΔE, the tone
curves, the chart photo — and, per variant, the fraction of pixels outside the printable gamut.

The profile comes from `inputs.read_profile` (the copy simulate --profile keeps in the run, or
the one an EOT channel was fitted through) or from `physical report --profile FILE`.
"""
from __future__ import annotations

import base64
import binascii

import numpy as np

from physical.report import gallery as G, plots as P
from physical.report.inputs import ClassNames, RunInputs, inside
from physical.report.tables import attack_key, variant_title
from physical.workspace import read_verified


def tone_curves(profile: dict):
    """The profile's per-channel tone curves (digital level → captured value), the identity dashed."""
    tone = (profile.get("colour") or {}).get("tone") or {}
    levels, rgb = tone.get("levels"), tone.get("rgb")
    if not levels or not rgb or len(rgb) != 3:
        return None
    fig = P._figure(5.2, 4.0)
    ax = fig.subplots()
    ax.plot([0, 255], [0, 255], color="#999999", linestyle="--", linewidth=1, label="identity")
    for values, colour, name in zip(rgb, ("#d62728", "#2ca02c", "#1f77b4"), ("R", "G", "B")):
        ax.plot(levels, values, color=colour, linewidth=2, marker="o", markersize=2.5, label=name)
    ax.set_xlim(0, 255)
    ax.set_ylim(0, 255)
    ax.set_xlabel("digital level (PNG)")
    ax.set_ylabel("captured value (photo)")
    ax.set_title("tone curves: print + phone", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    P._style_axes(ax)
    return fig


def printability(inp: RunInputs, profile: dict, names: ClassNames) -> list[dict]:
    """Per variant (clean first, then by attack and ε): over the images, the mean and the largest
    fraction of pixels outside the printable gamut (`profiles.outside_gamut`: the printer clips
    them). Every PNG is checked against its sha256."""
    from physical.profiles import inside_gamut

    # One state per 24-bit colour (-1: not tested yet): each distinct colour of the run is taken
    # to Lab and tested once, not once per PNG (outside_gamut per PNG costs ~0.2 s).
    state = np.full(1 << 24, -1, np.int8)
    fractions: dict[str, list[float]] = {}
    for image in inp.manifest.images:
        for name, rec in image.variants.items():
            path = inside(inp.printouts, rec.file)
            arr = G.load_rgb(read_verified(path, rec.sha256, "physical craft")) if path is not None else None
            if arr is None:
                continue
            rgb = arr.reshape(-1, 3).astype(np.int32)
            codes = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
            new = np.unique(codes[state[codes] < 0])
            if len(new):
                state[new] = inside_gamut(np.stack([new >> 16, (new >> 8) & 255, new & 255], 1), profile)
            fractions.setdefault(name, []).append(float((state[codes] == 0).mean()))
    order = sorted(fractions, key=lambda v: (v != "clean", attack_key(inp.manifest.variant_parts(v)[0]),
                                             inp.manifest.variant_parts(v)[1] or 0, v))
    out = []
    for v in order:
        attack, eps = inp.manifest.variant_parts(v)
        target = next((im.variants[v].target for im in inp.manifest.images if v in im.variants), None)
        out.append({"variant": v, "attack": attack,
                    "title": variant_title(v, attack, eps, names(target) if target is not None else None),
                    "n": len(fractions[v]), "mean": float(np.mean(fractions[v])), "max": float(np.max(fractions[v]))})
    return out


def _photo(profile: dict, assets: G.Assets) -> dict | None:
    cp = profile.get("chart_photo")
    if not isinstance(cp, dict) or not cp.get("jpeg_base64"):
        return None
    try:
        data = base64.b64decode(cp["jpeg_base64"], validate=True)
    except (binascii.Error, ValueError):
        return None
    return {"src": assets.copy(data, "images/calibration/chart-photo.jpg"), "file": cp.get("file"),
            "width": cp.get("width"), "height": cp.get("height")}


def section(inp: RunInputs, names: ClassNames, assets: G.Assets) -> dict | None:
    """The section's data for the template; None when the run has no profile."""
    p = inp.profile
    if p is None:
        return None
    tone = None
    fig = tone_curves(p)
    if fig is not None:
        P.save(fig, assets.plot_path("tone_curves.png"))
        tone = G.href("plots/tone_curves.png")
    c, h = p.get("colour") or {}, p.get("heldout") or {}
    used = sum(1 for ph in p.get("photos") or [] if isinstance(ph, dict) and ph.get("status") == "used")
    return {"origin": inp.profile_origin, "chart": p.get("chart") or {},
            "model": c.get("model"), "degree": c.get("degree"), "heldout": h,
            "blur": p.get("blur") or {}, "noise": p.get("noise") or {}, "jpeg": p.get("jpeg") or {},
            "light": p.get("light") or {}, "patches": p.get("patches") or {}, "photos_used": used,
            "photos_total": len(p.get("photos") or []), "tone": tone, "photo": _photo(p, assets),
            "printability": printability(inp, p, names)}
