"""Attacks and the model wrapper refuse inputs outside [0, 255] (a ValueError naming the range),
refuse ε > 255 with the reason, and the wrapper warns when asked for training mode."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from physical import attacks as atk
from physical.models import Classifier


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 5))
        self.requires_grad_(False)

    def forward(self, x):
        return self.net(x / 255.0)


def tiny_classifier() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    return Classifier(net, spec="tiny", arch="tiny", input_size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                      crop_pct=1.0, interpolation="bilinear", weights_sha256="0" * 64,
                      class_names=[f"c{i}" for i in range(5)])


MODEL = Tiny()
Y = torch.tensor([1, 3])


def _calls(x, eps=4.0):
    """Every public attack entry point, on images x."""
    g = torch.Generator().manual_seed(0)
    return {
        "fgsm": lambda: atk.fgsm(MODEL, x, Y, eps),
        "fgsm_sweep": lambda: atk.fgsm_sweep(MODEL, x, Y, [eps, 2 * eps]),
        "bim": lambda: atk.bim(MODEL, x, Y, eps),
        "ill": lambda: atk.ill(MODEL, x, eps),
        "sign_noise": lambda: atk.sign_noise(x, eps, g),
        "gaussian_noise": lambda: atk.gaussian_noise(x, eps, g),
        "clip_eps": lambda: atk.clip_eps(x + 3, x, eps),
        "run_attack": lambda: atk.run_attack("bim", MODEL, x, Y, [eps]),
    }


def _images():
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 255


NAMES = list(_calls(_images()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.5, 255.5, float("nan")])
def test_attacks_refuse_inputs_outside_0_255(name, bad):
    x = _images()
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match=r"range \[0, 255\]"):
        _calls(x)[name]()


@pytest.mark.parametrize("name", NAMES)
def test_attacks_refuse_integer_tensors(name):
    with pytest.raises(ValueError, match=r"float tensor of images in \[0, 255\]"):
        _calls(_images().to(torch.uint8))[name]()


@pytest.mark.parametrize("name", NAMES)
def test_attacks_accept_the_range_ends(name):
    x = _images()
    x[0, 0, 0, 0], x[1, 1, 1, 1] = 0.0, 255.0
    out = _calls(x)[name]()
    out = out if isinstance(out, torch.Tensor) else out[0]
    assert out.min() >= 0 and out.max() <= 255


def test_normalised_images_fail_loudly():
    x = (_images() / 255 - 0.45) / 0.22     # what a user passes after transforms.Normalize
    with pytest.raises(ValueError, match=r"must lie in the range \[0, 255\].*got values in \[-"):
        atk.fgsm(MODEL, x, Y, 8)


@pytest.mark.parametrize("eps", [255.5, 400, float("inf")])
def test_eps_above_the_pixel_range_is_refused_with_the_reason(eps):
    with pytest.raises(ValueError, match="at most the whole pixel range"):
        atk.bim(MODEL, _images(), Y, eps)


def test_eps_255_is_the_whole_range():
    x = _images()
    g = atk.input_gradient(MODEL, x, Y)
    expected = torch.where(g > 0, 255.0, torch.where(g < 0, 0.0, x))
    assert torch.equal(atk.fgsm(MODEL, x, Y, 255), expected)


def test_classifier_checks_the_range():
    model = tiny_classifier()
    x = torch.full((1, 3, 8, 8), 128.0)
    assert model(x).shape == (1, 5)
    with pytest.raises(ValueError, match=r"range \[0, 255\]"):
        model(x - 200)
    with pytest.raises(ValueError, match=r"range \[0, 255\]"):
        model(x / 128 * 300)
    with pytest.raises(ValueError, match="N×3×H×W"):
        model(x[0])


def test_classifier_warns_when_put_in_training_mode_and_stays_in_eval():
    model = tiny_classifier()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    before = model(x)
    with pytest.warns(RuntimeWarning, match="stays in eval mode"):
        model.train()
    assert not model.training and not any(m.training for m in model.modules())
    assert torch.equal(model(x), before)        # dropout and batch statistics stay off
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.eval()                            # asking for eval mode is silent
        model.train(False)
    model.net.train()                           # behind the wrapper's back
    with pytest.warns(RuntimeWarning, match="training mode"):
        model(x)
