"""The EOT channel through a calibration profile: `physical craft --attacks eot --channel profile.json`.

It does for EOT what `simulate --profile` does for photos: the profile gives the printer and
colour (its fitted transform digital RGB → captured RGB, `profiles.torch_colour`), the blur (its
σ in page mm, as simulate's ink spread; no defocus or motion of the camera's own), the noise and
the JPEG quality; geometry, misregistration and light are still drawn per sample from a preset's
ranges (`typical`). Built on `physical.channel.Channel` without touching its stages: the profile's
values become a ranges table whose camera ranges are single points (so simulate's own draw
functions give them) and whose exposure is relative to the preset's mean (the profile's colour
holds the chart photos' light: `profiles.relative_exposure`), and the colour transform runs
first, in place of the `printer` stage (the first one). Sample-for-sample this is simulate's
pipeline with `printer_overrides` / `profiled_camera` (tests/test_profile_channel.py holds the
two together).
"""
from __future__ import annotations

from pathlib import Path

import torch

from physical.channel import STAGES, Channel, Geometry
from physical.errors import PhysicalError
from physical.presets import CHANNEL_TABLES, PRESETS
from physical.profiles import (Profile, camera_overrides, load_profile, printer_overrides, relative_exposure,
                               torch_colour)
from physical.workspace import sha256_file

PRINTER_KEYS = ("gamma", "paper_white", "black", "saturation")   # the preset's printer: replaced by the colour


def profile_table(profile: Profile | dict, preset: str = "typical") -> dict:
    """The preset's ranges with the profile's camera values as single points: no defocus or motion
    (the profile's σ covers print and camera), its noise and JPEG quality, its blur as ink spread."""
    if preset not in PRESETS:
        raise PhysicalError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    table = dict(PRESETS[preset])
    fixed = dict(camera_overrides(profile), ink_blur_mm=printer_overrides(profile)["blur_mm"])
    table.update({k: (float(v), float(v)) for k, v in fixed.items()})
    table["exposure"] = relative_exposure(table)    # the profile's colour holds the chart's light: drawn once
    return table


class ProfileChannel(Channel):
    """T(x; θ) through a profile. `source`: what the manifest names it by ({"path", "sha256"})."""

    def __init__(self, profile: Profile | dict, source: dict | None = None, preset: str = "typical",
                 geometry: Geometry = Geometry(), stages=STAGES, size: int = 224, jpeg: str = "fast"):
        p = profile.dump() if isinstance(profile, Profile) else dict(profile)
        super().__init__(profile_table(p, preset), geometry, tuple(s for s in stages if s != "printer"), size, jpeg)
        self.colour_on = "printer" in stages
        self.all_stages = tuple(s for s in STAGES if s in stages)
        self.colour = torch_colour(p)
        self.name, self.preset = "profile", preset
        self.profile_ref = {**(source or {}), "chart": {k: p["chart"].get(k) for k in ("name", "version", "id", "paper")},
                            "heldout_mean_de00": p["heldout"].get("mean_de00")}

    @classmethod
    def from_file(cls, path, **kwargs) -> "ProfileChannel":
        path = Path(path).expanduser()
        profile = load_profile(path)
        return cls(profile, {"path": str(path.resolve()), "sha256": sha256_file(path)}, **kwargs)

    def forward(self, x: torch.Tensor, theta) -> torch.Tensor:
        if self.colour_on and x.ndim == 4 and x.shape[1] == 3:   # other shapes: the base class says why
            x = self.colour(x)
        return super().forward(x, theta)

    def describe(self) -> dict:
        d = super().describe()
        d["stages"] = list(self.all_stages)
        d["ranges"] = {k: v for k, v in d["ranges"].items() if k not in PRINTER_KEYS}
        d.update(preset=self.preset, profile=self.profile_ref,
                 printer="the profile's colour transform (physical.profiles.torch_colour); blur, noise, JPEG "
                         f"from the profile; geometry and light drawn from {self.preset}")
        return d


def channel_for(spec: str) -> Channel:
    """`--channel`: a preset name, or the path of a `physical calibrate fit` profile."""
    if spec in PRESETS or spec in CHANNEL_TABLES:
        return Channel(spec)
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        why = "a folder, not a file" if path.is_dir() else "no such file"
        raise PhysicalError(f"unknown --channel {spec!r}: name a preset ({', '.join([*PRESETS, *CHANNEL_TABLES])}) or a calibration "
                            f"profile made by `physical calibrate fit` ({why})")
    try:
        return ProfileChannel.from_file(path)
    except PhysicalError as exc:
        raise PhysicalError(f"--channel: {exc}") from None
    except OSError as exc:
        raise PhysicalError(f"--channel: cannot read {path}: {exc.strerror or exc}") from None


def channel_identity(entry: dict | None):
    """What must agree for a resumed craft to keep earlier eot variants: the preset's name, or the
    profile's sha256 (the file may move). None when an entry records no channel."""
    ch = (entry or {}).get("channel")
    if not isinstance(ch, dict):
        return None
    ref = ch.get("profile")
    return ("profile", ref.get("sha256")) if isinstance(ref, dict) else ("preset", ch.get("table"))
