import pytest
import torch
from torch import nn

from playground.architecture import params_by_layer, receptive_box, totals, trace
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
    assert list(parts)[0] == "1 conv1 · features.0" and list(parts)[-1] == "8 fc8 · classifier.6"
    assert parts["6 fc6 · classifier.1"] == 37_752_832  # fc6 alone holds most of the network
    assert parts["6 fc6 · classifier.1"] / sum(parts.values()) > 0.6


def test_every_row_carries_the_course_name_and_batch_norm_does_not_renumber_the_head():
    rows = trace(build("alexnet", batch_norm=True))
    labels = {r.name: r.label for r in rows}
    assert labels["features.0"] == "conv1 · features.0" and labels["features.1"] == "bn1 · features.1"
    assert labels["avgpool"] == "avgpool" and labels["classifier.6"] == "fc8 · classifier.6"
    parts = [label for label, _ in params_by_layer(rows)]
    # Batch norm has parameters too, but the head stays fc6 … fc8 (the old count made them fc11 … fc13).
    assert [label.split(" ", 1)[1] for label in parts[-3:]] == [
        "fc6 · classifier.1",
        "fc7 · classifier.4",
        "fc8 · classifier.6",
    ]
    assert [int(label.split(" ")[0]) for label in parts] == list(range(1, len(parts) + 1))  # the chart's order


# --- the Architecture tab's table -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_the_table_names_layers_as_the_course_does_and_ends_with_the_total(name):
    from ui.tabs import architecture as tab

    table, chart, summary = tab.architecture(name)
    model = build(name)
    assert list(table["layer"][:2]) == ["conv1 · features.0", "relu1 · features.1"]
    assert len(table) == len(trace(model)) + 1
    total = table.iloc[-1]
    assert total["layer"] == "total" and total["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert total["multiply-adds"] == f"{totals(trace(model))['macs']:,}"
    assert "The largest layer, fc6 · classifier." in summary
    assert "total" not in list(chart["layer"])


def test_the_table_has_room_for_every_row_of_the_longest_variant():
    import gradio as gr

    from ui.tabs import architecture as tab

    with gr.Blocks() as demo:
        tab.build_tab(demo, gr.Dropdown(["alexnet"], value="alexnet"))
    table = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "arch-table")
    rows = len(trace(build("alexnet2012", batch_norm=True))) + 1  # and the total
    assert table.max_height >= (rows + 1) * tab.ROW_PX  # the header too: nothing scrolls inside the box


def test_trace_leaves_no_hooks_and_keeps_the_mode():
    model = build("alexnet_compact").train()
    for _ in range(3):
        trace(model)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def _linear_copy(features: nn.Sequential) -> nn.Sequential:
    """The same geometry with every path kept open: positive weights, no ReLU, LRN or batch norm, max pools as
    average pools, one channel throughout (channels do not move pixels). Then an output value's gradient is
    non-zero exactly on the input pixels it sees."""
    layers = []
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv = nn.Conv2d(1, 1, module.kernel_size, module.stride, module.padding, module.dilation, bias=False)
            nn.init.constant_(conv.weight, 1.0)
            layers.append(conv)
        elif isinstance(module, nn.MaxPool2d):
            layers.append(nn.AvgPool2d(module.kernel_size, module.stride, module.padding))
        else:
            layers.append(nn.Identity())
    return nn.Sequential(*layers).double()


def _footprints(linear: nn.Sequential, positions: list[tuple[int, int]], size: int) -> list[dict]:
    """For each layer of ``linear``, (y, x) -> the (left, top, right, bottom) of the input pixels with a non-zero
    gradient of its output (0, y, x), for ``positions`` clamped to the layer's map: the pixels that unit reads."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    outputs, h = [], x
    for layer in linear:
        h = layer(h)
        outputs.append(h)
    boxes = []
    for output in outputs:
        height, width = output.shape[-2:]
        wanted = sorted({(min(y, height - 1), min(x_, width - 1)) for y, x_ in positions})
        seeds = torch.zeros(len(wanted), *output.shape, dtype=torch.float64)
        for i, (y, x_) in enumerate(wanted):
            seeds[i, 0, 0, y, x_] = 1.0
        (grads,) = torch.autograd.grad(output, x, seeds, retain_graph=True, is_grads_batched=True)
        found = {}
        for (y, x_), grad in zip(wanted, grads):
            touched = torch.nonzero(grad[0, 0])
            found[(y, x_)] = (
                int(touched[:, 1].min()),
                int(touched[:, 0].min()),
                int(touched[:, 1].max()) + 1,
                int(touched[:, 0].max()) + 1,
            )
        boxes.append(found)
    return boxes


# Pooling floors that drop the last rows and columns: plain 2 x 2 pools, a removed conv (two pools in a row),
# and inputs whose size the strides do not divide (67 px, 100 px).
GEOMETRIES = {
    **{name: (name, {}, 224) for name in MODELS},
    "alexnet-plain": ("alexnet", {"pooling": "plain"}, 224),
    "compact-plain": ("alexnet_compact", {"pooling": "plain"}, 224),
    "alexnet-drop2": ("alexnet", {"drop_conv": 2}, 224),
    "alexnet2012-drop3": ("alexnet2012", {"drop_conv": 3}, 224),
    "compact-drop4-plain": ("alexnet_compact", {"drop_conv": 4, "pooling": "plain"}, 224),
    "alexnet-67px": ("alexnet", {}, 67),
    "compact-plain-67px": ("alexnet_compact", {"pooling": "plain"}, 67),
    "alexnet2012-100px": ("alexnet2012", {}, 100),
}


@pytest.mark.parametrize(("name", "options", "size"), GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_receptive_boxes_are_the_gradient_footprint_of_one_output(name, options, size):
    model = build(name, **options)
    rows = {r.name: r for r in trace(model, (3, size, size))}
    last = 10_000  # clamped to each map: its last row and column
    positions = [(0, 0), (last, last), (last, 0), (0, last), (size // 20, size // 30)]
    for index, found in enumerate(_footprints(_linear_copy(model.features), positions, size)):
        row = rows[f"features.{index}"]
        for (y, x_), footprint in found.items():
            assert receptive_box(row, y, x_, (size, size)) == footprint, (row.name, y, x_)


def test_receptive_box_numbers_and_refusals():
    rows = {r.name: r for r in trace(build("alexnet"))}
    conv1 = rows["features.0"]
    assert conv1.offset == -2  # padding 2: position 0 starts two pixels before the image
    assert receptive_box(conv1, 0, 0, (224, 224)) == (0, 0, 9, 9)  # pixels -2 ... 8, clipped to 0 ... 8
    assert receptive_box(conv1, 10, 20, (224, 224)) == (78, 38, 89, 49)  # 11 pixels from -2 + 4 * i
    assert (rows["features.10"].receptive_field, rows["features.10"].offset) == (163, -66)
    with pytest.raises(ValueError, match="13 × 13"):
        receptive_box(rows["features.10"], 13, 0, (224, 224))
    with pytest.raises(ValueError, match="flattened"):
        receptive_box(rows["classifier.1"], 0, 0, (224, 224))
