"""The dataset patches that excite each channel most (Zeiler & Fergus 2014, figure 2), for every channel of
every convolution layer, in one pass over a dataset.

Each image counts once per channel: its strongest value anywhere in that channel's map. The running top-k
per channel is merged batch by batch, so memory holds one batch of maps and k numbers per channel, never
the maps of the whole dataset. At the end each winner is cut to the unit's receptive field around its
strongest position (grey where the field reaches past the image, as padding does), with the positions taken
from :func:`playground.architecture.trace`, the same numbers the Architecture tab shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from playground.architecture import LayerRow, trace
from playground.data.datasets import ImageDataset
from playground.layers import conv_layers
from playground.models import MEAN, STD
from playground.training.finetune import prepare_batch

GREY = 128  # uint8: what a patch shows where the field reaches past the photo (the padding), as feature vis pads


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

    Images are prepared as training and evaluation prepare them (resized to ``input_size``, normalised), and
    go through the model in eval mode; a model in training mode gets its mode back, its batch-norm statistics
    untouched. A channel is ranked by what the Activations tab shows for it: the convolution's output, after
    the batch norm that follows it where there is one. Close the generator to stop; nothing is kept.

    Raises:
        ValueError: an empty dataset.
    """
    total = len(dataset)
    if total == 0:
        raise ValueError(f"{dataset.name} has no images to look through.")
    k = min(k, total)
    started = time.monotonic()
    convs = conv_layers(model)  # features.0, features.3, …
    ranked_at = _ranked_at(model, convs)  # index in model.features whose output ranks each conv's channels
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # values, image indices, flat positions
    widths: dict[str, int] = {}
    yield PassProgress(0, total, f"Looking through {total} images of {dataset.name}…")
    for start in range(0, total, batch_size):
        with _in_eval_mode(model), torch.inference_mode():
            h = prepare_batch(dataset.images[start : start + batch_size], input_size, train=False)
            batch = h.shape[0]
            index = torch.arange(start, start + batch).expand(1, -1)
            for i, module in enumerate(model.features):
                h = module(h)
                name = ranked_at.get(i)
                if name is None:
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


def _ranked_at(model: nn.Module, convs: list[str]) -> dict[int, str]:
    """{index in ``model.features``: conv name} of the output that ranks each conv's channels: the conv's own,
    or the batch norm's right after it (the Activations tab shows the channel after its normalisation)."""
    ranked = {}
    for name in convs:
        index = int(name.split(".")[1])
        follows = index + 1 < len(model.features) and isinstance(model.features[index + 1], nn.BatchNorm2d)
        ranked[index + 1 if follows else index] = name
    return ranked


@contextlib.contextmanager
def _in_eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block (batch norm reads its statistics instead of updating them), then the old mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def field_boxes(row: LayerRow, positions: torch.Tensor) -> torch.Tensor:
    """Unclipped (left, top, right, bottom) receptive fields of feature-map positions (..., 2) = (row, column)."""
    top_left = row.offset + positions.flip(-1) * row.stride  # (x, y)
    return torch.cat([top_left, top_left + row.receptive_field], dim=-1)


def _cut(dataset, row: LayerRow, values, images, positions, input_size: int, patch_px: int) -> LayerTop:
    channels, k = values.shape
    side = min(row.receptive_field, patch_px)
    boxes = field_boxes(row, positions)  # (C, k, 4)
    patches = torch.empty(channels, k, 3, side, side, dtype=torch.uint8)
    # roi_align reads samples up to one pixel past the image as the edge pixel: pad the photos with grey
    # beyond every field instead, so each sample past the photo reads grey and each inside it the photo.
    margin = int(max(0, -int(boxes[..., :2].min()), int(boxes[..., 2:].max()) - input_size)) + 1
    flat_images, flat_boxes = images.flatten(), boxes.flatten(0, 1).float() + margin
    unique = torch.unique(flat_images)
    for chunk in unique.split(64):  # a few dozen prepared images in memory at a time
        pixels = prepare_batch(dataset.images[chunk], input_size, train=False) * STD + MEAN  # (B, 3, H, W) in 0-1
        pixels = F.pad(pixels, [margin] * 4, value=GREY / 255)
        slot = torch.full((len(dataset),), -1, dtype=torch.int64)
        slot[chunk] = torch.arange(len(chunk))
        wanted = torch.nonzero(slot[flat_images] >= 0).flatten()
        rois = torch.cat([slot[flat_images[wanted]].float()[:, None], flat_boxes[wanted]], dim=1)
        # aligned=True: box [l, r) samples pixels l ... r - 1 exactly where the patch is the field's size.
        cut = roi_align(pixels, rois, output_size=(side, side), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        patches.view(-1, 3, side, side)[wanted] = (cut.clamp(0, 1) * 255).round().to(torch.uint8)
    bottom, right = row.reach or (input_size, input_size)
    clipped = torch.stack(
        [
            boxes[..., 0].clamp(0),
            boxes[..., 1].clamp(0),
            boxes[..., 2].clamp(max=min(input_size, right)),
            boxes[..., 3].clamp(max=min(input_size, bottom)),
        ],
        dim=-1,
    )
    return LayerTop(values.float(), images, positions, patches, clipped)
