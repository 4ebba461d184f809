"""The seed table's model families, trained seeded on CPU in seconds.

    FC10(λ)        softmax regression, weight decay λ ∈ {1e-4, 1e-2, 1}           (linear)
    FC100-100-10   sigmoid MLP, weight decay 1e-5, 1e-5, 1e-6 per layer           (non-linear)
    FC200-200-10   sigmoid MLP, same decay                                          (non-linear)
    AE400-10       sigmoid autoencoder (400 units) trained to reconstruct, then a
                   softmax (λ = 1e-6) on its frozen features                        (non-linear)

Weight decay means `λ · Σ w²` over a layer's weights (not biases) added to the mean
cross-entropy. Inputs are flattened images in [0, 1]; every model returns logits.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


@contextmanager
def one_thread():
    """These models are tiny: torch's thread pool only adds overhead (and, on a shared machine,
    oversubscription that made a 1-minute run take 15). Restores the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    kind: str                  # "softmax" | "mlp" | "ae"
    hidden: tuple[int, ...]
    decay: tuple[float, ...]   # one λ per weight layer
    linear: bool


SPECS = [
    Spec("FC10(1e-4)", "Softmax with λ = 1e-4", "softmax", (), (1e-4,), True),
    Spec("FC10(1e-2)", "Softmax with λ = 1e-2", "softmax", (), (1e-2,), True),
    Spec("FC10(1)", "Softmax with λ = 1", "softmax", (), (1.0,), True),
    Spec("FC100-100-10", "Sigmoid network, λ = 1e-5, 1e-5, 1e-6", "mlp", (100, 100), (1e-5, 1e-5, 1e-6), False),
    Spec("FC200-200-10", "Sigmoid network, λ = 1e-5, 1e-5, 1e-6", "mlp", (200, 200), (1e-5, 1e-5, 1e-6), False),
    Spec("AE400-10", "Autoencoder (400 sigmoid units) + softmax, λ = 1e-6", "ae", (400,), (1e-6,), False),
]
SPEC_BY_NAME = {s.name: s for s in SPECS}


class SmallNet(nn.Module):
    """N×m in [0, 1] → N×10 logits. `weights()` pairs each weight matrix with its λ."""

    def __init__(self, spec: Spec, dim: int, classes: int = 10):
        super().__init__()
        self.spec = spec
        sizes = [dim, *spec.hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], classes)
        self.decoder = nn.Linear(spec.hidden[0], dim) if spec.kind == "ae" else None

    @property
    def name(self) -> str:
        return self.spec.name

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.sigmoid(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))

    def weight_penalty(self) -> torch.Tensor:
        layers = list(self.hidden) + [self.out]
        if self.spec.kind == "ae":   # the softmax stage trains only `out`
            layers = [self.out]
        lams = self.spec.decay if self.spec.kind != "ae" else self.spec.decay[-1:]
        return sum(lam * (layer.weight ** 2).sum() for lam, layer in zip(lams, layers))


@dataclass
class Trained:
    model: SmallNet
    train_error: float
    test_error: float
    seconds: float
    steps: int
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        s = self.model.spec
        return {"name": s.name, "description": s.description, "linear": s.linear,
                "train_error": round(self.train_error, 6), "test_error": round(self.test_error, 6),
                "train_seconds": round(self.seconds, 2), "steps": self.steps, **self.extra}


def error_rate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = model(torch.as_tensor(x)).argmax(1).numpy()
    return float((pred != y).mean())


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield perm[start:start + batch]
            done += 1
            if done >= steps:
                return


def _fit(params, loss_fn, n: int, steps: int, batch: int, lr: float, gen: torch.Generator) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for idx in _batches(n, batch, steps, gen):
        opt.zero_grad(set_to_none=True)
        loss_fn(idx).backward()
        opt.step()
        sched.step()


def train(spec: Spec, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          seed: int = 0, steps: int = 3000, batch: int = 64) -> Trained:
    """Seeded Adam training (cosine-decayed learning rate) of one spec; errors on both splits."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.long)
    model = SmallNet(spec, x.shape[1], int(max(y_train.max(), y_test.max())) + 1)
    extra = {}
    n = len(x)
    if spec.kind == "ae":
        enc, dec = model.hidden[0], model.decoder

        def recon(idx):
            xb = x[idx]
            out = torch.sigmoid(dec(torch.sigmoid(enc(xb))))
            return F.binary_cross_entropy(out, xb) + 1e-6 * ((enc.weight ** 2).sum() + (dec.weight ** 2).sum())

        _fit(list(enc.parameters()) + list(dec.parameters()), recon, n, steps, batch, 3e-3, gen)
        with torch.no_grad():
            xt = torch.as_tensor(x_test)
            extra["reconstruction_mse_test"] = round(float(((torch.sigmoid(dec(torch.sigmoid(enc(xt)))) - xt) ** 2).mean()), 6)
        enc.requires_grad_(False)
        with torch.no_grad():
            feats = torch.sigmoid(enc(x))

        def cls(idx):
            return F.cross_entropy(model.out(feats[idx]), y[idx]) + model.weight_penalty()

        _fit(model.out.parameters(), cls, n, steps, batch, 1e-2, gen)
    else:
        lr = 1e-2 if spec.kind == "softmax" else 3e-3

        def cls(idx):
            return F.cross_entropy(model(x[idx]), y[idx]) + model.weight_penalty()

        _fit(model.parameters(), cls, n, steps, batch, lr, gen)
    model.eval().requires_grad_(False)
    return Trained(model, error_rate(model, x_train, y_train), error_rate(model, x_test, y_test),
                   time.perf_counter() - t0, steps, extra)


def train_all(data, seed: int = 0, steps: int | None = None, names=None, progress=None) -> list[Trained]:
    """Train every spec (or those named) on `data` (a `Digits`). Default steps: 3000 minibatches
    (about 140 epochs of the 8×8 digits, 3 of MNIST)."""
    steps = steps or 3000
    out = []
    for spec in SPECS:
        if names and spec.name not in names:
            continue
        if progress:
            progress(f"training {spec.name}")
        out.append(train(spec, data.x_train, data.y_train, data.x_test, data.y_test, seed=seed, steps=steps))
    return out
