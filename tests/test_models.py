import pytest
import torch
import torchvision

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


# --- options: each changes what it says, and the defaults are today's networks --------------------------


# Today's two hand-written variants, copied verbatim from the code before options existed: the defaults must
# build exactly these (torchvision's own builder is the reference for "alexnet").
def _today_alexnet2012(num_classes):
    def lrn():
        return torch.nn.LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)

    nn = torch.nn
    features = nn.Sequential(
        nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2), nn.ReLU(inplace=True), lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )  # fmt: skip
    classifier = nn.Sequential(
        nn.Dropout(p=0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(p=0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, num_classes),
    )  # fmt: skip
    return _today_layout(features, classifier)


def _today_alexnet_compact(num_classes):
    nn = torch.nn
    features = nn.Sequential(
        nn.Conv2d(3, 48, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(48, 128, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(128, 192, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(192, 192, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(192, 128, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )  # fmt: skip
    classifier = nn.Sequential(
        nn.Linear(128 * 6 * 6, 2048), nn.ReLU(inplace=True), nn.Dropout(p=0.5),
        nn.Linear(2048, 2048), nn.ReLU(inplace=True), nn.Dropout(p=0.5), nn.Linear(2048, num_classes),
    )  # fmt: skip
    return _today_layout(features, classifier)


def _today_layout(features, classifier):
    model = torch.nn.Module()
    model.features, model.avgpool, model.classifier = features, torch.nn.AdaptiveAvgPool2d((6, 6)), classifier
    model.forward = lambda x: classifier(torch.flatten(model.avgpool(features(x)), 1))
    return model


TODAY = {
    "alexnet": lambda k: torchvision.models.alexnet(weights=None, num_classes=k),
    "alexnet2012": _today_alexnet2012,
    "alexnet_compact": _today_alexnet_compact,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_defaults_build_exactly_todays_networks(name):
    ours, today = build(name, num_classes=7), TODAY[name](7)
    for part in ("features", "avgpool", "classifier"):
        assert repr(getattr(ours, part)) == repr(getattr(today, part))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in today.state_dict().items()}
    ours.load_state_dict(today.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), today.eval()(x))
    assert repr(build("alexnet")) == repr(torchvision.models.alexnet())  # down to the class name


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _modules(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("activation, kind", [("tanh", torch.nn.Tanh), ("sigmoid", torch.nn.Sigmoid)])
@pytest.mark.parametrize("name", list(MODELS))
def test_activation_replaces_every_relu(name, activation, kind):
    model = build(name, num_classes=10, activation=activation)
    assert not _modules(model, torch.nn.ReLU) and len(_modules(model, kind)) == 7  # five convs, fc6, fc7
    assert _count(model) == _count(build(name, num_classes=10))  # an activation has no parameters
    assert [type(m) for m in model.features][:2] == [torch.nn.Conv2d, kind]  # in the ReLU's place
    with torch.no_grad():
        response = model.features[:2](torch.randn(1, 3, 64, 64) * 50)
    low = -1.0 if activation == "tanh" else 0.0
    assert response.min() >= low and response.max() <= 1.0 and response.min() < 0.5 * low + 0.01


def test_lrn_on_and_off():
    assert not _modules(build("alexnet2012", lrn=False), torch.nn.LocalResponseNorm)
    assert len(_modules(build("alexnet2012", lrn=None), torch.nn.LocalResponseNorm)) == 2  # the paper's choice
    for name in ("alexnet", "alexnet_compact"):
        assert not _modules(build(name), torch.nn.LocalResponseNorm)
        features = build(name, lrn=True).features
        kinds = [type(m).__name__ for m in features]
        assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
        assert (
            kinds[4:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"] and kinds.count("LocalResponseNorm") == 2
        )
        assert _count(build(name, lrn=True)) == _count(build(name))


@pytest.mark.parametrize("size", [224, 100, 64])
def test_plain_pooling_has_windows_that_do_not_overlap(size):
    torch.manual_seed(0)
    for pooling, window in (("overlapping", 3), ("plain", 2)):
        model = build("alexnet_compact", num_classes=3, pooling=pooling).eval()
        pools = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)]
        assert all(model.features[i].kernel_size == window and model.features[i].stride == 2 for i in pools)
        x, side = torch.randn(1, 3, size, size), None
        for i, layer in enumerate(model.features):
            before = x.shape[-1]
            x = layer(x)
            if i in pools:
                side = (before - window) // 2 + 1  # torch's formula, floor((n - k) / s) + 1
                assert x.shape[-1] == side
        # How many windows pick each input pixel as their maximum: 2 or more only where windows overlap.
        pixels = torch.randn(1, 4, 27, 27, requires_grad=True)
        model.features[pools[0]](pixels).sum().backward()
        assert (pixels.grad.max() > 1) == (pooling == "overlapping")
    assert _count(build("alexnet", pooling="plain")) == HAND_COUNTS["alexnet"]


def test_dropout_probability_and_none():
    model = build("alexnet_compact", num_classes=3, dropout=0.2)
    assert [m.p for m in _modules(model, torch.nn.Dropout)] == [0.2, 0.2]
    model = build("alexnet_compact", num_classes=3, dropout=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), model(x))  # training mode, and nothing random left
    assert build("alexnet", num_classes=3).classifier[6].out_features == 3  # the head keeps its names


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_norm_after_every_conv(name):
    model = build(name, batch_norm=True)
    kinds = [type(m) for m in model.features]
    norms = [i for i, kind in enumerate(kinds) if kind is torch.nn.BatchNorm2d]
    assert len(norms) == 5 and all(kinds[i - 1] is torch.nn.Conv2d for i in norms)
    convs = _modules(model, torch.nn.Conv2d)
    assert [model.features[i].num_features for i in norms] == [c.out_channels for c in convs]
    assert _count(model) == HAND_COUNTS[name] + 2 * sum(c.out_channels for c in convs)  # a scale and a shift each
    assert "features.1.running_mean" in model.state_dict()


def test_drop_conv_removes_one_layer_and_adapts_the_next():
    widths = {"alexnet": [64, 192, 384, 256, 256], "alexnet_compact": [48, 128, 192, 192, 128]}
    hidden = {"alexnet": 4096, "alexnet_compact": 2048}
    kernels = [11, 5, 3, 3, 3]
    for name, out in widths.items():
        for dropped in (2, 3, 4):
            model = build(name, num_classes=10, drop_conv=dropped)
            convs = _modules(model, torch.nn.Conv2d)
            kept = [n for n in range(5) if n != dropped - 1]
            assert [c.out_channels for c in convs] == [out[n] for n in kept]
            assert [c.kernel_size[0] for c in convs] == [kernels[n] for n in kept]
            assert all(b.in_channels == a.out_channels for a, b in zip(convs, convs[1:]))
            assert len(_modules(model, torch.nn.ReLU)) == 6 and len(_modules(model, torch.nn.MaxPool2d)) == 3
            previous = [3] + [out[n] for n in kept][:-1]
            expected = sum(_conv(out[n], i, kernels[n]) for n, i in zip(kept, previous)) + _linear(
                out[4] * 36, hidden[name]
            ) + _linear(hidden[name], hidden[name]) + _linear(hidden[name], 10)  # fmt: skip
            assert _count(model) == expected
            assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)
            assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, out[4], 6, 6)  # the maps keep their size
    paper = build("alexnet2012", drop_conv=3)  # conv4 (two groups) now takes conv2's 256 maps
    assert [(c.in_channels, c.groups) for c in _modules(paper, torch.nn.Conv2d)][2] == (256, 2)


def test_the_papers_initialisation():
    before = torch.get_rng_state()
    model = build("alexnet", num_classes=10, init="paper", generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)  # drawn from the private generator only
    convs, linears = _modules(model, torch.nn.Conv2d), _modules(model, torch.nn.Linear)
    for layer in convs + linears:
        assert (
            abs(float(layer.weight.detach().std()) - 0.01) < 0.001 and abs(float(layer.weight.detach().mean())) < 0.001
        )
    assert [float(c.bias.detach().unique()) for c in convs] == [
        0.0,
        1.0,
        0.0,
        1.0,
        1.0,
    ]  # conv2, conv4, conv5 start at 1
    assert [float(m.bias.detach().unique()) for m in linears] == [1.0, 1.0, 0.0]  # fc6, fc7; the output layer at 0
    again = build("alexnet", num_classes=10, init="paper", generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.features[0].weight, model.features[0].weight)
    # A removed conv leaves the others their own numbers: without conv4, conv5 still starts at 1.
    dropped = build("alexnet_compact", init="paper", drop_conv=4)
    assert [float(c.bias.detach().unique()) for c in _modules(dropped, torch.nn.Conv2d)] == [0.0, 1.0, 0.0, 1.0]
    default = build("alexnet", num_classes=10, generator=torch.Generator().manual_seed(0))
    assert float(default.features[3].bias.abs().max()) < 1 / (64 * 25) ** 0.5 + 1e-6  # torch's ±1/√fan_in


def test_bad_options_get_a_sentence():
    with pytest.raises(ValueError, match="Unknown model option activaton"):
        build("alexnet", activaton="tanh")
    with pytest.raises(ValueError, match="activation is one of relu, tanh, sigmoid, not 'gelu'"):
        build("alexnet", activation="gelu")
    with pytest.raises(ValueError, match="drop_conv removes conv 2, 3 or 4"):
        build("alexnet", drop_conv=1)
    with pytest.raises(ValueError, match="dropout is a probability"):
        build("alexnet", dropout=1.0)
    with pytest.raises(ValueError, match="baseline has no convolutional layers"):
        build("mlp", num_classes=3, batch_norm=True)
    assert models.Options(activation="tanh", lrn=False).changed() == {"activation": "tanh", "lrn": False}


@pytest.mark.parametrize("options", [{"batch_norm": True}, {"drop_conv": 3, "lrn": True}, {"pooling": "plain"}])
def test_the_layer_table_counts_every_option_as_torch_does(options):
    from playground.architecture import totals, trace

    model = build("alexnet_compact", num_classes=5, **options)
    assert totals(trace(model))["params"] == _count(model)
