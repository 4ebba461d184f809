"""Szegedy et al. (2014), "units vs random directions": on an image set I, the images maximising
a single unit ⟨φ(x), e_i⟩ against those maximising a random direction ⟨φ(x), v⟩ of the same layer.

φ(x) is the output of the chosen module, read with a forward hook (the input of the model's last
linear layer when no layer is named: the penultimate features). A convolutional output N×C×H×W
is averaged over space to a C-vector (a unit is a channel); other shapes are flattened.
Units are a seeded random choice of channels; directions are seeded standard Gaussian vectors
scaled to unit length. Images are uint8 at the model's input size, fed as float [0, 255].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from physical.data import IMAGE_SUFFIXES, load_image
from physical.errors import PhysicalError


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module, bool]:
    """(label, module, hook the input?) — a named module's output, or by default the input of
    the last nn.Linear. Unknown names are a PhysicalError listing the valid ones."""
    modules = dict(model.named_modules())
    if layer:
        if layer not in modules:
            names = layer_names(model)
            raise PhysicalError(f"the model has no layer {layer!r}; valid layers: {', '.join(names)}")
        return layer, modules[layer], False
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PhysicalError("the model has no linear layer to take features from: name one with --layer "
                            f"(valid layers: {', '.join(layer_names(model))})")
    name, mod = linears[-1]
    return f"input of {name}", mod, True


def activations(model: nn.Module, images: np.ndarray, module: nn.Module, use_input: bool,
                batch_size: int = 16) -> np.ndarray:
    """φ for uint8 N×H×W×3 images → float64 N×D (spatial mean of N×C×H×W outputs)."""
    store = []

    def grab(t):
        t = t.detach().float()
        if t.ndim == 4:
            t = t.mean(dim=(2, 3))
        elif t.ndim > 2:
            t = t.flatten(1)
        store.append(t.cpu())

    if use_input:
        handle = module.register_forward_pre_hook(lambda m, args: grab(args[0]))
    else:
        handle = module.register_forward_hook(lambda m, args, out: grab(out[0] if isinstance(out, (tuple, list)) else out))
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2).float()
                model(batch.to(device))
    finally:
        handle.remove()
    return torch.cat(store).double().numpy()


def top_for(acts: np.ndarray, direction: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k images with the largest ⟨φ(x), direction⟩ (ties: lower index first), and the scores."""
    scores = acts @ direction
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return order, scores[order]


def list_images(folder: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise PhysicalError(f"--images {folder} is not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(paths, crop: int, resize: int):
    """(uint8 N×crop×crop×3, kept paths, skipped [(path, reason)])."""
    arrays, kept, skipped = [], [], []
    for p in paths:
        try:
            arrays.append(load_image(str(p), crop, resize))
            kept.append(p)
        except ValueError as exc:
            skipped.append((str(p), str(exc)))
    arr = np.stack(arrays) if arrays else np.zeros((0, crop, crop, 3), np.uint8)
    return arr, kept, skipped


def run(model: nn.Module, images: np.ndarray, names: list[str], layer: str | None = None, top: int = 8,
        units: int = 4, seed: int = 0) -> dict:
    """Top images for `units` seeded units and as many seeded random directions."""
    if top < 1:
        raise PhysicalError("--top must be at least 1")
    if len(images) < top:
        raise PhysicalError(f"--top {top} needs at least {top} images, found {len(images)}")
    label, module, use_input = resolve_layer(model, layer)
    acts = activations(model, images, module, use_input)
    dim = acts.shape[1]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(dim, size=min(units, dim), replace=False))
    out = {"experiment": "directions", "seed": seed, "layer": label, "dim": int(dim), "images": len(images),
           "top": top, "units": [], "directions": []}
    for i in chosen:
        e = np.zeros(dim)
        e[i] = 1.0
        idx, score = top_for(acts, e, top)
        out["units"].append({"unit": int(i), "top": [names[j] for j in idx], "top_index": idx.tolist(),
                             "score": [round(float(s), 6) for s in score]})
    for n in range(len(chosen)):
        v = rng.standard_normal(dim)
        v /= np.linalg.norm(v)
        idx, score = top_for(acts, v, top)
        out["directions"].append({"direction": n, "top": [names[j] for j in idx], "top_index": idx.tolist(),
                                  "score": [round(float(s), 6) for s in score]})
    out["_acts"] = acts
    return out
