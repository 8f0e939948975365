"""The whole network's view of a dataset: its penultimate-layer ("fc7") features, a 2-D map of them, and
the images nearest a photo by fc7 distance (Krizhevsky et al. 2012, figure 4).

The map is scikit-learn's t-SNE on the features' first 50 principal components (its documented recipe
for high-dimensional data). openTSNE took 5 times longer on 1,000 images with one thread, and UMAP
(umap-learn) needs numba, whose compilation made its first map take 16 s; README, "Units".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from playground.data.datasets import ImageDataset, to_tensor
from playground.hooks import temporary_hooks
from playground.render import label_font
from playground.training.finetune import prepare_batch

THUMB_PX = 48  # thumbnails kept per image, for the map and the neighbours
_PALETTE = (np.asarray(matplotlib.colormaps["tab20"].colors) * 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Fc7Progress:
    done: int
    total: int
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Fc7Features:
    """A dataset as the network's penultimate layer sees it, with what the map and retrieval need."""

    features: torch.Tensor  # (N, D) float32: the input of the last linear layer
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    thumbnails: torch.Tensor  # (N, 3, THUMB_PX, THUMB_PX) uint8
    coordinates: np.ndarray | None  # (N, 2) t-SNE positions; None for fewer than 5 images
    dataset: str
    seconds: float

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.features, self.labels, self.thumbnails)) + (
            0 if self.coordinates is None else self.coordinates.nbytes
        )


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's final linear layer, whose input is the penultimate layer's output (fc7 in AlexNet)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("This model has no fully connected layer, so it has no fc7 features.")
    return linears[-1]


def fc7(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) penultimate-layer features of a normalised batch (the last linear layer's input)."""
    head = last_linear(model)
    name = next(n for n, m in model.named_modules() if m is head)
    seen: list[torch.Tensor] = []
    # temporary_hooks: removed afterwards, and deaf to other users' passes through a shared model.
    with temporary_hooks(model, {name: lambda module, inputs, output: seen.append(inputs[0].clone())}):
        with torch.inference_mode():
            model(x)
    return seen[0].float()


def query_batch(photo: Image.Image, input_size: int = 224) -> torch.Tensor:
    """A photo prepared exactly as a dataset image is: kept (square-cropped) at its own size up to the stored
    224 px, then resized and normalised as the batch pipeline does, so a dataset image finds itself at 0."""
    side = min(input_size, *photo.size)
    return prepare_batch(to_tensor(photo.convert("RGB"), side)[None], input_size, train=False)


def dataset_features(
    model: nn.Module, dataset: ImageDataset, *, batch_size: int = 32, input_size: int = 224, seed: int | None = None
) -> Iterator[Fc7Progress | Fc7Features]:
    """Yield progress while the dataset goes through the model, then its :class:`Fc7Features` with the map
    (``seed``: see :func:`tsne`).

    Raises:
        ValueError: an empty dataset.
    """
    total = len(dataset)
    if total == 0:
        raise ValueError(f"{dataset.name} has no images to map.")
    started = time.monotonic()
    chunks, thumbs = [], []
    yield Fc7Progress(0, total, f"fc7 features of {total} images of {dataset.name}…")
    for start in range(0, total, batch_size):
        pixels = dataset.images[start : start + batch_size]
        chunks.append(fc7(model, prepare_batch(pixels, input_size, train=False)))
        thumbs.append(thumbnails(pixels))
        yield Fc7Progress(min(start + batch_size, total), total, f"{min(start + batch_size, total)} of {total} images…")
    features = torch.cat(chunks)
    coordinates = None
    if total >= 5:
        yield Fc7Progress(total, total, "Laying out the map (t-SNE)…")
        coordinates = tsne(features.numpy(), seed=seed)
    yield Fc7Features(
        features, dataset.labels.clone(), dataset.classes, torch.cat(thumbs), coordinates, dataset.name,
        time.monotonic() - started,
    )  # fmt: skip


def thumbnails(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, 3, THUMB_PX, THUMB_PX) uint8."""
    x = pixels.float()
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    x = torch.nn.functional.interpolate(x, size=(THUMB_PX, THUMB_PX), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def tsne(features: np.ndarray, *, seed: int | None = None) -> np.ndarray:
    """(N, 2) t-SNE positions of (N, D) features, through PCA to at most 50 dimensions first.

    Without a ``seed`` t-SNE starts from the principal components (the same map every time); with one, from
    random positions drawn from it: another layout of the same neighbourhoods. (From the principal components
    a seed changes nothing: that start has no randomness in it.)
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    reduced = PCA(min(50, n, features.shape[1]), random_state=0).fit_transform(features)
    perplexity = float(min(30, max(1, (n - 1) / 3)))  # t-SNE needs perplexity < n
    init = "pca" if seed is None else "random"
    return TSNE(2, perplexity=perplexity, init=init, random_state=seed or 0).fit_transform(reduced)


@dataclasses.dataclass(frozen=True)
class Neighbour:
    index: int  # in the dataset
    distance: float  # Euclidean, in fc7 space
    label: str
    thumbnail: Image.Image


def neighbours(features: Fc7Features, query: torch.Tensor, k: int = 8) -> list[Neighbour]:
    """The ``k`` dataset images nearest ``query`` ((D,) fc7 features), nearest first."""
    # From the differences, in float64: cdist's |a|² + |b|² - 2 a·b drifts with the norm (0.05 at fc7 norms of
    # 150), so an image would not be 0 from itself.
    distances = torch.linalg.vector_norm(features.features - query.float()[None], dim=1, dtype=torch.float64)
    order = torch.argsort(distances, stable=True)[: min(k, len(distances))]
    return [
        Neighbour(
            int(i), float(distances[i]), features.classes[int(features.labels[i])], _picture(features.thumbnails[i])
        )
        for i in order
    ]


def _picture(pixels: torch.Tensor) -> Image.Image:
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy())


def draw_map(features: Fc7Features, *, side: int = 900) -> Image.Image:
    """Every image as a thumbnail at its t-SNE position, framed in its class's colour, with a legend."""
    if features.coordinates is None:
        raise ValueError(f"{features.dataset} has fewer than 5 images: too few for a map.")
    thumb = int(np.clip(side / np.sqrt(len(features.labels)) / 2, 32, 96))  # larger for fewer images
    legend_height = 22 * ((len(features.classes) + 3) // 4) + 10
    canvas = Image.new("RGB", (side, side + legend_height), "white")
    draw = ImageDraw.Draw(canvas)
    xy = features.coordinates
    low, high = xy.min(0), xy.max(0)
    span = np.where(high - low > 0, high - low, 1.0)
    positions = ((xy - low) / span * (side - thumb - 8) + 4).astype(int)
    for (x, y), label, pixels in zip(positions, features.labels.tolist(), features.thumbnails):
        colour = tuple(int(c) for c in _PALETTE[label % len(_PALETTE)])
        draw.rectangle([x - 3, y - 3, x + thumb + 2, y + thumb + 2], fill=colour)
        canvas.paste(_picture(pixels).resize((thumb, thumb)), (int(x), int(y)))
    font = label_font(14)
    for i, name in enumerate(features.classes):
        x, y = 10 + (i % 4) * (side // 4), side + 8 + 22 * (i // 4)
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(int(c) for c in _PALETTE[i % len(_PALETTE)]))
        draw.text((x + 20, y - 1), name[:28], fill="black", font=font)
    return canvas
