"""The one table of physical parameters: what printers, lights and phones do, as ranges.

`physical simulate` renders whole photos from it (`simulate.draw_printer` / `draw_camera` draw a
page's printer and a photo's camera); `physical.channel` samples the same draws for EOT and maps
them to the crop's scale. A calibration profile replaces the printer and camera part.
`CHANNEL_TABLES` (below) are mixtures of these for the channel only (`craft --channel broad`).

Camera keys that only the channel reads: `register_px` / `register_deg` / `register_scale`, the
misregistration ingest's marker homography leaves in a crop (sub-pixel shift in crop pixels,
rotation, relative scale; magnitudes, signs drawn at random). simulate makes no such error on
purpose: it arises from fitting markers in its photos, and these ranges were measured that way
(benchmarks/channel_agreement.py prints the corner error of ingest against simulate's truth:
mean 0.08, 90th percentile 0.13 crop px for typical; the ranges allow more, for sheets that are
not flat and lenses simulate does not model).
"""
from __future__ import annotations

# Ranges (lo, hi) drawn uniformly per photo (camera) or per page (printer). Blur in pixels of a
# 4000 x 3000 photo (scaled with the photo size); fill = how much of the frame the page spans
# along the tighter axis of its bounding box; position = where that box sits in the free space
# (0..1 keeps the page inside the frame; harsh allows beyond, so markers can fall off the frame).
PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "mild": {
        "register_px": (0.0, 0.15), "register_deg": (0.0, 0.03), "register_scale": (0.0, 0.001),
        "tilt_deg": (0, 12), "fill": (0.75, 0.9), "position": (0.0, 1.0), "focal": (0.75, 0.85),
        "k1": (-0.01, 0.01), "defocus_px": (0.0, 0.8), "motion_px": (0.0, 1.5),
        "exposure": (0.95, 1.05), "gradient": (0.0, 0.08), "vignetting": (0.0, 0.1),
        "white_balance": (-0.03, 0.03), "shot_noise": (0.05, 0.2), "read_noise": (0.5, 1.5),
        "jpeg_quality": (90, 95),
        "gamma": (1.0, 1.1), "paper_white": (0.93, 0.97), "black": (0.03, 0.06),
        "saturation": (0.9, 0.97), "ink_blur_mm": (0.02, 0.05),
    },
    "typical": {
        "register_px": (0.0, 0.25), "register_deg": (0.0, 0.05), "register_scale": (0.0, 0.002),
        "tilt_deg": (0, 30), "fill": (0.5, 0.9), "position": (0.0, 1.0), "focal": (0.75, 0.85),
        "k1": (-0.03, 0.03), "defocus_px": (0.0, 1.2), "motion_px": (0.0, 2.0),
        "exposure": (0.85, 1.1), "gradient": (0.0, 0.2), "vignetting": (0.0, 0.2),
        "white_balance": (-0.05, 0.05), "shot_noise": (0.1, 0.4), "read_noise": (1.0, 2.5),
        "jpeg_quality": (88, 95),
        "gamma": (1.0, 1.2), "paper_white": (0.9, 0.97), "black": (0.04, 0.1),
        "saturation": (0.85, 0.97), "ink_blur_mm": (0.02, 0.06),
    },
    "harsh": {
        "register_px": (0.0, 0.6), "register_deg": (0.0, 0.2), "register_scale": (0.0, 0.006),
        "tilt_deg": (10, 45), "fill": (0.55, 1.05), "position": (-0.3, 1.3), "focal": (0.7, 0.85),
        "k1": (-0.06, 0.06), "defocus_px": (0.5, 7.0), "motion_px": (0.0, 14.0),
        "exposure": (0.5, 1.15), "gradient": (0.1, 0.5), "vignetting": (0.2, 0.45),
        "white_balance": (-0.15, 0.15), "shot_noise": (0.5, 1.5), "read_noise": (2.0, 5.0),
        "jpeg_quality": (60, 85),
        "gamma": (1.2, 1.5), "paper_white": (0.82, 0.92), "black": (0.08, 0.18),
        "saturation": (0.65, 0.85), "ink_blur_mm": (0.05, 0.12),
    },
}



# Tables only the EOT channel draws from (`craft --channel broad`); `physical simulate` keeps its
# three presets. A channel table here is a mixture: each channel sample first picks one member
# (uniformly), then draws from its ranges as simulate would. "broad" = mild, typical, harsh and
# "bright" — typical's camera with what real printers and phones do past the presets' tone:
# prints lighter than linear (γ < 1, glossy paper), whiter paper and fuller ink, over-exposure.
# Mixing keeps each member's ranges together (one table with every range's envelope would make
# almost every sample as blurred as harsh). An attack through it is not tuned to simulate's
# typical photos (issue 12: the checkers photograph with a simulator of their own);
# benchmarks/eot_survival.py measures it against all presets and an unseen simulator.
BRIGHT = {**PRESETS["typical"], "gamma": (0.85, 1.0), "paper_white": (0.95, 1.0), "black": (0.02, 0.05),
          "saturation": (0.95, 1.0), "exposure": (1.1, 1.3)}
CHANNEL_TABLES: dict[str, list] = {"broad": ["mild", "typical", "harsh", BRIGHT]}

# The "phone look" (physical/channel_look.py): what phones' image processing does after the sensor,
# which simulate does not model. Ranges, as the plausible span of phones (docs/robust.md says why):
# unsharp mask amount 0-1.2 at σ 0.7-2 photo px (none, to the strong sharpening of small-sensor
# phones); colour-matrix cross-talk ±0.1 and saturation ×0.9-1.3 (a phone's rendering against
# another's: ΔE00 of a few units on a colour chart, "natural" to "vivid" modes); tone contrast
# c −0.3 (HDR's flat rendering: slope 0.85 at mid grey) to 1.0 (a strong S-curve: slope 1.5);
# chroma denoising σ 0-3 photo px (off to low-light strength).
PHONE_LOOK = {"sharpen_amount": (0.0, 1.2), "sharpen_sigma_px": (0.7, 2.0), "ccm_crosstalk": (-0.1, 0.1),
              "ccm_saturation": (0.9, 1.3), "tone_contrast": (-0.3, 1.0), "chroma_denoise_px": (0.0, 3.0)}
# "phone": typical's table widened to the framing, focus, light and JPEG of handheld phones — the
# page 40-90 % of the frame and tilted up to 45° (fewer photo pixels per crop pixel), defocus to 3 px,
# motion to 4 px, exposure ±20 %, JPEG 70-95 (a shared photo is compressed again) — with a printer
# spanning the presets' and bright's tone (γ 0.9-1.3, paper 0.85-0.99, saturation 0.75-1), shadows
# plugged below a knee of 0-0.3 (channel-only key `shadow_plug`, physical/channel.py: plain paper's dot
# gain fills the gaps between large dots, so the darkest ~quarter of tones prints close to solid ink;
# simulate's presets print them linearly), and the look.
PHONE = {**PRESETS["typical"], "shadow_plug": (0.0, 0.3),
         "tilt_deg": (0, 45), "fill": (0.4, 0.9), "defocus_px": (0.0, 3.0), "motion_px": (0.0, 4.0),
         "exposure": (0.8, 1.2), "white_balance": (-0.08, 0.08), "shot_noise": (0.1, 1.0), "read_noise": (1.0, 4.0),
         "jpeg_quality": (70, 95), "gamma": (0.9, 1.3), "paper_white": (0.85, 0.99), "black": (0.03, 0.12),
         "saturation": (0.75, 1.0), "ink_blur_mm": (0.02, 0.08), **PHONE_LOOK}
# "phones": half the samples typical (simulate's photos), half PHONE (other printers and phones);
# "phone": every sample from PHONE (each of its ranges holds typical's).
CHANNEL_TABLES["phones"] = ["typical", PHONE]
CHANNEL_TABLES["phone"] = [PHONE]

# EOT's default channel: a handheld phone's, look included, the one whose examples measured to
# survive a printer and phone the channel never drew from (docs/robust.md, "Survival"); typical is
# simulate's own.
DEFAULT_CHANNEL = "phone"
