"""`physical lab`: Szegedy's L-BFGS and transfer table, Goodfellow's linearity, units vs directions."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from physical.cli import main
from physical.errors import PhysicalError
from physical.lab import digits, directions, lbfgs, linearity, transfer
from physical.lab.digits import Digits


def linear_model(weight, bias) -> nn.Module:
    model = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return model.eval().requires_grad_(False)


@pytest.fixture
def two_class():
    """Class 1 − class 0 logit = w·x − 0.5·Σw with a fixed random w: the boundary is a hyperplane,
    the minimal L2 distance to it is |margin| / ‖w‖ (when the box does not bind)."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal(16)
    model = linear_model(np.stack([np.zeros(16), w]), np.array([0.0, -0.5 * w.sum()]))
    return model, w


def test_lbfgs_minimal_perturbation_matches_the_hyperplane_distance(two_class):
    model, w = two_class
    rng = np.random.default_rng(0)
    x = (0.5 + 0.15 * rng.uniform(-1, 1, size=(6, 16))).astype(np.float32)
    y = lbfgs.predict(model, x)
    target = 1 - y
    res = lbfgs.search(model, x, target)
    assert res.success.all()
    assert (lbfgs.predict(model, res.x_adv) == target).all()
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0
    l2 = np.linalg.norm(res.x_adv - x, axis=1)
    margin = np.abs(x @ w - 0.5 * w.sum()) / np.linalg.norm(w)
    assert np.all(l2 >= margin * (1 - 1e-4))      # nothing crosses a hyperplane more cheaply
    assert np.all(l2 <= margin * 1.05 + 1e-4)     # and L-BFGS + the c search get within 5 % of it
    # Szegedy's distortion is the RMS per pixel
    assert np.allclose(res.distortion, l2 / np.sqrt(16), atol=1e-6)


def test_lbfgs_respects_the_box_and_beats_fgsm():
    rng = np.random.default_rng(1)
    model = linear_model(rng.standard_normal((3, 25)) * 2, rng.standard_normal(3))
    # Mostly black images with a few bright pixels: the box binds on most coordinates.
    x = np.where(rng.uniform(size=(8, 25)) < 0.7, 0.0, 1.0).astype(np.float32)
    y = lbfgs.predict(model, x)
    target = (y + 1 + rng.integers(0, 2, size=8)) % 3
    res = lbfgs.search(model, x, target)
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0
    reached = lbfgs.predict(model, res.x_adv) == target
    assert np.array_equal(reached, res.success) and res.success.any()
    eps, x_fgsm = lbfgs.fgsm_targeted_min(model, x, target, np.linspace(0.002, 1.0, 500))
    both = res.success & ~np.isnan(eps)
    assert both.sum() >= 3
    assert (lbfgs.predict(model, x_fgsm[both]) == target[both]).all()
    d_fgsm = lbfgs.distortion(x_fgsm, x)
    assert np.all(res.distortion[both] <= d_fgsm[both] + 1e-6)


def test_minimise_rejects_bad_arguments(two_class):
    model, _ = two_class
    with pytest.raises(ValueError):
        lbfgs.minimise(model, np.zeros(16), np.array([1]), 1.0)
    with pytest.raises(ValueError):
        lbfgs.minimise(model, np.zeros((1, 16)), np.array([1]), -1.0)


def test_noise_has_exactly_the_stated_distortion():
    rng = np.random.default_rng(0)
    x = np.where(rng.uniform(size=(20, 64)) < 0.6, 0.0, rng.uniform(size=(20, 64))).astype(np.float32)
    for d in (0.05, 0.1, 0.3):
        xn, sigma = transfer.exact_distortion_noise(x, d, rng)
        assert xn.min() >= 0 and xn.max() <= 1
        assert np.allclose(lbfgs.distortion(xn, x), d, atol=1e-5)
        assert np.all(sigma > d)    # clipping at 0 and 1 eats part of plain σ noise
    with pytest.raises(ValueError, match="not reachable"):
        transfer.exact_distortion_noise(x, 0.9, rng)


def tiny_digits(n_train=300, n_test=120) -> Digits:
    full = digits.load_sklearn_digits(seed=0)
    return Digits("digits", full.x_train[:n_train], full.y_train[:n_train], full.x_test[:n_test],
                  full.y_test[:n_test], full.shape, "test subset")


def test_transfer_diagonal_is_each_models_own_success_and_noise_rows_are_stated():
    data = tiny_digits()
    res = transfer.run(data, seed=0, points=6, steps=60, bisections=3)
    t = res["transfer"]
    models, ex = res["_models"], res["_examples"]
    n = len(models)
    assert t["columns"] == [m.name for m in models] == t["rows"][:n]
    matrix = np.asarray(t["matrix"])
    assert matrix.shape == (n + len(res["noise"]), n)
    x, y = ex["x"], ex["y"]
    for i, m in enumerate(models):
        # every test point was classified correctly before the attack
        assert (lbfgs.predict(m, x) == y).all()
        own = float((lbfgs.predict(m, ex["adv"][i]) != y).mean())
        assert matrix[i, i] == pytest.approx(own, abs=1e-6)
        assert matrix[i, i] >= res["attacks"][i]["success_rate"] - 1e-12
        for j, other in enumerate(models):
            assert matrix[i, j] == pytest.approx(float((lbfgs.predict(other, ex["adv"][i]) != y).mean()), abs=1e-6)
    stated = [r["stated_distortion"] for r in res["noise"]]
    assert stated[-2:] == [0.1, 0.3]
    matched = stated[:-2] + [r["stated_distortion"] for r in res["noise_skipped"]]
    assert sorted(matched) == sorted(a["avg_min_distortion"] for a in res["attacks"] if a["avg_min_distortion"] is not None)
    for r in res["noise_skipped"]:     # only a distortion clipped noise cannot reach is left out
        assert "not reachable" in r["reason"] and r["stated_distortion"] > 0.3
    for r in res["noise"]:
        assert r["measured_distortion"] == pytest.approx(r["stated_distortion"], abs=1e-5)
    assert t["distortion"][n:] == [r["measured_distortion"] for r in res["noise"]]


def test_fgsm_sweep_and_eps90():
    rng = np.random.default_rng(0)
    model = linear_model(rng.standard_normal((3, 10)), np.zeros(3))
    x = rng.uniform(size=(50, 10)).astype(np.float32)
    y = lbfgs.predict(model, x)
    y[:5] = (y[:5] + 1) % 3                            # 10 % clean error
    sweep = linearity.fgsm_sweep(model, x, y, [0.0, 0.1, 0.5, 1.0])
    assert sweep["error"][0] == pytest.approx(0.1)
    assert sweep["error"] == sorted(sweep["error"])   # linear model: error only grows with ε
    assert sweep["error"][-1] > 0.9
    assert all(0.3 < c <= 1 for c in sweep["wrong_confidence"])
    assert linearity.eps_at([0.0, 0.1, 0.2], [0.5, 0.8, 1.0], 0.9) == pytest.approx(0.15)
    assert linearity.eps_at([0.0, 0.1], [0.5, 0.8], 0.9) is None


class TinyConv(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x / 255.0)).mean(dim=(2, 3)))


def test_directions_top_image_maximises_the_unit():
    model = TinyConv().eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    res = directions.run(model, images, [f"im{i}" for i in range(12)], layer="conv", top=3, units=3, seed=0)
    with torch.no_grad():
        acts = model.conv(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0).mean(dim=(2, 3)).numpy()
    assert res["dim"] == 6 and len(res["units"]) == 3 and len(res["directions"]) == 3
    for u in res["units"]:
        col = acts[:, u["unit"]]
        assert u["top_index"][0] == int(np.argmax(col))
        assert u["top_index"] == list(np.argsort(-col)[:3])
        assert u["score"][0] == pytest.approx(col.max(), abs=1e-5)
    for d in res["directions"]:
        # the score is a projection on a unit vector of the same features
        assert d["score"] == sorted(d["score"], reverse=True)
        assert abs(d["score"][0]) <= np.linalg.norm(acts, axis=1).max() + 1e-6
    # default layer: the input of the last linear layer (post-ReLU pooled features)
    default = directions.run(model, images, [str(i) for i in range(12)], top=2, units=2, seed=1)
    assert default["layer"] == "input of head"
    with torch.no_grad():
        pooled = torch.relu(model.conv(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)).mean(dim=(2, 3)).numpy()
    for u in default["units"]:
        assert u["top_index"][0] == int(np.argmax(pooled[:, u["unit"]]))
    again = directions.run(model, images, [str(i) for i in range(12)], top=2, units=2, seed=1)
    assert [d["top_index"] for d in again["directions"]] == [d["top_index"] for d in default["directions"]]


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(PhysicalError, match=r"no layer 'fc9'.*conv, head"):
        directions.resolve_layer(TinyConv(), "fc9")


def write_idx(path, array, gz=False):
    a = np.asarray(array, dtype=np.uint8)
    data = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) + a.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_mnist_folder_in_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tr, te = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    write_idx(raw / "train-images-idx3-ubyte", tr)
    write_idx(raw / "train-labels-idx1-ubyte", [1, 2, 3, 4, 5])
    write_idx(raw / "t10k-images-idx3-ubyte.gz", te, gz=True)
    write_idx(raw / "t10k-labels-idx1-ubyte", [7, 8, 9])
    d = digits.load_data(f"mnist:{tmp_path}")
    assert d.shape == (28, 28) and d.dim == 784
    assert np.allclose(d.x_test[1], te[1].ravel() / 255.0)
    assert d.y_train.tolist() == [1, 2, 3, 4, 5]


def run_cli(tmp_path, *args):
    return CliRunner().invoke(main, ["--workspace", str(tmp_path), "lab", *args])


def check_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [l for l in result.output.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for f in fragments:
        assert f in lines[0]


def test_cli_bad_data(tmp_path):
    check_one_line_error(run_cli(tmp_path, "szegedy", "--data", "cifar"), "unknown data 'cifar'", "digits", "mnist:DIR")
    empty = tmp_path / "mnist"
    empty.mkdir()
    check_one_line_error(run_cli(tmp_path, "linearity", "--data", f"mnist:{empty}"),
                         "not an MNIST folder", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def test_cli_directions_bad_input(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    check_one_line_error(run_cli(tmp_path, "directions", "--images", str(folder)),
                         "--top 8 needs at least 8 images, found 3")
    check_one_line_error(run_cli(tmp_path, "directions", "--images", str(tmp_path / "missing")), "is not a folder")
    check_one_line_error(run_cli(tmp_path, "directions", "--images", str(folder), "--top", "2",
                                 "--layer", "nope"), "no layer 'nope'", "valid layers:", "net.conv_stem")
    (folder / "notes.txt").write_text("not an image")
    (folder / "<i>broken.png").write_bytes(b"not a png")
    ok = run_cli(tmp_path, "directions", "--images", str(folder), "--top", "2", "--units", "2", "--layer", "net.conv_head")
    assert ok.exit_code == 0, ok.output
    out = tmp_path / "reports" / "lab-directions"
    r = json.loads((out / "results.json").read_text())
    assert r["layer"] == "net.conv_head" and r["images"] == 3 and r["model"]["spec"] == "default"
    assert [s["source"].endswith("<i>broken.png") for s in r["skipped"]] == [True]
    assert len(r["units"]) == 2 and all(len(u["top"]) == 2 for u in r["units"] + r["directions"])
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "&lt;i&gt;broken.png" in html and "<i>broken" not in html     # autoescaped


def test_cli_linearity_writes_results_and_page(tmp_path):
    res = CliRunner().invoke(main, ["--workspace", str(tmp_path), "-q", "lab", "linearity", "--steps", "40",
                                    "--eps-max", "0.3"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "reports" / "lab-linearity"
    r = json.loads((out / "results.json").read_text())
    assert [s["model"] for s in r["sweeps"]][:3] == ["FC10(1e-4)", "FC10(1e-2)", "FC10(1)"]
    for s in r["sweeps"]:
        assert s["eps"][0] == 0 and s["eps"][-1] == pytest.approx(0.3)
        if s["eps_90"] is not None:
            assert s["error"][int(np.ceil(s["eps_90"] / 0.01 - 1e-9))] >= 0.9
    html = (out / "index.html").read_text()
    assert "ε at 90 % error" in html and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html
    assert "&#34;" not in html.split("</style>")[0]    # the stylesheet is not HTML-escaped
    assert (out / "plots" / "curves.png").stat().st_size > 1000
    again = run_cli(tmp_path, "linearity", "--steps", "40")
    check_one_line_error(again, "--force")


def test_cli_szegedy_writes_table_heat_map_and_page(tmp_path):
    out = tmp_path / "sz"
    res = run_cli(tmp_path, "szegedy", "--points", "4", "--steps", "60", "--bisections", "2", "--out", str(out))
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    t = r["transfer"]
    assert len(t["columns"]) == 6 and len(t["rows"]) == len(t["matrix"]) == 6 + len(r["noise"])
    assert r["lbfgs"]["bisections"] == 2 and all(a["lbfgs_calls"] <= 3 for a in r["attacks"])
    assert r["points"]["count"] == 4 and len(r["points"]["targets"]) == 4
    assert all(tg != y for tg, y in zip(r["points"]["targets"],
                                       np.asarray(digits.load_sklearn_digits(0).y_test)[r["points"]["test_indices"]]))
    for m in r["models"]:
        assert 0 <= m["train_error"] <= 1 and 0 <= m["test_error"] <= 1
    html = (out / "index.html").read_text()
    assert "Av. min. distortion" in html and "Paper (MNIST)" in html and html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html
    assert (out / "plots" / "transfer.png").exists() and "_examples" not in r
