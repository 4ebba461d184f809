"""The ε sweep of BIM/ILL from one shared trajectory equals one run per ε."""
import platform

import numpy as np
import pytest
import torch
from torch import nn

from physical import attacks as atk
from physical.data import demo_items, load_image
from test_attacks import Linear as _Linear   # the analytic model of test_attacks (logits = W·x/255 + b)


def Linear():
    """test_attacks' linear model sized for 3×4×4 images and 5 classes."""
    return _Linear(n_in=48, n_classes=5)


class TinyConv(nn.Module):
    """A small non-linear network (conv, ReLU, pooling): gradients change along the trajectory."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(24, 5))
        self.requires_grad_(False)

    def forward(self, x):
        return self.net(x / 255.0 - 0.5)


class Counting(nn.Module):
    """Counts forward passes that build a graph, and the images in them (= gradients taken)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.images = model, 0, 0

    def forward(self, x):
        graph = torch.is_grad_enabled() and x.requires_grad
        self.calls += int(graph)
        self.images += len(x) if graph else 0
        return self.model(x)


def images(n=6, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g).float()
    x[0, 0, 0, 0], x[1, 1, 1, 1] = 0.0, 255.0   # the [0, 255] clip binds somewhere too
    return x, torch.arange(n) % 5


def per_eps(model, x, y, attack, eps_list, alpha, steps):
    if attack == "bim":
        return [atk.bim(model, x, y, e, alpha, (steps or {}).get(e)) for e in eps_list]
    target = atk.least_likely(model, x)
    return [atk.ill(model, x, e, alpha, (steps or {}).get(e), target=target) for e in eps_list]


CASES = [  # (eps list, alpha, steps)
    ([2, 4, 8, 16], 1.0, None),            # the paper's schedule
    ([16, 2, 8, 4, 8], 1.0, None),         # any order, a duplicate
    ([1.5, 3, 5.25], 0.7, None),           # non-integer α and ε
    ([2, 4, 8], 1.0, {2: 3, 4: 3, 8: 3}),  # --steps 3 for every ε
    ([4, 8], 2.5, {4: 7, 8: 2}),           # a smaller ε taking more steps than the largest
]


@pytest.mark.parametrize("make", [Linear, TinyConv])
@pytest.mark.parametrize("attack", ["bim", "ill"])
@pytest.mark.parametrize("eps_list,alpha,steps", CASES)
def test_sweep_equals_one_run_per_eps_exactly(make, attack, eps_list, alpha, steps):
    model = make()
    x, y = images(size=4 if make is Linear else 8)
    expected = per_eps(model, x, y, attack, eps_list, alpha, steps)
    got = atk.run_attack(attack, model, x, y, eps_list, alpha=alpha, steps=steps)
    assert len(got) == len(eps_list)
    for e, a, b in zip(eps_list, got, expected):
        assert torch.equal(a, b), f"ε {e}: {(a != b).sum().item()} values differ"
        assert (a - x).abs().max() <= e + 1e-9 and a.min() >= 0 and a.max() <= 255


def test_paper_schedule_takes_21_gradients_not_37():
    model = Counting(TinyConv())
    x, y = images(size=8)
    atk.run_attack("bim", model, x, y, [2, 4, 8, 16])
    # ε 8's one step of its own rides in the shared trajectory's pass: 21 gradients, 20 passes
    assert model.images == 21 * len(x) and model.calls == 20
    model.calls = model.images = 0
    per_eps(model, x, y, "bim", [2, 4, 8, 16], 1.0, None)
    assert model.calls == 2 + 5 + 10 + 20


def test_single_eps_is_the_plain_attack():
    model = Counting(TinyConv())
    x, y = images(size=8)
    (got,) = atk.run_attack("bim", model, x, y, [8])
    assert model.calls == 10 and torch.equal(got, atk.bim(model, x, y, 8))


@pytest.mark.parametrize("make", [Linear, TinyConv])
@pytest.mark.parametrize("eps_list,alpha,steps", CASES)
@pytest.mark.parametrize("max_batch", [None, 4])
def test_bim_and_ill_together_equal_each_alone_exactly(make, eps_list, alpha, steps, max_batch):
    """Both trajectories (and the smaller ε's branches) in the same passes, in chunks of 4 images
    that cut across attacks: still the per-ε runs, bit for bit."""
    model = make()
    x, y = images(size=4 if make is Linear else 8)
    got = atk.run_attacks(["bim", "ill"], model, x, y, eps_list, alpha=alpha, steps=steps, max_batch=max_batch)
    for attack in ("bim", "ill"):
        expected = per_eps(model, x, y, attack, eps_list, alpha, steps)
        for e, a, b in zip(eps_list, got[attack], expected):
            assert torch.equal(a, b), f"{attack} ε {e}: {(a != b).sum().item()} values differ"


def test_bim_and_ill_together_take_one_pass_per_step_and_no_extra_forward():
    """The paper's sweep for both attacks: 42 gradients per image in 20 passes (21 + 21 in 40
    passes apart), and y_LL read off the first pass (no gradient-free forward of its own)."""
    model = Counting(TinyConv())
    x, y = images(size=8)
    plain = []
    model.register_forward_pre_hook(lambda m, args: plain.append(not args[0].requires_grad))
    out = atk.run_attacks(["bim", "ill", "fgsm"], model, x, y, [2, 4, 8, 16])
    assert list(out) == ["bim", "ill", "fgsm"] and all(len(v) == 4 for v in out.values())
    # 2 × 21 gradients per image, the first forward pass shared by both, FGSM's one more
    assert model.images == (2 * 21 - 1 + 1) * len(x) and model.calls == 20 + 1 and not any(plain)


def test_sweep_refuses_bad_arguments():
    model, (x, y) = Linear(), images()
    with pytest.raises(ValueError):
        atk.iterative_sweep(model, x, y, [2, -1])
    with pytest.raises(ValueError):
        atk.iterative_sweep(model, x, y, [2, 4], alpha=0)


def test_sweep_on_the_default_model_matches_per_eps_runs(default_model):
    items = [it for it in demo_items() if it.id in ("coffee", "chelsea")]
    x = torch.from_numpy(np.stack([load_image(it.path, 224, 256) for it in items])).permute(0, 3, 1, 2).float()
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.tensor([it.label for it in items])
    eps_list = [2, 4, 8]   # 17 gradients per ε-run set, 11 for the sweep: a few seconds on 2 cores
    together = atk.run_attacks(["bim", "ill"], default_model, x, y, eps_list)  # as craft runs them
    for attack in ("bim", "ill"):
        got = together[attack]
        expected = per_eps(default_model, x, y, attack, eps_list, 1.0, None)
        # ε 2 and 4 never take a step of their own: the same computation, so the same bits.
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        same = sum(int((a == b).sum()) for a, b in zip(got, expected)) / sum(a.numel() for a in got)
        assert same >= 0.999, f"{attack}: {100 * same:.3f} % of values equal"
        target = y if attack == "bim" else atk.least_likely(default_model, x)
        with torch.no_grad():
            for a, b in zip(got, expected):
                hit_a, hit_b = default_model(a).argmax(1) == target, default_model(b).argmax(1) == target
                assert abs(int(hit_a.sum()) - int(hit_b.sum())) <= 1


def test_default_model_clamps_out_of_place_with_the_same_gradient(default_model):
    """ReLU6 runs out of place (faster on CPU); putting it back in place changes no bit."""
    import copy

    from physical.models import out_of_place_clamps

    assert not any(isinstance(m, nn.Hardtanh) and m.inplace for m in default_model.modules())
    inplace = copy.deepcopy(default_model)
    layers = [m for m in inplace.modules() if isinstance(m, nn.Hardtanh)]
    assert layers
    for m in layers:
        m.inplace = True
    x = torch.from_numpy(load_image(demo_items()[0].path, 224, 256)).permute(2, 0, 1)[None].float()
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.tensor([demo_items()[0].label])
    assert torch.equal(atk.input_gradient(default_model, x, y), atk.input_gradient(inplace, x, y))
    assert out_of_place_clamps(inplace) == len(layers)


def test_large_heap_changes_no_result():
    """large_heap only tunes glibc's malloc (on, where glibc is; the page faults it saves are a
    benchmark's figure, benchmarks/craft_speed.py --sweep, since they depend on the heap's state):
    the sweep inside it is bit-identical to the sweep outside it, and it says whether it was on."""
    from physical.heap import large_heap

    model, x, y = Linear(), torch.rand(3, 3, 4, 4) * 255, torch.tensor([0, 1, 2])
    outside = atk.iterative_sweep(model, x, y, [2, 4])
    with large_heap() as active:
        inside = atk.iterative_sweep(model, x, y, [2, 4])
    assert active == (platform.libc_ver()[0] == "glibc")
    assert all(torch.equal(a, b) for a, b in zip(outside, inside))
