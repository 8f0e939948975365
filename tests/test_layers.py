import pickle

import pytest
import torch
from torch import nn

from playground.architecture import trace
from playground.hooks import temporary_hooks
from playground.layers import Trunk, conv_layers, cut_at, cut_points, frozen_copy, without_inplace
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
