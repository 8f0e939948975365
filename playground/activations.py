"""What every layer sees: preprocessing, captured activations, channel grids, overlays, predictions."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from playground.config import get_limits
from playground.hooks import leaf_modules, temporary_hooks, weights_token
from playground.images import BytesLRU
from playground.models import MEAN, PREPROCESS, STD

CAPTURED = (
    nn.Conv2d,
    nn.ReLU,
    nn.LocalResponseNorm,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Linear,
)
_COLORMAP = torch.from_numpy(matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3]).float()


def preprocess(image: Image.Image) -> torch.Tensor:
    """An RGB photo as the (1, 3, 224, 224) normalised tensor the network takes."""
    return PREPROCESS(image.convert("RGB")).unsqueeze(0)


def network_view(x: torch.Tensor) -> Image.Image:
    """The preprocessed input turned back into a picture: the crop the network actually sees."""
    pixels = (x[0].detach().cpu() * STD + MEAN).clamp(0, 1)
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def layer_names(model: nn.Module) -> list[str]:
    """The layers :func:`capture` records, in order (conv, ReLU, LRN, pooling and linear layers)."""
    return [name for name, module in leaf_modules(model) if isinstance(module, CAPTURED)]


def capture(model: nn.Module, x: torch.Tensor, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Run ``x`` through ``model`` and return each named layer's output (batch dimension kept).

    Outputs are copied as they appear, because in-place ReLUs would otherwise overwrite the
    convolution outputs they follow. Hooks are removed and the train/eval mode restored afterwards.
    """
    names = layer_names(model) if layers is None else list(layers)
    captured: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            captured[name] = output.detach().clone()

        return record

    with temporary_hooks(model, {name: hook(name) for name in names}), torch.no_grad():
        model(x)
    return {name: captured[name] for name in names if name in captured}


def forward_with_activations(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and every captured layer from one forward pass."""
    activations = capture(model, x)
    last = layer_names(model)[-1]
    return activations[last], activations


@dataclasses.dataclass(frozen=True)
class Seen:
    """One photo through one network: the input it took, every captured layer, and its scores.

    Shared by whoever asks for the same photo and weights again: read it, never write into it.
    """

    x: torch.Tensor  # (1, 3, 224, 224), normalised
    activations: dict[str, torch.Tensor]  # layer name -> output, batch dimension kept
    logits: torch.Tensor  # (1, classes)

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x, self.logits, *self.activations.values()))


_SEEN = BytesLRU(lambda: get_limits().seen_photos_bytes)


def look(model: nn.Module, photo: Image.Image, *, key=None) -> Seen:
    """``photo`` through ``model``: preprocessing, every layer and the scores, from one forward pass.

    With a ``key`` that identifies the photo (see :func:`playground.images.photo_file_key`), the result is
    kept (bounded in bytes) for the same photo and the same weights: a learner who switches layers, asks for
    the top-5 and then an explanation of the same photo pays for one pass, not three.
    """
    cache_key = None if key is None else (weights_token(model), key)
    seen = None if cache_key is None else _SEEN.get(cache_key)
    if seen is None:
        x = preprocess(photo)
        logits, activations = forward_with_activations(model, x)
        seen = Seen(x, activations, logits)
        if cache_key is not None:
            _SEEN.put(cache_key, seen, seen.bytes)
    return seen


def as_maps(activation: torch.Tensor) -> torch.Tensor:
    """One image's activation as (C, H, W) maps; a flat (N,) vector becomes one near-square map."""
    a = activation[0] if activation.dim() in (2, 4) else activation
    if a.dim() == 3:
        return a
    side = int(np.ceil(np.sqrt(a.numel())))
    flat = torch.zeros(side * side)
    flat[: a.numel()] = a.flatten()
    return flat.view(1, side, side)


def top_channels(maps: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` channels with the largest mean activation, strongest first."""
    means = maps.flatten(1).mean(dim=1)
    return [int(i) for i in torch.argsort(means, descending=True, stable=True)[:k]]


def sparsity(activation: torch.Tensor) -> float:
    """Fraction of values that are exactly zero (after a ReLU: the switched-off units)."""
    return float((activation == 0).float().mean())


def colorize(maps: torch.Tensor, *, shared_scale: bool = False) -> torch.Tensor:
    """(N, H, W) values -> (N, 3, H, W) magma colours, each map scaled to its own range (or one
    range for all when ``shared_scale``)."""
    dims = (0, 1, 2) if shared_scale else (1, 2)
    low = maps.amin(dim=dims, keepdim=True)
    high = maps.amax(dim=dims, keepdim=True)
    index = ((maps - low) / (high - low).clamp_min(1e-12) * 255).round().long().clamp(0, 255)
    return _COLORMAP[index].permute(0, 3, 1, 2)


def _to_image(t: torch.Tensor) -> Image.Image:
    return Image.fromarray((t.clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


@dataclasses.dataclass(frozen=True)
class ChannelGrid:
    image: Image.Image
    channels: list[int]  # channel index of each tile, row by row


def channel_grid(activation: torch.Tensor, *, k: int = 16, tile_px: int = 110) -> ChannelGrid:
    """The ``k`` most active channels of one layer as a single composed image (magma colours)."""
    maps = as_maps(activation)
    channels = top_channels(maps, min(k, maps.shape[0]))
    tiles = colorize(maps[channels])
    height, width = tiles.shape[-2:]
    if max(height, width) < tile_px:  # enlarge small maps with nearest-neighbour: no invented detail
        factor = max(1, tile_px // max(height, width))
        tiles = F.interpolate(tiles, scale_factor=factor, mode="nearest")
    grid = make_grid(tiles, nrow=int(np.ceil(np.sqrt(len(channels)))), padding=2, pad_value=1.0)
    return ChannelGrid(_to_image(grid), channels)


def overlay(activation: torch.Tensor, channel: int, photo: Image.Image, *, alpha: float = 0.55) -> Image.Image:
    """One channel stretched over the photo the network saw, as a semi-transparent heat map."""
    maps = as_maps(activation)
    if not 0 <= channel < maps.shape[0]:
        raise ValueError(f"This layer has channels 0 to {maps.shape[0] - 1}; there is no channel {channel}.")
    heat = colorize(maps[channel : channel + 1])
    heat = F.interpolate(heat, size=(photo.height, photo.width), mode="bilinear", align_corners=False)[0]
    base = torch.from_numpy(np.asarray(photo.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    return _to_image((1 - alpha) * base + alpha * heat)


@dataclasses.dataclass(frozen=True)
class LayerStats:
    name: str
    kind: str
    shape: tuple[int, ...]
    mean: float
    max: float
    sparsity: float  # fraction of exact zeros


def layer_stats(model: nn.Module, activations: dict[str, torch.Tensor]) -> list[LayerStats]:
    modules = dict(model.named_modules())
    return [
        LayerStats(name, type(modules[name]).__name__, tuple(a.shape[1:]), float(a.mean()), float(a.max()), sparsity(a))
        for name, a in activations.items()
    ]


PERCENT_DECIMALS = 4  # at most: smaller than 0.0001 % reads "< 0.0001 %"


def percent_text(probability: float) -> str:
    """A probability as a percentage with the digits it needs: "46 %", "3.2 %", "0.12 %" (two significant
    digits below 10 %); "0 %" only for 0 and "100 %" only for 1, so an untrained model's 0.1 % stays visible."""
    value = 100 * float(probability)
    if value in (0, 100):
        return f"{value:.0f} %"
    decimals = 0 if value >= 10 else min(PERCENT_DECIMALS, 1 - math.floor(math.log10(value)))
    while decimals <= PERCENT_DECIMALS:
        text = f"{value:.{decimals}f}"
        if float(text) not in (0, 100):
            return f"{text} %"
        decimals += 1
    step = 10.0**-PERCENT_DECIMALS  # the smallest difference shown
    return f"< {step:.{PERCENT_DECIMALS}f} %" if value < 50 else f"> {100 - step:.{PERCENT_DECIMALS}f} %"


def predict(
    model: nn.Module, x: torch.Tensor, classes, k: int = 5, *, logits: torch.Tensor | None = None
) -> list[tuple[str, float]]:
    """The top ``k`` classes with their softmax probabilities, most likely first."""
    if logits is None:
        with torch.no_grad():
            logits = model(x)
    probabilities = torch.softmax(logits[0].float(), dim=0)
    top = torch.topk(probabilities, min(k, probabilities.numel()))
    return [(classes[int(i)], float(p)) for p, i in zip(top.values, top.indices)]
