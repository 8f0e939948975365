"""Units: what one channel of a convolution layer responds to.

A *unit* here is a channel of a convolution layer inside ``model.features`` (every AlexNet variant, and every
checkpoint trained from one). The ReLU, LRN or pooling layers after a convolution carry the same channels,
so their names (as the Activations tab lists them) lead to that convolution's units.

This module checks what is asked (model, layer, channel), finds the strongest position of a unit on a photo,
draws its receptive field (from :func:`playground.architecture.trace`, the Architecture tab's numbers), runs
Captum's deconvnet and guided backprop for it, and keeps finished passes in a cache bounded in bytes.
The long passes themselves (feature visualisation, top patches, fc7 map) are :mod:`playground.units.jobs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import numpy as np
import torch
from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop
from PIL import Image, ImageDraw
from torch import nn

from playground import layers, models
from playground.activations import colorize, layer_names
from playground.architecture import LayerRow, receptive_box, trace
from playground.config import get_limits
from playground.explain.attributions import explainable_copy
from playground.hooks import model_lock
from playground.images import BytesLRU
from playground.layers import conv_layers, cut_at

BOX_COLOUR = (0, 220, 90)  # bright green: visible on photos and on magma maps alike


def require_convolutional(model: nn.Module | None, name: str = "") -> None:
    """Refuse a model without convolution layers (the linear and MLP baselines, by ``name`` alone) with a sentence."""
    if name in models.BASELINES or model is None or not unit_layers(model):
        label = f"The {name} baseline" if name in models.BASELINES else "This model"
        raise ValueError(
            f"{label} has no convolutional layers, so it has no units (channels) to look at. Choose an AlexNet."
        )


def unit_layers(model: nn.Module) -> list[str]:
    """The convolution layers whose channels are units, in order (``features.0``, ``features.3``, …)."""
    return conv_layers(model)


def resolve_layer(model: nn.Module, layer: str) -> tuple[str, str]:
    """The convolution layer whose units ``layer`` shows, and a note when it is another layer's name.

    Raises:
        ValueError: a name that is neither a convolution nor a layer after one (the sentence lists them).
    """
    convs = unit_layers(model)
    layer = str(layer or "").strip()
    with contextlib.suppress(ValueError):  # a course name ("conv3", "relu5") stands for its torchvision name
        layer = layers.resolve(model, layer)
    if layer in convs:
        return layer, ""
    if layer in layer_names(model) and layer.startswith("features."):
        index = int(layer.split(".")[1])
        before = [c for c in convs if int(c.split(".")[1]) < index]
        if before:
            kind = type(model.features[index]).__name__
            return before[-1], f"{layer} ({kind}) carries the channels of {before[-1]}, so these are its units. "
    raise ValueError(
        f"Units are the channels of a convolution layer; choose one of {', '.join(convs)} "
        f"(or a ReLU, LRN or pooling layer after one), not {layer!r}."
    )


def channels_of(model: nn.Module, layer: str) -> int:
    return model.features[int(layer.split(".")[1])].out_channels


def check_channel(model: nn.Module, layer: str, channel) -> int:
    """``channel`` as an int, if ``layer`` has it.

    Raises:
        ValueError: not a whole number, or outside 0 … channels - 1 (the sentence names the range).
    """
    count = channels_of(model, layer)
    whole = isinstance(channel, int) or (isinstance(channel, float) and channel.is_integer())
    if isinstance(channel, bool) or not whole:
        raise ValueError(f"The channel must be a whole number from 0 to {count - 1}, not {str(channel)[:20]!r}.")
    if not 0 <= channel < count:  # compared before int(): 1e308 would become a 309-digit number in the sentence
        raise ValueError(f"{layer} has channels 0 to {count - 1}; there is no channel {channel:.6g}.")
    return int(channel)


def layer_row(model: nn.Module, layer: str) -> LayerRow:
    """The Architecture table's row of ``layer`` (shape, receptive field, stride, offset) at 224 × 224."""
    return {row.name: row for row in trace(model)}[layer]


def trunk_output(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """(1, C, H, W) output of ``layer`` for a normalised batch, computed without hooks (safe on a shared model)."""
    with model_lock(model).shared(), torch.inference_mode():  # nobody's hooks on it meanwhile (hooks.SharedLock)
        return cut_at(model, layer)(x).clone()


def strongest_position(maps: torch.Tensor, channel: int) -> tuple[int, int, float]:
    """(row, column, value) of the channel's largest value in (1, C, H, W) maps."""
    plane = maps[0, channel]
    flat = int(plane.argmax())
    return flat // plane.shape[1], flat % plane.shape[1], float(plane.flatten()[flat])


MAP_SIDE = 224  # px: a channel's map is shown enlarged by whole pixels to about this size


def _factor(hw: tuple[int, int]) -> int:
    return max(1, MAP_SIDE // max(hw))


def channel_map(maps: torch.Tensor, channel: int) -> Image.Image:
    """One channel of (1, C, H, W) maps in magma colours, each position a square of whole pixels."""
    plane = maps[0, channel : channel + 1]
    factor = _factor(tuple(plane.shape[-2:]))
    tile = colorize(plane)[0].repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    return Image.fromarray((tile.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


def map_position(hw: tuple[int, int], x: int, y: int) -> tuple[int, int]:
    """The (row, column) under pixel (x, y) of a :func:`channel_map` picture of (H, W) maps.

    Raises:
        ValueError: a pixel outside the picture.
    """
    factor = _factor(hw)
    row, column = int(y) // factor, int(x) // factor
    if not (0 <= row < hw[0] and 0 <= column < hw[1]):
        raise ValueError(f"That point is outside the {hw[0]} × {hw[1]} map.")
    return row, column


def attribution_panel(result: UnitAttribution, photo: Image.Image) -> Image.Image:
    """Three pictures side by side: the photo with the unit's receptive-field box at its strongest position,
    the unit's signed attribution as colours (grey = 0, as DeepVis shows a deconvnet) with the same box, and
    the inside of that box enlarged (a conv1 unit sees only 11 × 11 pixels)."""
    values = result.values
    pattern = (values / (2 * values.abs().max().clamp_min(1e-12)) + 0.5).clamp(0, 1)
    pattern = Image.fromarray((pattern.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    zoom = pattern.crop(result.box).resize((photo.width, photo.height), Image.Resampling.NEAREST)
    pictures = [draw_box(photo, result.box), draw_box(pattern, result.box), zoom]
    panel = Image.new("RGB", (sum(p.width for p in pictures) + 8 * (len(pictures) - 1), photo.height), "white")
    for i, picture in enumerate(pictures):
        panel.paste(picture, (i * (photo.width + 8), 0))
    return panel


def tile_at(channels: list[int], grid_size: tuple[int, int], x: int, y: int) -> int | None:
    """The channel under pixel (x, y) of an :func:`playground.activations.channel_grid` image, or None on the
    padding between tiles. The grid is torchvision's make_grid: ceil(sqrt(n)) tiles a row, 2 px apart."""
    per_row = int(np.ceil(np.sqrt(len(channels))))
    step = (grid_size[0] - 2) // per_row  # tile + padding
    column, row = (x - 2) // step, (y - 2) // step
    inside = 0 <= x - 2 - column * step < step - 2 and 0 <= y - 2 - row * step < step - 2
    index = row * per_row + column
    return channels[index] if inside and 0 <= column < per_row and 0 <= index < len(channels) else None


def draw_box(photo: Image.Image, box: tuple[int, int, int, int], *, width: int = 2, label: str = "") -> Image.Image:
    """``photo`` with a rectangle around (left, top, right, bottom), right and bottom exclusive."""
    picture = photo.convert("RGB").copy()
    draw = ImageDraw.Draw(picture)
    left, top, right, bottom = box
    draw.rectangle([left, top, right - 1, bottom - 1], outline=BOX_COLOUR, width=width)
    if label:
        draw.text((left + 3, top + 2), label, fill=BOX_COLOUR)
    return picture


@dataclasses.dataclass(frozen=True)
class UnitAttribution:
    method: str  # "deconvnet" or "guided_backprop"
    values: torch.Tensor  # (3, H, W), like the input
    position: tuple[int, int]  # the unit's strongest (row, column) on this photo
    value: float  # its activation there
    box: tuple[int, int, int, int]  # that position's receptive field in the input


NEURON_METHODS = {"deconvnet": NeuronDeconvolution, "guided_backprop": NeuronGuidedBackprop}


def unit_attribution(model: nn.Module, x: torch.Tensor, layer: str, channel: int, method: str) -> UnitAttribution:
    """Which input pixels drive the unit at its strongest position on this photo (Captum's neuron methods,
    on the private copy without in-place ReLUs that :mod:`playground.explain.attributions` keeps).

    Raises:
        ValueError: an unknown method, layer or channel.
    """
    if method not in NEURON_METHODS:
        raise ValueError(f"Choose one of {', '.join(NEURON_METHODS)}, not {method!r}.")
    require_convolutional(model)
    layer, _ = resolve_layer(model, layer)
    channel = check_channel(model, layer, channel)
    twin = explainable_copy(model)
    with model_lock(twin).exclusive():  # Captum's hooks sit on the copy and fire for everyone: one user at a time
        y, x_, value = strongest_position(trunk_output(twin, x, layer), channel)
        module = dict(twin.named_modules())[layer]
        with warnings.catch_warnings():  # Captum announces that it set requires_grad and backward hooks
            warnings.simplefilter("ignore", UserWarning)
            values = NEURON_METHODS[method](twin, module).attribute(x.clone(), neuron_selector=(channel, y, x_))
    box = receptive_box(layer_row(model, layer), y, x_, tuple(x.shape[-2:]))
    return UnitAttribution(method, values[0].detach(), (y, x_), value, box)


# --- finished passes, kept in bytes ------------------------------------------------------------------------


def model_identity(model_key: str, session: str) -> tuple:
    """Part of every cache key: a shared variant is the same for everyone; anything else is the session's own."""
    if model_key in models.MODELS:
        return ("shared", model_key)
    return ("session", session, model_key)


class UnitResults:
    """Finished passes (top patches, fc7 features, pictures), least recently used out first, bounded in bytes.

    Every key starts with :func:`model_identity`, and a session's own data ("my zip") carries the session in
    its dataset part, so one user's results can only ever be found by the same session.
    """

    def __init__(self, max_bytes: int | None = None):
        self._lru = BytesLRU(lambda: max_bytes or get_limits().units_cache_bytes)

    def get(self, kind: str, model: tuple, *parts):
        return self._lru.get((kind, model, *parts))

    def put(self, kind: str, model: tuple, *parts, value, size: int) -> None:
        self._lru.put((kind, model, *parts), value, size)

    @property
    def bytes(self) -> int:
        return self._lru.bytes
