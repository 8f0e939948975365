import pytest
import torch

from playground.architecture import params_by_layer, totals, trace
from playground.models import MODELS, build

# The lecture's shape trace of the compact AlexNet (seeds), layer by layer.
LECTURE_TRACE = [
    ("Conv2d", (48, 55, 55)),
    ("ReLU", (48, 55, 55)),
    ("MaxPool2d", (48, 27, 27)),
    ("Conv2d", (128, 27, 27)),
    ("ReLU", (128, 27, 27)),
    ("MaxPool2d", (128, 13, 13)),
    ("Conv2d", (192, 13, 13)),
    ("ReLU", (192, 13, 13)),
    ("Conv2d", (192, 13, 13)),
    ("ReLU", (192, 13, 13)),
    ("Conv2d", (128, 13, 13)),
    ("ReLU", (128, 13, 13)),
    ("MaxPool2d", (128, 6, 6)),
    ("Flatten", (4608,)),
    ("Linear", (2048,)),
    ("ReLU", (2048,)),
    ("Dropout", (2048,)),
    ("Linear", (2048,)),
    ("ReLU", (2048,)),
    ("Dropout", (2048,)),
    ("Linear", (1000,)),
]


def test_compact_trace_matches_the_lecture():
    rows = trace(build("alexnet_compact"))
    ours = [(r.kind, r.output_shape) for r in rows if r.kind != "AdaptiveAvgPool2d"]
    lecture = [step for step in LECTURE_TRACE if step[0] != "Flatten"]
    assert ours == lecture
    flatten = dict(LECTURE_TRACE)["Flatten"][0]
    assert build("alexnet_compact").classifier[0].in_features == flatten


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_match_what_torch_computes(name):
    model = build(name).eval()
    rows = trace(model)
    modules = dict(model.named_modules())
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        features = model.features(x)
        assert rows[[r.name for r in rows].index(f"features.{len(model.features) - 1}")].output_shape == tuple(
            features.shape[1:]
        )
        assert rows[-1].output_shape == tuple(model(x).shape[1:])
    assert all(r.name in modules for r in rows)


@pytest.mark.parametrize("name", list(MODELS))
def test_params_by_formula_equal_torch(name):
    model = build(name)
    rows = trace(model)
    assert totals(rows)["params"] == sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    for row in rows:
        assert row.params == sum(p.numel() for p in modules[row.name].parameters()), row.name


def test_alexnet_known_figures():
    rows = {r.name: r for r in trace(build("alexnet"))}
    conv1 = rows["features.0"]
    assert conv1.output_shape == (64, 55, 55)
    assert conv1.params == 23_296 and conv1.params_formula == "64 × 3 × 11 × 11 + 64"
    assert conv1.macs == 64 * 55 * 55 * 3 * 11 * 11
    assert conv1.activation_bytes == 64 * 55 * 55 * 4
    assert (conv1.receptive_field, conv1.stride) == (11, 4)
    assert (rows["features.2"].receptive_field, rows["features.2"].stride) == (19, 8)
    assert (rows["features.12"].receptive_field, rows["features.12"].stride) == (195, 32)  # AlexNet's classic 195
    assert rows["classifier.6"].receptive_field is None
    # torchvision documents 0.71 GFLOPs (multiply-adds) for AlexNet.
    assert round(totals(list(rows.values()))["macs"] / 1e9, 2) == 0.71


def test_grouped_convolutions_count_half_the_weights():
    rows = {r.name: r for r in trace(build("alexnet2012"))}
    assert rows["features.4"].params == 256 * 48 * 5 * 5 + 256
    assert "2 groups" in rows["features.4"].params_formula


def test_where_the_parameters_live():
    parts = dict(params_by_layer(trace(build("alexnet"))))
    assert list(parts)[0] == "1 conv1 (features.0)" and list(parts)[-1] == "8 fc8 (classifier.6)"
    assert parts["6 fc6 (classifier.1)"] == 37_752_832  # fc6 alone holds most of the network
    assert parts["6 fc6 (classifier.1)"] / sum(parts.values()) > 0.6


def test_trace_leaves_no_hooks_and_keeps_the_mode():
    model = build("alexnet_compact").train()
    for _ in range(3):
        trace(model)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
