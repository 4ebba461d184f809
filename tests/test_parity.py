"""Parity with torchattacks on the default model (torchattacks works on [0, 1]: ε/255, α/255)."""
import numpy as np
import pytest
import torch
from torch import nn

torchattacks = pytest.importorskip("torchattacks", reason="torchattacks is in the project's test extra")

from physical import attacks as atk  # noqa: E402
from physical.data import demo_items, load_image  # noqa: E402
from physical.quantize import to_uint8  # noqa: E402


class UnitRange(nn.Module):
    """torchattacks' view of our model: [0, 1] in. Built and put in eval mode before use — a fresh
    wrapper starts in training mode, and torchattacks restores the flag it finds after each call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x * 255.0)


@pytest.fixture(scope="module")
def batch(default_model):
    items = demo_items()[:3]
    x = torch.from_numpy(np.stack([load_image(it.path, 224, 256) for it in items])).permute(0, 3, 1, 2).float()
    y = torch.tensor([it.label for it in items])
    return default_model, UnitRange(default_model).eval(), x, y


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((torch.from_numpy(to_uint8(a)) == torch.from_numpy(to_uint8(b))).float().mean())


def test_fgsm_matches_torchattacks_pixels(batch):
    model, wrapped, x, y = batch
    ours = atk.fgsm(model, x, y, 16)
    theirs = torchattacks.FGSM(wrapped, eps=16 / 255)(x / 255, y) * 255
    assert agreement(ours, theirs) >= 0.999


def test_first_bim_step_matches_torchattacks(batch):
    model, wrapped, x, y = batch
    ours = atk.bim(model, x, y, eps=16, alpha=1, steps=1)
    theirs = torchattacks.BIM(wrapped, eps=16 / 255, alpha=1 / 255, steps=1)(x / 255, y) * 255
    assert agreement(ours, theirs) >= 0.999


def test_torchattacks_uses_the_same_paper_step_count():
    for eps in (2, 4, 8, 16):
        assert torchattacks.BIM(nn.Identity(), eps=eps / 255, alpha=1 / 255, steps=0).steps == atk.paper_steps(eps)


@pytest.mark.parametrize("attack", ["bim", "ill"])
def test_full_iterative_runs_agree_where_it_matters(batch, attack):
    # Sign iterations are chaotic in floating point (a last-bit difference flips a near-zero
    # gradient's sign), so compare success, the ε-ball and the perturbation's size.
    model, wrapped, x, y = batch
    eps = 4
    ta = torchattacks.BIM(wrapped, eps=eps / 255, alpha=1 / 255, steps=atk.paper_steps(eps))
    if attack == "ill":
        ta.set_mode_targeted_least_likely(kth_min=1)
        ours = atk.ill(model, x, eps)
        target = atk.least_likely(model, x)
    else:
        ours = atk.bim(model, x, y, eps)
    theirs = ta(x / 255, y) * 255
    with torch.no_grad():
        p_ours, p_theirs = model(ours).argmax(1), model(theirs).argmax(1)
    if attack == "ill":
        success_ours, success_theirs = (p_ours == target).float().mean(), (p_theirs == target).float().mean()
    else:
        success_ours, success_theirs = (p_ours != y).float().mean(), (p_theirs != y).float().mean()
    assert abs(float(success_ours - success_theirs)) <= 0.05 + 1e-9
    for adv in (ours, theirs):
        assert (adv - x).abs().max() <= eps + 1e-3 and adv.min() >= 0 and adv.max() <= 255
    mean_ours, mean_theirs = (ours - x).abs().mean(), (theirs - x).abs().mean()
    assert abs(float(mean_ours / mean_theirs) - 1) <= 0.10
