"""A network with two planted conv1 units and a dataset that shows each pattern in a few known images."""

from __future__ import annotations

import torch

from playground import models
from playground.data.datasets import ImageDataset

SIZE = 64
BLOB = 0  # conv1 channel that looks for a red blob
EDGE = 1  # conv1 channel that looks for a vertical edge, dark on the left and bright on the right
BLOB_IMAGES = (3, 11, 17, 24, 30)
EDGE_IMAGES = (5, 8, 20, 27, 33)
RED = (200, 70, 70)  # not fully saturated: an optimised picture can still do better than the photos


def planted_model(name: str = "alexnet_compact") -> torch.nn.Module:
    model = models.build(name, num_classes=3, generator=torch.Generator().manual_seed(0)).eval()
    conv = model.features[0]
    y, x = torch.meshgrid(torch.arange(11.0) - 5, torch.arange(11.0) - 5, indexing="ij")
    blob = torch.exp(-(x**2 + y**2) / 8)
    with torch.no_grad():
        conv.weight[BLOB] = torch.stack([blob, -blob / 2, -blob / 2]) * 0.1  # red minus the rest
        conv.weight[EDGE] = (torch.sign(x) * (y.abs() <= 4)).expand(3, -1, -1) * 0.05  # right minus left
        conv.bias[BLOB] = conv.bias[EDGE] = 0.0
    return model


def planted_dataset(count: int = 40) -> ImageDataset:
    generator = torch.Generator().manual_seed(1)
    images = (118 + 20 * torch.randn(count, 3, SIZE, SIZE, generator=generator)).clamp(0, 255)
    y, x = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for i in (i for i in BLOB_IMAGES if i < count):
        cy, cx = 12 + (i * 7) % 40, 12 + (i * 13) % 40
        disc = ((y - cy) ** 2 + (x - cx) ** 2) <= 16
        images[i][:, disc] = torch.tensor(RED, dtype=torch.float32)[:, None]
    for i in (i for i in EDGE_IMAGES if i < count):
        column = 16 + (i * 5) % 32
        images[i][:, :, :column] = 40
        images[i][:, :, column:] = 215
    labels = torch.tensor([i % 3 for i in range(count)])
    return ImageDataset("planted", images.round().to(torch.uint8), labels, ("a", "b", "c"))
