"""EOT and targeted attacks: properties on tiny analytic models (cleverhans style)."""
import numpy as np
import pytest
import torch
from torch import nn

from physical import attacks as atk
from physical.channel import STAGES, Channel, cat_theta

SIZE = 16


class Linear(nn.Module):
    """logits = W · (x / 255) + b on 3×16×16 images: a model whose gradients are known."""

    def __init__(self, classes: int = 5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(classes, 3 * SIZE * SIZE, generator=g) * 0.05, requires_grad=False)
        self.b = nn.Parameter(torch.zeros(classes), requires_grad=False)

    def forward(self, x):
        return (x / 255.0).flatten(1) @ self.w.T + self.b


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 4, 4, generator=g) * 200 + 25
    return torch.nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def channel():
    return Channel("typical", size=SIZE)


@pytest.mark.parametrize("eps", [1, 4, 16])
@pytest.mark.parametrize("targeted", [False, True])
def test_eot_stays_in_the_eps_ball(channel, eps, targeted):
    model, x = Linear(), images()
    y = torch.tensor([0, 1, 2, 3]) if not targeted else torch.tensor([4, 4, 4, 4])
    adv = atk.eot(model, x, y, eps, channel, samples=3, steps=4, alpha=2.0, targeted=targeted, seeds=7)
    assert (adv - x).abs().max() <= eps + 1e-4
    assert adv.min() >= 0 and adv.max() <= 255


def test_identity_channel_with_one_sample_is_bim():
    model, x = Linear(), images()
    y = model(x).argmax(1)
    identity = Channel("typical", stages=(), size=SIZE)
    for eps in (2, 8):
        ours = atk.eot(model, x, y, eps, identity, samples=1, steps=atk.paper_steps(eps), alpha=1.0, seeds=0)
        assert torch.equal(ours, atk.bim(model, x, y, eps, alpha=1.0))
    t = torch.tensor([4, 4, 4, 4])
    ours = atk.eot(model, x, t, 8, identity, samples=1, steps=10, alpha=1.0, targeted=True, seeds=0)
    assert torch.equal(ours, atk.bim_targeted(model, x, t, 8, alpha=1.0, steps=10))


def test_targeted_attacks_reach_the_target_on_a_linear_model(channel):
    model, x = Linear(), images()
    target = torch.tensor([3, 3, 3, 3])
    assert (model(x).argmax(1) != target).any()
    eot_adv = atk.eot(model, x, target, 64, channel, samples=4, steps=40, alpha=4.0, targeted=True, seeds=0)
    bim_adv = atk.bim_targeted(model, x, target, 64, alpha=4.0, steps=40)
    fgsm_adv = atk.fgsm_targeted(model, x, target, 64)
    for adv in (eot_adv, bim_adv, fgsm_adv):
        assert torch.equal(model(adv).argmax(1), target)
    # ... and EOT's example is still the target through fresh channel samples
    theta = cat_theta([channel.sample(8, np.random.default_rng([99, i])) for i in range(len(x))])
    with torch.no_grad():
        seen = model(channel(eot_adv.repeat_interleave(8, dim=0), theta)).argmax(1)
    assert (seen == 3).float().mean() >= 0.95


def test_targeted_fgsm_steps_down_the_target_loss():
    model, x = Linear(), images()
    target = torch.tensor([1, 1, 1, 1])
    loss = nn.functional.cross_entropy
    adv = atk.fgsm_targeted(model, x, target, 4)
    assert loss(model(adv), target) < loss(model(x), target)
    assert (adv - x).abs().max() <= 4 + 1e-5


def test_eot_is_seeded_and_per_image(channel):
    model, x = Linear(), images()
    y = torch.tensor([0, 1, 2, 3])
    a = atk.eot(model, x, y, 8, channel, samples=2, steps=3, seeds=[10, 11, 12, 13])
    b = atk.eot(model, x, y, 8, channel, samples=2, steps=3, seeds=[10, 11, 12, 13])
    assert torch.equal(a, b)
    c = atk.eot(model, x, y, 8, channel, samples=2, steps=3, seeds=[20, 21, 22, 23])
    assert not torch.equal(a, c)
    # an image's result depends on its own seed only, not on the rest of the batch
    alone = atk.eot(model, x[2:3], y[2:3], 8, channel, samples=2, steps=3, seeds=[12])
    assert torch.allclose(alone, a[2:3], atol=1e-3)


@pytest.mark.parametrize("stage", STAGES)
def test_gradient_flows_through_every_stage(stage):
    ch = Channel("harsh", stages=(stage,), size=SIZE)
    x = images(2).requires_grad_(True)
    theta = ch.sample(2, np.random.default_rng(3))
    out = ch(x, theta)
    assert not torch.allclose(out, x.detach(), atol=1e-3), f"stage {stage} changes nothing"
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # ... and the full channel passes gradient to every pixel
    full = Channel("typical", size=SIZE)
    (g,) = torch.autograd.grad(full(x, full.sample(2, np.random.default_rng(4))).sum(), x)
    assert (g.abs().sum(1) > 0).float().mean() > 0.99


@pytest.mark.parametrize("kwargs, message", [({"samples": 0}, "samples"), ({"samples": -1}, "samples"),
                                             ({"steps": 0}, "steps"), ({"alpha": 0}, "α")])
def test_bad_eot_arguments_raise(channel, kwargs, message):
    with pytest.raises(ValueError, match=message):
        atk.eot(Linear(), images(1), torch.tensor([0]), 4, channel, **kwargs)


def test_targeted_variant_names_round_trip():
    assert atk.variant_name("eot", 16) == "eot-eps16"
    assert atk.variant_name("bim", 16, 924) == "bim-eps16-to924"
    assert atk.parse_variant("eot-eps16-to924") == ("eot", 16.0)
    assert atk.variant_target("eot-eps16-to924") == 924
    assert atk.variant_target("bim-eps16") is None and atk.variant_target("clean") is None


class Counting(Linear):
    """Linear, counting the images it sees: one EOT step's forward pass sees N·K of them."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return super().forward(x)


@pytest.mark.parametrize("eps", [2, 16])
def test_default_steps_bim_s_untargeted_four_times_targeted(eps):
    identity = Channel("typical", stages=(), size=SIZE)
    x = images(1)
    for targeted, steps in ((False, atk.paper_steps(eps)), (True, atk.EOT_TARGETED_STEPS * atk.paper_steps(eps))):
        model = Counting()
        atk.eot(model, x, torch.tensor([4]), eps, identity, samples=2, targeted=targeted, seeds=0)
        assert model.seen == 2 * steps == 2 * atk.eot_steps(eps, targeted)
    assert atk.eot_steps(16) == 20 and atk.eot_steps(16, targeted=True) == 160
