"""The EOT channel's own tables (physical.presets.CHANNEL_TABLES): "broad" is a mixture of the
simulate presets and one past them, `craft --channel broad` takes it, simulate does not."""
import numpy as np
import pytest
import torch

from physical import attacks as atk
from physical import robust, simulate
from physical.channel import Channel, resolve_tables
from physical.errors import PhysicalError
from physical.presets import BRIGHT, CHANNEL_TABLES, PRESETS

from test_eot import SIZE, Linear, images


def test_broad_is_the_presets_and_bright():
    tables = resolve_tables("broad")
    assert tables == [PRESETS["mild"], PRESETS["typical"], PRESETS["harsh"], BRIGHT]
    assert [t is PRESETS[n] for t, n in zip(tables, ("mild", "typical", "harsh"))] == [True] * 3
    assert resolve_tables("typical") == [PRESETS["typical"]]
    # every member has the keys simulate draws and the channel's registration keys
    assert all(set(t) == set(PRESETS["typical"]) for t in tables)


def test_broad_samples_come_from_every_member():
    theta = Channel("broad", size=32).sample(400, np.random.default_rng(0))
    gamma = theta.gamma.numpy()
    assert gamma.min() >= 0.85 - 1e-6 and gamma.max() <= 1.5 + 1e-6
    share = [np.mean(gamma < 1.0), np.mean(gamma > 1.2)]    # only bright prints γ < 1, only harsh > 1.2
    assert 0.15 < share[0] < 0.35 and 0.15 < share[1] < 0.35, share
    # a single table draws as before: no member pick spent from the generator
    a = Channel("typical", size=32).sample(5, np.random.default_rng(3))
    b = Channel(dict(PRESETS["typical"]), size=32).sample(5, np.random.default_rng(3))
    assert torch.equal(a.gamma, b.gamma) and torch.equal(a.z, b.z)


def test_broad_is_for_craft_not_simulate():
    ch = robust.channel_for("broad")
    d = ch.describe()
    assert d["table"] == "broad" and len(d["ranges"]) == len(CHANNEL_TABLES["broad"])
    assert d["ranges"][3]["gamma"] == list(BRIGHT["gamma"])
    assert "broad" not in simulate.PRESETS
    with pytest.raises(PhysicalError, match="unknown preset 'broad'"):
        simulate.draw_camera(np.random.default_rng(0), "broad")
    with pytest.raises(PhysicalError, match=r"unknown --channel 'glossy': name a preset \(mild, typical, harsh, broad, phones, phone\)"):
        robust.channel_for("glossy")


def test_eot_through_broad_stays_in_the_eps_ball():
    model, x = Linear(), images()
    y = model(x).argmax(1)
    adv = atk.eot(model, x, y, 4, Channel("broad", size=SIZE), samples=4, steps=3, seeds=1)
    assert (adv - x).abs().max() <= 4 + 1e-4 and not torch.equal(adv, x)
