"""A layer-by-layer account of a network: shapes, parameters, multiply-adds, memory, receptive fields.

Parameters and multiply-adds come from the formulas a learner would write by hand, not from torch's
own count, so the tests can hold the two against each other.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from playground.hooks import leaf_modules, temporary_hooks
from playground.layers import layer_label

BYTES_PER_VALUE = 4  # float32 activations


@dataclasses.dataclass(frozen=True)
class LayerRow:
    name: str  # torchvision-style dotted name, e.g. "features.0"
    kind: str  # the module's class, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # by formula
    params_formula: str  # e.g. "64 × 3 × 11 × 11 + 64"
    macs: int  # multiply-adds for one image
    activation_bytes: int  # output size in memory (float32)
    receptive_field: int | None  # input pixels one output value sees (per side); None once flattened
    stride: int | None  # input pixels between neighbouring outputs (the "jump"); None once flattened
    # Input coordinate (row = column, as the windows are square) of the first pixel that output position 0
    # sees; negative where padding makes it start outside the image. None once flattened. Position i sees
    # input pixels offset + i * stride ... offset + i * stride + receptive_field - 1 (see receptive_box).
    offset: int | None = None
    # (rows, columns): no unit of this layer reads input pixels at or past these. Where a window's floor drops
    # a map's last rows (2 x 2 pools, odd sizes), the last positions' fields reach past what any unit reads:
    # their windows cover padding there, not pixels. None once flattened.
    reach: tuple[int, int] | None = None
    label: str = ""  # as a learner reads it: "conv1 · features.0" (playground.layers.layer_label)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _params(module: nn.Module) -> tuple[int, str]:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        fan_in = module.in_channels // module.groups
        weights = module.out_channels * fan_in * kh * kw
        bias = module.out_channels if module.bias is not None else 0
        groups = f" (in {module.in_channels} / {module.groups} groups)" if module.groups > 1 else ""
        return weights + bias, f"{module.out_channels} × {fan_in} × {kh} × {kw} + {bias}{groups}"
    if isinstance(module, nn.Linear):
        bias = module.out_features if module.bias is not None else 0
        return module.in_features * module.out_features + bias, f"{module.in_features} × {module.out_features} + {bias}"
    if isinstance(module, nn.BatchNorm2d) and module.affine:  # (models.build(..., batch_norm=True))
        return 2 * module.num_features, f"2 × {module.num_features} (a scale and a shift per channel)"
    return 0, "0"


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


def _window(
    module: nn.Module, input_hw: tuple[int, int], output_hw: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """(kernel, stride, dilation, padding) along the height for layers that slide a window; None if none."""
    if isinstance(module, nn.Conv2d):
        k, d = module.kernel_size[0], module.dilation[0]
        padding = module.padding
        if isinstance(padding, str):  # "valid" or "same" (stride 1, the window centred)
            padding = (0,) if padding == "valid" else (d * (k - 1) // 2,)
        return k, module.stride[0], d, padding[0]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return (
            _pair(module.kernel_size)[0],
            _pair(module.stride or module.kernel_size)[0],
            _pair(getattr(module, "dilation", 1))[0],
            _pair(module.padding)[0],
        )
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size_in, size_out = input_hw[0], output_hw[0]
        if size_in % size_out == 0:  # PyTorch's windows are then regular: kernel = stride = in / out
            step = size_in // size_out
            return step, step, 1, 0
        return None
    return (1, 1, 1, 0)  # pointwise layers (ReLU, LRN, dropout) keep the geometry


def trace(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)) -> list[LayerRow]:
    """Run one zero image through ``model`` and describe every leaf layer in the order it ran."""
    records: list[tuple[str, nn.Module, tuple, torch.Tensor]] = []

    def hook(name):
        def record(module, inputs, output):
            records.append((name, module, tuple(inputs[0].shape), output.detach()))

        return record

    with temporary_hooks(model, {name: hook(name) for name, _ in leaf_modules(model)}), torch.no_grad():
        model(torch.zeros((1, *input_size)))

    rows = []
    rf, jump, offset = 1, 1, 0  # receptive field, jump and first pixel of the current feature map, in input pixels
    reach = tuple(input_size[1:])  # (rows, columns) the current map's units read up to, exclusive
    flattened = False
    for name, module, in_shape, output in records:
        params, formula = _params(module)
        if output.dim() != 4:
            flattened = True  # after flattening, every value sees the whole image
        if not flattened:
            window = _window(module, tuple(in_shape[2:]), tuple(output.shape[2:]))
            if window is None:
                flattened = True
            else:
                k, s, d, p = window
                # A window past the previous map's last position reads padding: it reaches no further than
                # that last position does.
                reach = tuple(min(r, offset + (size - 1) * jump + rf) for r, size in zip(reach, in_shape[2:]))
                # Output 0's window starts p positions before the previous map's position 0.
                rf, jump, offset = rf + (k - 1) * d * jump, jump * s, offset - p * jump
        rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                output_shape=tuple(output.shape[1:]),
                params=params,
                params_formula=formula,
                macs=_macs(module, output),
                activation_bytes=output[0].numel() * BYTES_PER_VALUE,
                receptive_field=None if flattened else rf,
                stride=None if flattened else jump,
                offset=None if flattened else offset,
                reach=None if flattened else reach,
                label=layer_label(model, name),
            )
        )
    return rows


def receptive_box(row: LayerRow, y: int, x: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The input pixels that position (y, x) of ``row``'s feature map reads: (left, top, right, bottom),
    right and bottom exclusive, clipped to an image of ``image_hw`` (padding has no pixels to show) and to the
    layer's reach (pixels no unit of it reads).

    Raises:
        ValueError: a flattened layer, or a position outside its map.
    """
    if row.receptive_field is None:
        raise ValueError(f"{row.name} is flattened: every one of its values sees the whole image.")
    height, width = row.output_shape[-2:]
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"{row.name}'s maps are {height} × {width}; position (row {y}, column {x}) is outside them.")
    top, left = row.offset + y * row.stride, row.offset + x * row.stride
    size = row.receptive_field
    bottom, right = (image_hw[0], image_hw[1]) if row.reach is None else row.reach
    return (
        max(0, left),
        max(0, top),
        min(image_hw[1], left + size, right),
        min(image_hw[0], top + size, bottom),
    )


def totals(rows: list[LayerRow]) -> dict[str, int]:
    """Sums over a trace: parameters, multiply-adds and activation memory."""
    return {
        "params": sum(r.params for r in rows),
        "macs": sum(r.macs for r in rows),
        "activation_bytes": sum(r.activation_bytes for r in rows),
    }


def params_by_layer(rows: list[LayerRow]) -> list[tuple[str, int]]:
    """(label, parameters) for the layers that have any, labelled with the course's names: "1 conv1 · features.0",
    …, "8 fc8 · classifier.6". The leading number keeps the order when a chart sorts the labels."""
    weighted = [r for r in rows if r.params]
    return [(f"{step} {r.label or r.name}", r.params) for step, r in enumerate(weighted, start=1)]
