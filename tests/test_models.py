"""The default model loads offline, preprocesses like its training did, and sees real photos right."""
import numpy as np
import pytest
import torch

from physical.data import demo_items, load_image
from physical.errors import PhysicalError
from physical.models import imagenet_classes, load_model, predict


def test_default_model_classifies_real_photos(default_model):
    items = demo_items()
    images = np.stack([load_image(it.path, 224, 256) for it in items])
    top5, prob5 = predict(default_model, images)
    labels = torch.tensor([it.label for it in items])
    top1 = (top5[:, 0] == labels).float().mean().item()
    in_top5 = (top5 == labels[:, None]).any(dim=1)
    # coffee → espresso etc. A wrong mean/std or the non-TF architecture variant drops these sharply.
    assert in_top5.all(), [it.id for it, ok in zip(items, in_top5) if not ok]
    assert top1 >= 5 / 7
    assert default_model.class_names[int(top5[0, 0])] == "espresso"
    assert prob5[0, 0] > 0.8


def test_wrapper_is_eval_frozen_and_owns_preprocessing(default_model):
    default_model.train()
    assert not default_model.training and not default_model.net.training
    assert not any(p.requires_grad for p in default_model.parameters())
    assert default_model.preprocessing["mean"] == [0.5, 0.5, 0.5]
    x = torch.full((1, 3, 224, 224), 127.5)
    # mean = std = 0.5 on [0,1] maps 127.5 to 0: same logits as a zero tensor straight into the net.
    with torch.no_grad():
        assert torch.allclose(default_model(x), default_model.net(torch.zeros(1, 3, 224, 224)), atol=1e-5)
        small = default_model(torch.full((1, 3, 64, 64), 127.5))  # resized inside
    assert small.shape == (1, 1000)


def test_imagenet_classes_offline():
    wnids, names = imagenet_classes()
    assert len(wnids) == len(names) == 1000
    assert wnids[0] == "n01440764" and names[0] == "tench"
    assert names[967] == "espresso"


@pytest.mark.parametrize("spec,message", [
    ("resnet-9000", "unknown model spec"),
    ("timm:no_such_model_xyz", "timm has no model"),
    ("torchvision:no_such_model", "torchvision has no model"),
    ("/nonexistent/weights.pth", "does not exist"),
])
def test_bad_model_specs_are_user_errors(spec, message):
    with pytest.raises(PhysicalError, match=message):
        load_model(spec)


def test_torchvision_weights_missing_from_cache_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PhysicalError, match="not in the local cache"):
        load_model("torchvision:resnet18")


def test_timm_weights_missing_from_cache_is_clear(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(PhysicalError, match="local cache"):
        load_model("timm:resnet10t")


def test_local_checkpoint_loads_with_weights_only(tmp_path):
    import timm

    net = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    path = tmp_path / "mine.pth"
    torch.save(net.state_dict(), path)
    model = load_model(str(path), arch="resnet10t")
    assert model.num_classes == 1000 and model.spec == str(path)
    with torch.no_grad():
        s = model.input_size
        x = torch.rand(1, 3, s, s) * 255
        assert torch.allclose(model(x), net.eval()((x / 255 - model.mean / 255) / (model.std / 255)), atol=1e-4)
    with pytest.raises(PhysicalError, match="--arch"):
        load_model(str(path))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")  # not a state dict: a user error, not a TypeError
    with pytest.raises(PhysicalError, match="not a state dict"):
        load_model(str(tmp_path / "tensor.pt"), arch="resnet10t")


class OrderLies(torch.nn.Module):
    """conv and bn registered next to each other, but the bn normalises the input, not the conv's output."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.bn = torch.nn.BatchNorm2d(3)
        with torch.no_grad():
            self.bn.running_mean.fill_(0.3)
            self.bn.running_var.fill_(2.0)
        self.eval()

    def forward(self, x):
        return (self.conv(x) + self.bn(x)).mean(dim=(2, 3))


def test_batchnorm_fold_keeps_the_function_and_is_undone_when_order_lies():
    from physical.models import fold_batchnorm

    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    with torch.no_grad():
        conv[1].running_mean.uniform_(-1, 1)
        conv[1].running_var.uniform_(0.5, 2)
        conv[1].weight.uniform_(0.5, 2)
        conv[1].bias.uniform_(-1, 1)
    x = torch.rand(2, 3, 8, 8)
    expected = conv(x)
    assert fold_batchnorm(conv, 8)
    assert isinstance(conv[1], torch.nn.Identity)
    assert torch.allclose(conv(x), expected, atol=1e-5)

    liar = OrderLies()
    expected = liar(x)
    assert not fold_batchnorm(liar, 8)
    assert isinstance(liar.bn, torch.nn.BatchNorm2d) and torch.allclose(liar(x), expected)


def test_default_model_is_folded(default_model):
    assert default_model.batchnorm_folded
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in default_model.modules())
