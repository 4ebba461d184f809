"""Attacks against models whose gradients we can write down, and the paper's formulas."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from physical import attacks as atk


class Linear(nn.Module):
    """logits = W · vec(x / 255) + b: ∇_x CE = Wᵀ(softmax − onehot) / 255, known exactly."""

    def __init__(self, n_in=12, n_classes=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(n_classes, n_in, generator=g, dtype=torch.float64), requires_grad=False)
        self.b = nn.Parameter(torch.randn(n_classes, generator=g, dtype=torch.float64), requires_grad=False)

    def forward(self, x):
        return (x.double().flatten(1) / 255.0) @ self.W.T + self.b


def analytic_grad(model, x, y):
    z = model(x)
    p = torch.softmax(z, dim=1)
    onehot = torch.nn.functional.one_hot(y, z.shape[1]).double()
    return ((p - onehot) @ model.W / 255.0).view_as(x)


@pytest.fixture
def linear_setup():
    model = Linear()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(5, 3, 2, 2, generator=g, dtype=torch.float64) * 200 + 28)  # away from 0 and 255
    y = torch.tensor([0, 1, 2, 3, 0])
    return model, x, y


def test_fgsm_is_eps_times_sign_of_the_known_gradient(linear_setup):
    model, x, y = linear_setup
    x_adv = atk.fgsm(model, x, y, 16.0)
    expected = 16.0 * analytic_grad(model, x, y).sign()
    assert torch.equal(x_adv, x + expected)


def test_fgsm_clips_to_pixel_range():
    model = Linear()
    x = torch.tensor([0.0, 255.0, 3.0, 250.0] * 3, dtype=torch.float64).view(1, 3, 2, 2)
    x_adv = atk.fgsm(model, x, torch.tensor([1]), 16.0)
    assert x_adv.min() >= 0 and x_adv.max() <= 255
    g = analytic_grad(model, x, torch.tensor([1])).sign()
    assert torch.equal(x_adv, torch.clamp(x + 16 * g, 0, 255))


def test_fgsm_sweep_equals_separate_runs_and_costs_one_gradient(linear_setup, monkeypatch):
    model, x, y = linear_setup
    calls = []
    original = atk.input_gradient
    monkeypatch.setattr(atk, "input_gradient", lambda *a: calls.append(1) or original(*a))
    sweep = atk.fgsm_sweep(model, x, y, [2, 4, 8, 16])
    assert len(calls) == 1
    for eps, adv in zip([2, 4, 8, 16], sweep):
        assert torch.equal(adv, atk.fgsm(model, x, y, eps))


@pytest.mark.parametrize("eps,steps", [(2, 2), (4, 5), (8, 10), (16, 20), (1, 1), (0.5, 1)])
def test_paper_steps_truncate_min_eps_plus_4_and_1_25_eps(eps, steps):
    assert atk.paper_steps(eps) == steps


def test_clip_eps_is_the_papers_formula_elementwise():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (1000,), generator=g).double()
    x_prime = x + torch.randn(1000, generator=g, dtype=torch.float64) * 40
    eps = 8.0
    ref = np.minimum(255, np.minimum(x.numpy() + eps, np.maximum(0, np.maximum(x.numpy() - eps, x_prime.numpy()))))
    assert np.array_equal(atk.clip_eps(x_prime, x, eps).numpy(), ref)


class TinyConv(nn.Module):
    """A small non-linear model so iterative attacks take many different sign patterns."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(32, 10))
        self.requires_grad_(False)

    def forward(self, x):
        return self.net(x / 255.0)


@pytest.mark.parametrize("attack", ["bim", "ill"])
@pytest.mark.parametrize("eps", [1, 4, 16])
def test_iterative_attacks_stay_in_eps_ball_and_pixel_range(attack, eps):
    model = TinyConv()
    g = torch.Generator().manual_seed(3)
    # Half the pixels at the range's ends, where clipping to [0, 255] and the ε-ball interact.
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=g).float()
    x[:, :, :4] = torch.where(x[:, :, :4] > 127, 255.0, 0.0)
    y = torch.randint(0, 10, (4,), generator=g)
    adv = atk.run_attack(attack, model, x, y, [eps], steps={eps: 3 * eps})[0]
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 255
    assert (adv != x).any()


def test_bim_single_step_of_alpha_is_fgsm_with_eps_alpha(linear_setup):
    model, x, y = linear_setup
    assert torch.equal(atk.bim(model, x, y, eps=16, alpha=1, steps=1), atk.fgsm(model, x, y, 1))


def test_bim_projects_every_step_not_only_at_the_end(linear_setup):
    # With α > ε, an attack that clips only at the end would drift outside the ball and come
    # back elsewhere; per-step projection keeps every iterate within ε of X.
    model, x, y = linear_setup
    iterate = x.clone()
    for _ in range(5):
        iterate = atk.clip_eps(iterate + 3 * analytic_grad(model, iterate, y).sign(), x, 2.0)
    assert torch.equal(atk.bim(model, x, y, eps=2, alpha=3, steps=5), iterate)


def test_ill_targets_the_clean_argmin_and_raises_its_probability(linear_setup):
    model, x, y = linear_setup
    target = model(x).argmin(dim=1)
    assert torch.equal(atk.least_likely(model, x), target)
    adv = atk.ill(model, x, eps=16, steps=20)
    p_before = torch.softmax(model(x), 1).gather(1, target[:, None])
    p_after = torch.softmax(model(adv), 1).gather(1, target[:, None])
    assert (p_after > p_before).all()
    # ILL descends J(X, y_LL): its first step is −sign(∇J(X, y_LL)).
    one = atk.ill(model, x, eps=16, steps=1)
    assert torch.equal(one - x, -analytic_grad(model, x, target).sign())


def test_ill_keeps_the_target_fixed_across_steps(linear_setup, monkeypatch):
    model, x, y = linear_setup
    targets = []
    original = atk.input_gradient
    monkeypatch.setattr(atk, "input_gradient", lambda m, xx, t: targets.append(t.clone()) or original(m, xx, t))
    atk.ill(model, x, eps=8, steps=6)
    assert len(targets) == 6 and all(torch.equal(t, targets[0]) for t in targets)


def test_bim_increases_loss_monotonically_on_a_linear_model(linear_setup):
    model, x, y = linear_setup
    losses = [torch.nn.functional.cross_entropy(model(atk.bim(model, x, y, eps=e)), y).item() for e in (0, 2, 4, 8, 16)]
    assert losses == sorted(losses)


def test_eps_zero_returns_the_input(linear_setup):
    model, x, y = linear_setup
    assert torch.equal(atk.fgsm(model, x, y, 0), x)
    assert torch.equal(atk.bim(model, x, y, 0), x)


@pytest.mark.parametrize("bad", [-1, 256, float("nan"), float("inf")])
def test_bad_eps_raises_value_error(linear_setup, bad):
    model, x, y = linear_setup
    with pytest.raises(ValueError):
        atk.fgsm(model, x, y, bad)
    with pytest.raises(ValueError):
        atk.bim(model, x, y, bad)


def test_bad_steps_and_attack_name_raise(linear_setup):
    model, x, y = linear_setup
    with pytest.raises(ValueError):
        atk.bim(model, x, y, 4, steps=0)
    with pytest.raises(ValueError):
        atk.bim(model, x, y, 4, alpha=0)
    with pytest.raises(ValueError):
        atk.run_attack("pgd", model, x, y, [4])


def test_sign_noise_is_plus_minus_eps_and_seeded():
    x = torch.full((2, 3, 16, 16), 128.0)
    a = atk.sign_noise(x, 8, torch.Generator().manual_seed(0))
    b = atk.sign_noise(x, 8, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert set((a - x).unique().tolist()) == {-8.0, 8.0}


def test_gaussian_noise_matches_fgsm_l2():
    x = torch.full((2, 3, 16, 16), 128.0)
    n = atk.gaussian_noise(x, 4, torch.Generator().manual_seed(0)) - x
    expected = 4 * math.sqrt(3 * 16 * 16)
    assert torch.allclose(n.flatten(1).norm(dim=1), torch.full((2,), expected), rtol=1e-5)


def test_variant_names_round_trip():
    assert atk.variant_name("fgsm", 16.0) == "fgsm-eps16"
    assert atk.variant_name("noise", 0.5) == "noise-eps0.5"
    assert atk.parse_variant("bim-eps2") == ("bim", 2.0)
    assert atk.parse_variant("clean") == ("clean", None)
