"""The dataset patches that excite each channel most (Zeiler & Fergus 2014, figure 2), for every channel of
every convolution layer, in one pass over a dataset.

Each image counts once per channel: its strongest value anywhere in that channel's map. The running top-k
per channel is merged batch by batch, so memory holds one batch of maps and k numbers per channel, never
the maps of the whole dataset. At the end each winner is cut to the unit's receptive field around its
strongest position (grey where the field reaches past the image, as padding does), with the positions taken
from :func:`playground.architecture.trace`, the same numbers the Architecture tab shows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import torch
from torch import nn
from torchvision.ops import roi_align

from playground.architecture import LayerRow, trace
from playground.data.datasets import ImageDataset
from playground.layers import conv_layers
from playground.models import MEAN, STD
from playground.training.finetune import prepare_batch


@dataclasses.dataclass(frozen=True)
class PassProgress:
    done: int  # images seen
    total: int
    message: str = ""


@dataclasses.dataclass(frozen=True)
class LayerTop:
    """One layer's winners, strongest first: row ``c`` holds channel ``c``'s top k."""

    values: torch.Tensor  # (C, k) float: the channel's strongest value in that image
    images: torch.Tensor  # (C, k) int64: the image's index in the dataset
    positions: torch.Tensor  # (C, k, 2) int64: (row, column) of that value in the feature map
    patches: torch.Tensor  # (C, k, 3, P, P) uint8: the receptive field around it, P = min(field, patch_px)
    boxes: torch.Tensor  # (C, k, 4) int64: (left, top, right, bottom) in the network's input, right/bottom exclusive

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in dataclasses.astuple(self))


@dataclasses.dataclass(frozen=True)
class TopPatches:
    layers: dict[str, LayerTop]  # conv layer name -> its winners
    dataset: str  # the dataset's name
    images: int  # how many images the pass saw
    input_size: int  # the network's input side the boxes refer to
    seconds: float

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers.values())


def top_patches(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    k: int = 9,
    batch_size: int = 32,
    input_size: int = 224,
    patch_px: int = 64,
) -> Iterator[PassProgress | TopPatches]:
    """Yield progress while the dataset goes through the model's features, then the :class:`TopPatches`.

    Images are prepared as training and evaluation prepare them (resized to ``input_size``, normalised).
    Close the generator to stop; nothing is kept.

    Raises:
        ValueError: an empty dataset.
    """
    total = len(dataset)
    if total == 0:
        raise ValueError(f"{dataset.name} has no images to look through.")
    k = min(k, total)
    started = time.monotonic()
    convs = conv_layers(model)  # features.0, features.3, …
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # values, image indices, flat positions
    widths: dict[str, int] = {}
    yield PassProgress(0, total, f"Looking through {total} images of {dataset.name}…")
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            h = prepare_batch(dataset.images[start : start + batch_size], input_size, train=False)
            batch = h.shape[0]
            index = torch.arange(start, start + batch).expand(1, -1)
            for i, module in enumerate(model.features):
                h, name = module(h), f"features.{i}"
                if name not in convs:
                    continue
                # Reduce now: the in-place ReLU that follows overwrites this tensor.
                flat = h.flatten(2)  # (B, C, H*W)
                widths[name] = h.shape[-1]
                values, where = flat.max(dim=2)  # (B, C): each image's strongest value per channel
                values, where = values.T, where.T  # (C, B)
                images = index.expand(values.shape[0], -1)
                if name in best:
                    old_values, old_images, old_where = best[name]
                    values = torch.cat([old_values, values], 1)
                    images, where = torch.cat([old_images, images], 1), torch.cat([old_where, where], 1)
                top = values.topk(min(k, values.shape[1]), dim=1)
                best[name] = (top.values, images.gather(1, top.indices), where.gather(1, top.indices))
                if name == convs[-1]:
                    break  # nothing after the last convolution matters here
            yield PassProgress(min(start + batch, total), total, f"{min(start + batch, total)} of {total} images…")
    yield PassProgress(total, total, "Cutting out the patches…")
    rows = {row.name: row for row in trace(model, (3, input_size, input_size))}
    layers = {}
    for name, (values, images, flat) in best.items():
        positions = torch.stack([flat // widths[name], flat % widths[name]], dim=-1)
        layers[name] = _cut(dataset, rows[name], values, images, positions, input_size, patch_px)
    yield TopPatches(layers, dataset.name, total, input_size, time.monotonic() - started)


def field_boxes(row: LayerRow, positions: torch.Tensor) -> torch.Tensor:
    """Unclipped (left, top, right, bottom) receptive fields of feature-map positions (..., 2) = (row, column)."""
    top_left = row.offset + positions.flip(-1) * row.stride  # (x, y)
    return torch.cat([top_left, top_left + row.receptive_field], dim=-1)


def _cut(dataset, row: LayerRow, values, images, positions, input_size: int, patch_px: int) -> LayerTop:
    channels, k = values.shape
    side = min(row.receptive_field, patch_px)
    boxes = field_boxes(row, positions)  # (C, k, 4)
    patches = torch.empty(channels, k, 3, side, side, dtype=torch.uint8)
    flat_images, flat_boxes = images.flatten(), boxes.flatten(0, 1).float()
    unique = torch.unique(flat_images)
    for chunk in unique.split(64):  # a few dozen prepared images in memory at a time
        pixels = prepare_batch(dataset.images[chunk], input_size, train=False) * STD + MEAN - 0.5  # grey = 0
        slot = torch.full((len(dataset),), -1, dtype=torch.int64)
        slot[chunk] = torch.arange(len(chunk))
        wanted = torch.nonzero(slot[flat_images] >= 0).flatten()
        rois = torch.cat([slot[flat_images[wanted]].float()[:, None], flat_boxes[wanted]], dim=1)
        # aligned=True: box [l, r) covers pixels l ... r - 1 exactly; samples past the image read as 0 (grey).
        cut = roi_align(pixels, rois, output_size=(side, side), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        patches.view(-1, 3, side, side)[wanted] = ((cut + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    clipped = torch.stack(
        [
            boxes[..., 0].clamp(0),
            boxes[..., 1].clamp(0),
            boxes[..., 2].clamp(max=input_size),
            boxes[..., 3].clamp(max=input_size),
        ],
        dim=-1,
    )
    return LayerTop(values.float(), images, positions, patches, clipped)
