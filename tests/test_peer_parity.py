"""Our attacks against cleverhans 4 and foolbox 3, through an adapter.

1. Element for element: the same float32 model, the same inputs, the same ε / step / iterations,
   no random start. Our attacks work on [0, 255], theirs on [0, 1]: our wrapper divides by 255
   inside the model, so both libraries feed the network the very same float32 values
   (``k / 255`` for 8-bit pixels k) and get the same logits and gradient signs. Ours then steps
   in whole intensity levels (exact in float32); theirs adds ε/255 in float32, which rounds to at
   most half a float32 ulp below 1: 2⁻²⁵ ≈ 2.98e-8. That is the bound asserted (3e-8).
2. Their L∞ tests, run on our attacks: cleverhans' own ``TestFastGradientMethod`` /
   ``TestProjectedGradientMethod`` classes with ``self.attack`` replaced by an adapter that
   maps their ``[clip_min, clip_max]`` box onto our [0, 255] (no box: one wider than the ε-ball,
   so clipping never acts, as with none), and foolbox's ``test_untargeted_attacks`` /
   ``test_targeted_attacks`` assertions for FGSM, L∞ BIM and PGD on foolbox's PyTorch test model.
   Where our API differs, the test says so and asserts our behaviour instead:
   * inputs outside the range raise ValueError (cleverhans expects AssertionError with
     ``sanity_checks``, or clips them silently without);
   * ε above the full range is refused (foolbox's FGSM test uses ε = 100 on [0, 1]): we assert
     the refusal and that ε = 255 is that same attack, element for element;
   * α = 0 is refused (cleverhans returns the input); our attacks are L∞ only, without clip
     arguments: cleverhans' L1/L2 and clip-argument tests are left out (listed below).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from physical import attacks as atk

with warnings.catch_warnings():  # requests (a foolbox dependency) complains about urllib3's version
    warnings.simplefilter("ignore")
    fb = pytest.importorskip("foolbox", reason="foolbox is in the project's test extra")
    pytest.importorskip("cleverhans", reason="cleverhans is in the project's test extra")
    from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent
    from cleverhans.torch.tests import test_attacks as ch_tests

TOL = 3e-8          # half a float32 ulp in [0.5, 1): 2**-25


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: with two threads on a busy machine the thread hand-offs cost 100× the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ models
class TinyNet(nn.Module):
    """A seeded conv net on [0, 1] images (tanh: no exact-zero gradients to tie the signs)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(24, classes))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        return self.net(x)


class MeanModel(nn.Module):
    """foolbox's PyTorch test model (tests/conftest.py): logits = per-channel image means."""

    def forward(self, x):
        return x.mean(3).mean(2)


class On255(nn.Module):
    """Our side of the adapter: the same network, taking [0, 255] and mapping back to its box
    inside ([0, 1]: z / 255, the very values the peers feed it)."""

    def __init__(self, net, lo: float = 0.0, hi: float = 1.0):
        super().__init__()
        self.inner = net
        self.box = None if (lo, hi) == (0.0, 1.0) else (lo, (hi - lo) / 255.0)

    def forward(self, z):
        return self.inner(z / 255.0 if self.box is None else z * self.box[1] + self.box[0])


def pixels(n=8, size=12, seed=0) -> torch.Tensor:
    """8-bit images as floats 0..255 (what craft hands the attacks), some at the range's ends."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g).float()
    x[:, :, :2] = torch.where(x[:, :, :2] > 127, 255.0, 0.0)
    return x


CASES = [(eps, atk.paper_steps(eps)) for eps in (1, 2, 4, 8, 16)]


def _max_diff(ours255: torch.Tensor, theirs01: torch.Tensor) -> float:
    """Largest difference on [0, 1], ours mapped there in the peer's precision."""
    return float((ours255.detach().to(theirs01.dtype) / 255 - theirs01.detach()).abs().max())


# ------------------------------------------------------------------ 1. element for element
@pytest.mark.parametrize("eps,steps", CASES)
def test_fgsm_bim_ill_match_cleverhans(eps, steps):
    net = TinyNet()
    x = pixels()
    x01 = x / 255
    y = net(x01).argmax(1)
    ours = On255(net)
    assert _max_diff(atk.fgsm(ours, x, y, eps), fast_gradient_method(
        net, x01, eps / 255, np.inf, clip_min=0.0, clip_max=1.0, y=y)) <= TOL
    assert _max_diff(atk.bim(ours, x, y, eps, alpha=1.0, steps=steps), projected_gradient_descent(
        net, x01, eps / 255, 1 / 255, steps, np.inf, clip_min=0.0, clip_max=1.0, y=y, rand_init=False)) <= TOL
    y_ll = atk.least_likely(ours, x)
    assert _max_diff(atk.ill(ours, x, eps, alpha=1.0, steps=steps), projected_gradient_descent(
        net, x01, eps / 255, 1 / 255, steps, np.inf, clip_min=0.0, clip_max=1.0, y=y_ll, targeted=True,
        rand_init=False)) <= TOL


@pytest.mark.parametrize("model", [TinyNet, MeanModel])
@pytest.mark.parametrize("eps,steps", CASES)
def test_fgsm_bim_ill_match_foolbox(model, eps, steps):
    net = model().eval()
    x = pixels(seed=1)
    x01 = x / 255
    y = net(x01).argmax(1)
    ours = On255(net)
    fmodel = fb.PyTorchModel(net, bounds=(0, 1))
    _, adv, _ = fb.attacks.LinfFastGradientAttack(random_start=False)(fmodel, x01, y, epsilons=[eps / 255])
    assert _max_diff(atk.fgsm(ours, x, y, eps), adv[0]) <= TOL
    bim = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=1 / 255, steps=steps, random_start=False)
    _, adv, _ = bim(fmodel, x01, y, epsilons=[eps / 255])
    assert _max_diff(atk.bim(ours, x, y, eps, alpha=1.0, steps=steps), adv[0]) <= TOL
    y_ll = atk.least_likely(ours, x)
    _, adv, _ = bim(fmodel, x01, fb.TargetedMisclassification(y_ll), epsilons=[eps / 255])
    assert _max_diff(atk.ill(ours, x, eps, alpha=1.0, steps=steps), adv[0]) <= TOL


def test_in_float64_foolbox_and_we_agree_to_float64_rounding():
    """foolbox keeps the input's dtype: in float64 the two agree to ~1e-16 (cleverhans casts to
    float32 inside, so it cannot be compared this way)."""
    net = TinyNet().double()
    x = pixels(seed=3).double()
    y = net(x / 255).argmax(1)
    bim = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=1 / 255, steps=10, random_start=False)
    _, adv, _ = bim(fb.PyTorchModel(net, bounds=(0, 1)), x / 255, y, epsilons=[8 / 255])
    assert _max_diff(atk.bim(On255(net), x, y, 8, alpha=1.0, steps=10), adv[0]) <= 1e-15


def test_an_eps_sweep_matches_foolbox_sweep():
    """One gradient, many ε, as foolbox's epsilons list. Above the paper's ε (here 64) float32
    rounding of theirs reaches one ulp below 1 (2⁻²⁴ ≈ 5.96e-8), measured, not half of one."""
    net = TinyNet()
    x = pixels(seed=2)
    y = net(x / 255).argmax(1)
    eps = [1, 4, 16, 64]
    _, advs, _ = fb.attacks.LinfFastGradientAttack()(fb.PyTorchModel(net, bounds=(0, 1)), x / 255, y,
                                                     epsilons=[e / 255 for e in eps])
    for e, ours, theirs in zip(eps, atk.fgsm_sweep(On255(net), x, y, eps), advs):
        assert _max_diff(ours, theirs) <= (TOL if e <= 16 else 2 ** -24)


# ------------------------------------------------------- 2a. cleverhans' own L∞ test classes
def _adapt(model_fn, x, eps, clip_min, clip_max):
    """cleverhans' box [clip_min, clip_max] → ours [0, 255]: (our model, x on our scale, ε, back)."""
    if clip_min is None or clip_max is None:   # unbounded: a box the ε-ball never reaches
        clip_min, clip_max = float(x.min()) - abs(eps) - 1, float(x.max()) + abs(eps) + 1
    scale = 255.0 / (clip_max - clip_min)
    z = (x.double() - clip_min) * scale
    if bool(((x >= clip_min) & (x <= clip_max)).all()):
        z = z.clamp(0, 255)                    # only float rounding at the ends; out of range stays out
    model = On255(lambda v: model_fn(v.to(x.dtype)), clip_min, clip_max)
    e = eps * scale
    if 255 < e <= 255 * (1 + 1e-12):           # ε = the whole box, off by the mapping's rounding
        e = 255.0
    return model, z, e, lambda v: (v / scale + clip_min).to(x.dtype)


def cleverhans_fgm(model_fn, x, eps, norm, clip_min=None, clip_max=None, y=None, targeted=False,
                   sanity_checks=False):
    if norm != np.inf:
        raise NotImplementedError("physical.attacks are L∞ attacks only")
    model, z, e, back = _adapt(model_fn, x, eps, clip_min, clip_max)
    if y is None:
        y = model_fn(x).argmax(1)
    if targeted:   # one step of α = ε towards y: targeted FGSM is ILL with a given target, 1 step
        return back(atk.ill(model, z, e, alpha=e, steps=1, target=y)) if e > 0 else x
    return back(atk.fgsm(model, z, y, e))


def cleverhans_pgd(model_fn, x, eps, eps_iter, nb_iter, norm, clip_min=None, clip_max=None, y=None,
                   targeted=False, rand_init=True, rand_minmax=None, sanity_checks=True):
    """Ours has no random start (the paper's BIM): rand_init is ignored."""
    if norm != np.inf:
        raise NotImplementedError("physical.attacks are L∞ attacks only")
    model, z, e, back = _adapt(model_fn, x, eps, clip_min, clip_max)
    alpha = eps_iter * (e / eps) if eps else eps_iter
    if y is None:
        y = model_fn(x).argmax(1)
    if targeted:
        return back(atk.ill(model, z, e, alpha=alpha, steps=nb_iter, target=y))
    return back(atk.bim(model, z, y, e, alpha=alpha, steps=nb_iter))


class _Ours:
    """Mixin: cleverhans' test methods, seeded, on our attacks, L∞ only."""
    adapter = None

    def setUp(self):
        torch.manual_seed(1234)   # their setUp draws its data from torch's global generator
        super().setUp()
        self.attack = type(self).adapter
        self.ord_list = [np.inf]


class TestCleverhansFGM(_Ours, ch_tests.TestFastGradientMethod):
    adapter = staticmethod(cleverhans_fgm)
    # left out: not L∞; about cleverhans' clip arguments (our range is fixed); empty in
    # cleverhans (test_eps only raises SkipTest)
    test_adv_example_success_rate_l1 = test_targeted_adv_example_success_rate_l1 = None
    test_adv_example_success_rate_l2 = test_targeted_adv_example_success_rate_l2 = None
    test_invalid_clips = test_eps = None

    def test_invalid_input(self):
        """API difference: cleverhans raises AssertionError (with sanity_checks); we ValueError."""
        x = torch.tensor([[-2.0, 3.0]])
        with pytest.raises(ValueError, match=r"range \[0, 255\]"):
            self.attack(model_fn=self.model, x=x, eps=0.1, norm=np.inf, clip_min=-1.0, clip_max=1.0)


class TestCleverhansPGD(_Ours, ch_tests.TestProjectedGradientMethod):
    adapter = staticmethod(cleverhans_pgd)
    test_adv_example_success_rate_l1 = test_targeted_adv_example_success_rate_l1 = None
    test_adv_example_success_rate_l2 = test_targeted_adv_example_success_rate_l2 = None
    test_invalid_clips = test_eps = test_clip_eta = None
    test_attack_does_not_cache_graph_computation_for_nb_iter = None   # empty in cleverhans (pass)

    def test_invalid_input(self):
        """API difference: cleverhans raises AssertionError (with sanity_checks); we ValueError."""
        x = torch.tensor([[-2.0, 3.0]])
        with pytest.raises(ValueError, match=r"range \[0, 255\]"):
            self.attack(model_fn=self.model, x=x, eps=0.1, nb_iter=1, eps_iter=0.05, norm=np.inf,
                        clip_min=-1.0, clip_max=1.0)

    def test_eps_iter_equals_zero(self):
        """API difference: cleverhans returns the input for eps_iter = 0; we refuse α = 0."""
        with pytest.raises(ValueError, match="α must be positive"):
            self.attack(model_fn=self.model, x=self.x, eps=0.5, norm=np.inf, nb_iter=10, eps_iter=0)

    def _inputs_outside_the_box_are_refused(self):
        # cleverhans' test passes x in [0, 1) with clip [0.5, 0.7] (and ε = 1, above that range)
        with pytest.raises(ValueError, match=r"\[0, 255\]"):
            self.attack(model_fn=self.model, x=self.normalized_x, eps=1.0, eps_iter=0.05, norm=np.inf,
                        clip_min=0.5, clip_max=0.7, nb_iter=5, sanity_checks=False)

    def test_attack_strength(self):
        """API difference: inputs outside [clip_min, clip_max] are refused, not clipped. Their
        assertion, on the inputs clipped into the box (their first step does that) with the box
        as the ε-ball (their ε = 1 covers it) and the labels of the unclipped inputs (theirs):
        and element for element what their PGD does from there without a random start."""
        self._inputs_outside_the_box_are_refused()
        x_adv = self._from_the_box(nb_iter=5)
        adv_acc = self.model(x_adv).argmax(1).eq(self.model(self.normalized_x).argmax(1)).float().mean()
        self.assertLess(adv_acc, 0.1)

    def test_multiple_initial_random_step(self):
        """As test_attack_strength; our BIM has no random start, so their ten restarts would be
        ten identical runs: one run, their assertion (under 50 % never fooled)."""
        self._inputs_outside_the_box_are_refused()
        ori = self.model(self.normalized_x).argmax(1)
        x_adv = self._from_the_box(nb_iter=2)
        self.assertLess(ori.eq(self.model(x_adv).argmax(1)).float().mean(), 0.5)

    def _from_the_box(self, nb_iter):
        y = self.model(self.normalized_x).argmax(1)
        x_adv = self.attack(model_fn=self.model, x=self.normalized_x.clamp(0.5, 0.7), eps=0.7 - 0.5, eps_iter=0.05,
                            norm=np.inf, clip_min=0.5, clip_max=0.7, nb_iter=nb_iter, y=y)
        theirs = projected_gradient_descent(self.model, self.normalized_x, 1.0, 0.05, nb_iter, np.inf, clip_min=0.5,
                                            clip_max=0.7, rand_init=False, sanity_checks=False)
        assert float((x_adv - theirs.detach()).abs().max()) <= TOL
        return x_adv


# ------------------------------------------------------- 2b. foolbox's L∞ attack assertions
def _foolbox_model(preprocessing):
    """foolbox's PyTorch test fixture: the mean model, bounds (0, 1), 8 bundled ImageNet samples,
    labels = its own predictions (so clean accuracy is 1). Their attack tests use the plain and
    the channel-flipped variant; the mean/std one is not attackable in [0, 1] and is not used there."""
    fmodel = fb.PyTorchModel(MeanModel().eval(), bounds=(0, 1), preprocessing=preprocessing)
    x, _ = fb.utils.samples(fmodel, dataset="imagenet", batchsize=8)
    return fmodel, x, fmodel(x).argmax(-1)


PREPROCESSING = {"plain": None, "flip": dict(flip_axis=-3)}


def _ours_for(fmodel):
    """Our side of foolbox's model: its preprocessing inside, taking [0, 255]."""
    return On255(lambda v: fmodel(v))


@pytest.fixture(scope="module", params=list(PREPROCESSING))
def foolbox_data(request):
    return _foolbox_model(PREPROCESSING[request.param])


# (our attack, their epsilon on [0, 1], ours in levels); foolbox's list: FGSM Linf(100),
# LinfBasicIterativeAttack(abs_stepsize=0.2) Linf(1), PGD() Linf(1) (rel. step 0.01/0.3, 40 steps)
L_INF = {
    "fgsm": lambda m, x, y: atk.fgsm(m, x, y, 255),
    "bim": lambda m, x, y: atk.bim(m, x, y, 255, alpha=0.2 * 255, steps=10),
    "pgd": lambda m, x, y: atk.bim(m, x, y, 255, alpha=0.01 / 0.3 * 255, steps=40),
}


@pytest.mark.parametrize("attack", list(L_INF))
def test_foolbox_untargeted_linf(foolbox_data, attack):
    fmodel, x, y = foolbox_data
    acc = fb.accuracy(fmodel, x, y)
    assert acc > 0
    advs = L_INF[attack](_ours_for(fmodel), x * 255, y) / 255
    assert fb.accuracy(fmodel, advs, y) < acc


@pytest.mark.parametrize("attack", ["bim", "pgd"])
def test_foolbox_targeted_linf(foolbox_data, attack):
    fmodel, x, y = foolbox_data
    target = (y + 1) % fmodel(x).shape[-1]
    criterion = fb.TargetedMisclassification(target)
    before = criterion(x, fmodel(x))
    assert not before.all()
    alpha, steps = (0.2 * 255, 10) if attack == "bim" else (0.01 / 0.3 * 255, 40)
    advs = atk.ill(_ours_for(fmodel), x * 255, 255, alpha=alpha, steps=steps, target=target) / 255
    assert criterion(advs, fmodel(advs)).sum().item() > before.sum().item()


def test_foolbox_fgsm_eps_100_is_refused_and_is_the_eps_255_attack(foolbox_data):
    """API difference: foolbox's FGSM test uses ε = 100 on [0, 1] (25,500 levels); we refuse
    ε > 255, and show that ε = 255 is exactly the attack foolbox runs at ε = 100."""
    fmodel, x, y = foolbox_data
    ours = _ours_for(fmodel)
    with pytest.raises(ValueError, match="whole pixel range"):
        atk.fgsm(ours, x * 255, y, 100 * 255)
    _, adv, _ = fb.attacks.FGSM()(fmodel, x, y, epsilons=[100.0])
    assert _max_diff(atk.fgsm(ours, x * 255, y, 255), adv[0]) <= TOL
