import pytest
import torch

from playground import models
from playground.models import MODELS, build


def _conv(out_c, in_c, k, groups=1):
    return out_c * (in_c // groups) * k * k + out_c


def _linear(i, o):
    return i * o + o


# Counted by hand from each architecture's description, independently of the code that builds it.
HAND_COUNTS = {
    "alexnet": _conv(64, 3, 11)
    + _conv(192, 64, 5)
    + _conv(384, 192, 3)
    + _conv(256, 384, 3)
    + _conv(256, 256, 3)
    + _linear(9216, 4096)
    + _linear(4096, 4096)
    + _linear(4096, 1000),
    "alexnet2012": _conv(96, 3, 11)
    + _conv(256, 96, 5, 2)
    + _conv(384, 256, 3)
    + _conv(384, 384, 3, 2)
    + _conv(256, 384, 3, 2)
    + _linear(9216, 4096)
    + _linear(4096, 4096)
    + _linear(4096, 1000),
    "alexnet_compact": _conv(48, 3, 11)
    + _conv(128, 48, 5)
    + _conv(192, 128, 3)
    + _conv(192, 192, 3)
    + _conv(128, 192, 3)
    + _linear(4608, 2048)
    + _linear(2048, 2048)
    + _linear(2048, 1000),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_counts_match_torch_and_the_hand_count(name):
    model = build(name)
    assert sum(p.numel() for p in model.parameters()) == HAND_COUNTS[name]


def test_known_totals():
    assert HAND_COUNTS["alexnet"] == 61_100_840  # torchvision's documented figure
    assert HAND_COUNTS["alexnet"] == models.IMAGENET_WEIGHTS.meta["num_params"]
    assert 60_000_000 < HAND_COUNTS["alexnet2012"] < 61_000_000  # "60 million parameters"


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_classifies_224_images_with_torchvision_layer_names(name):
    model = build(name, num_classes=10).eval()
    assert model(torch.randn(2, 3, 224, 224)).shape == (2, 10)
    names = dict(model.named_modules())
    assert isinstance(names["features.0"], torch.nn.Conv2d) and names["features.0"].kernel_size == (11, 11)
    assert isinstance(names["classifier.6"], torch.nn.Linear) and names["classifier.6"].out_features == 10


def test_alexnet2012_has_the_papers_pieces():
    model = build("alexnet2012")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    lrns = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.LocalResponseNorm)]
    assert lrns == [2, 6]  # after conv1 and conv2 (and their ReLUs)
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping pooling
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.classifier) == 2


def test_lrn_follows_the_papers_formula():
    lrn = build("alexnet2012").features[2]
    a = torch.rand(1, 96, 4, 4) * 10
    squares = torch.nn.functional.pad(a**2, (0, 0, 0, 0, 2, 2))  # n = 5 neighbouring channels
    window = sum(squares[:, i : i + 96] for i in range(5))
    expected = a / (2 + 1e-4 * window) ** 0.75  # k = 2, alpha = 1e-4, beta = 0.75
    torch.testing.assert_close(lrn(a), expected, rtol=1e-5, atol=1e-6)


def test_unknown_names_and_bad_class_counts():
    with pytest.raises(ValueError, match="Unknown model 'vgg'"):
        build("vgg")
    with pytest.raises(ValueError, match="num_classes"):
        build("alexnet", num_classes=0)
