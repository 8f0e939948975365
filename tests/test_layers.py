import pickle

import pytest
import torch
from torch import nn

from playground.architecture import trace
from playground.hooks import temporary_hooks
from playground.layers import (
    Trunk,
    conv_layers,
    course_names,
    cut_at,
    cut_points,
    frozen_copy,
    layer_label,
    resolve,
    without_inplace,
)
from playground.models import BASELINES, MODELS, build

VARIANTS = [
    pytest.param(name, options, id=f"{name}{''.join(f'-{k}={v}' for k, v in options.items())}")
    for name, options in [
        *((name, {}) for name in MODELS),
        ("alexnet", {"batch_norm": True}),
        ("alexnet_compact", {"drop_conv": 3}),
    ]
]


def _model(name: str, **options) -> nn.Module:
    return build(name, num_classes=10, generator=torch.Generator().manual_seed(0), **options).eval()


def _photo() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # (B, C, H, W)


@pytest.mark.parametrize("name, options", VARIANTS)
def test_the_cut_gives_the_hooked_activation_of_the_whole_network_at_every_layer(name, options):
    model, x = _model(name, **options), _photo()
    seen = {}

    def keep(layer):
        def hook(module, inputs, output):
            seen[layer] = output.detach().clone()  # now: the in-place ReLU after a convolution overwrites it

        return hook

    points = cut_points(model)
    with temporary_hooks(model, {layer: keep(layer) for layer in points}), torch.no_grad():
        logits = model(x)
    assert points[0] == "features.0" and points[-1] == f"classifier.{len(model.classifier) - 1}"
    with torch.no_grad():
        for layer in points:
            assert torch.equal(cut_at(model, layer)(x), seen[layer]), layer
        assert torch.equal(cut_at(model, points[-1])(x), logits)


@pytest.mark.parametrize("name, options", VARIANTS)
def test_the_cut_keeps_the_layer_names_so_traces_and_hooks_stay_the_same(name, options):
    model = _model(name, **options)
    last_conv = conv_layers(model)[-1]
    cut = cut_at(model, last_conv)
    modules = dict(model.named_modules())
    leaves = [(key, module) for key, module in cut.named_modules() if not any(module.children())]
    assert leaves and all(module is modules[key] for key, module in leaves)  # the model's own layers, not copies
    keys = list(model.state_dict())
    assert list(cut.state_dict()) == keys[: len(cut.state_dict())]
    names = [row.name for row in trace(model, (3, 64, 64))]
    assert [row.name for row in trace(cut, (3, 64, 64))] == names[: names.index(last_conv) + 1]
    assert trace(cut, (3, 64, 64))[-1].name == last_conv


@pytest.mark.parametrize("name", [*MODELS, *BASELINES])
def test_conv_layers_are_the_2d_convolutions_in_order(name):
    model = build(name, num_classes=10)
    expected = [key for key, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    assert conv_layers(model) == expected
    if name in MODELS:
        assert expected[0] == "features.0" and len(expected) == 5
    else:
        assert expected == []


def test_a_whole_part_and_a_baseline_cut_too():
    model, x = _model("alexnet_compact"), _photo()
    features = cut_at(model, "features")
    assert isinstance(features, Trunk) and list(dict(features.named_children())) == ["features"]
    with torch.no_grad():
        assert torch.equal(features(x), model.features(x))
        unpickled = pickle.loads(pickle.dumps(features))  # what a Units worker receives
        assert isinstance(unpickled, Trunk) and torch.equal(unpickled(x), features(x))
        assert torch.equal(cut_at(unpickled, "features.3")(x), cut_at(model, "features.3")(x))
    mlp = build("mlp", num_classes=10, input_shape=(3, 64, 64)).eval()
    assert cut_points(mlp) == ["0", "1", "2", "3", "4"]
    with torch.no_grad():
        assert torch.equal(cut_at(mlp, "4")(x), mlp(x))


@pytest.mark.parametrize("layer", ["features.99", "nonsense", "", "features.x", "classifier.6.weight", "avgpool.0"])
def test_an_unknown_layer_is_a_sentence(layer):
    with pytest.raises(
        ValueError, match=r"is not one of this model's layers; choose one from features.0 to classifier.6"
    ):
        cut_at(_model("alexnet_compact"), layer)


def test_a_frozen_copy_is_private_and_the_model_untouched():
    model = build("alexnet_compact", num_classes=10, generator=torch.Generator().manual_seed(0))  # training mode
    twin = frozen_copy(model)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert not twin.training and not any(m.training for m in twin.modules())
    assert not any(p.requires_grad for p in twin.parameters())
    assert not {p.data_ptr() for p in twin.parameters()} & {p.data_ptr() for p in model.parameters()}
    with torch.no_grad():
        assert torch.equal(twin(_photo()), model.eval()(_photo()))


@pytest.mark.parametrize("name", [*MODELS, "mlp"])  # the linear baseline has nothing in place
def test_without_inplace_turns_every_flag_off_and_leaves_the_original_alone(name):
    model = build(name, num_classes=10)
    flagged = [m for m in model.modules() if hasattr(m, "inplace")]
    assert any(m.inplace for m in flagged)  # torchvision's ReLU(inplace=True)
    twin = without_inplace(frozen_copy(model))
    assert not any(getattr(m, "inplace", False) for m in twin.modules())
    assert all(m.inplace for m in flagged if isinstance(m, nn.ReLU))  # the original keeps its in-place ReLUs
    assert without_inplace(model) is model and not any(getattr(m, "inplace", False) for m in model.modules())


# --- the course's names (issue #19.4) -------------------------------------------------------------------

# What the course calls each layer of torchvision's AlexNet, in torch's order (Krizhevsky et al. and Caffe:
# conv1 … conv5, fc6 … fc8; the ReLU, LRN, batch norm and dropout after a layer carry its number; the
# max pools are counted on their own).
ALEXNET_NAMES = {
    "features.0": "conv1", "features.1": "relu1", "features.2": "pool1",
    "features.3": "conv2", "features.4": "relu2", "features.5": "pool2",
    "features.6": "conv3", "features.7": "relu3", "features.8": "conv4", "features.9": "relu4",
    "features.10": "conv5", "features.11": "relu5", "features.12": "pool3",
    "classifier.0": "drop6", "classifier.1": "fc6", "classifier.2": "relu6",
    "classifier.3": "drop7", "classifier.4": "fc7", "classifier.5": "relu7", "classifier.6": "fc8",
}  # fmt: skip
PAPER_NAMES = {  # LRN after the first two ReLUs
    "features.0": "conv1", "features.1": "relu1", "features.2": "norm1", "features.3": "pool1",
    "features.4": "conv2", "features.5": "relu2", "features.6": "norm2", "features.7": "pool2",
    "features.8": "conv3", "features.9": "relu3", "features.10": "conv4", "features.11": "relu4",
    "features.12": "conv5", "features.13": "relu5", "features.14": "pool3",
}  # fmt: skip
LECTURE_HEAD = {  # dropout after each hidden layer's ReLU
    "classifier.0": "fc6", "classifier.1": "relu6", "classifier.2": "drop6",
    "classifier.3": "fc7", "classifier.4": "relu7", "classifier.5": "drop7", "classifier.6": "fc8",
}  # fmt: skip
TORCHVISION_HEAD = {k: v for k, v in ALEXNET_NAMES.items() if k.startswith("classifier")}


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("alexnet", {}, ALEXNET_NAMES),
        ("alexnet2012", {}, PAPER_NAMES | TORCHVISION_HEAD),
        ("alexnet_compact", {}, {k: v for k, v in ALEXNET_NAMES.items() if k.startswith("features")} | LECTURE_HEAD),
        (
            "alexnet",
            {"batch_norm": True, "activation": "tanh"},
            {
                "features.0": "conv1", "features.1": "bn1", "features.2": "tanh1", "features.3": "pool1",
                "features.4": "conv2", "features.5": "bn2", "features.6": "tanh2", "features.7": "pool2",
                "features.8": "conv3", "features.9": "bn3", "features.10": "tanh3",
                "features.11": "conv4", "features.12": "bn4", "features.13": "tanh4",
                "features.14": "conv5", "features.15": "bn5", "features.16": "tanh5", "features.17": "pool3",
                **{k: v.replace("relu", "tanh") for k, v in TORCHVISION_HEAD.items()},
            },
        ),
        (  # without conv2 its pooling stays: two pools in a row; the convolutions are counted as they come
            "alexnet_compact",
            {"drop_conv": 2},
            {
                "features.0": "conv1", "features.1": "relu1", "features.2": "pool1", "features.3": "pool2",
                "features.4": "conv2", "features.5": "relu2", "features.6": "conv3", "features.7": "relu3",
                "features.8": "conv4", "features.9": "relu4", "features.10": "pool3",
                **LECTURE_HEAD,
            },
        ),
    ],
)  # fmt: skip
def test_every_layer_has_its_course_name(name, options, expected):
    model = _model(name, **options)
    assert course_names(model) == expected  # avgpool has none: the course has no such layer
    assert layer_label(model, "features.0") == "conv1 · features.0"
    assert layer_label(model, "avgpool") == "avgpool"
    for layer, course in expected.items():
        assert resolve(model, course) == layer and resolve(model, layer) == layer


@pytest.mark.parametrize("name, options", VARIANTS)
def test_course_names_follow_torchs_module_list(name, options):
    model = _model(name, **options)
    names = course_names(model)
    modules = [(key, module) for key, module in model.named_modules() if not any(module.children())]
    convs = [key for key, module in modules if isinstance(module, nn.Conv2d)]
    linears = [key for key, module in modules if isinstance(module, nn.Linear)]
    pools = [key for key, module in modules if isinstance(module, nn.MaxPool2d)]
    assert [names[key] for key in convs] == [f"conv{n}" for n in range(1, len(convs) + 1)]
    assert [names[key] for key in linears] == ["fc6", "fc7", "fc8"]
    assert [names[key] for key in pools] == [f"pool{n}" for n in range(1, len(pools) + 1)]
    assert len(set(names.values())) == len(names)  # one name, one layer: resolve can go back
    assert set(names) <= {key for key, _ in modules}
    assert list(names) == [key for key, _ in modules if key in names]  # in the order the layers run


def test_the_baselines_count_their_own_layers():
    mlp = build("mlp", num_classes=10, input_shape=(3, 64, 64))
    assert course_names(mlp) == {"0": "flatten", "1": "fc1", "2": "relu1", "3": "drop1", "4": "fc2"}
    assert course_names(build("linear", num_classes=10, input_shape=(3, 64, 64))) == {"0": "flatten", "1": "fc1"}


def test_resolve_reads_course_names_as_typed_and_refuses_others_with_a_sentence():
    model = _model("alexnet_compact")
    assert resolve(model, " Conv5 ") == "features.10" and resolve(model, "FC7") == "classifier.3"
    assert resolve(model, "avgpool") == "avgpool" and resolve(model, "features") == "features"
    for wrong in ("conv6", "features.99", "", "classifier.6.weight"):
        with pytest.raises(ValueError, match=r"is not one of this model's layers; choose one of conv1 … fc8"):
            resolve(model, wrong)
