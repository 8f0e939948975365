"""Datasets for fine-tuning: the dataset type, the built-in catalogue (Fashion-MNIST, five flowers,
CIFAR-10, a synthetic set), and a stratified split. A user's own zip or folder is read by
:mod:`playground.data.uploads`; :class:`playground.data.sources.DatasetSource` says which of them to read.

Every dataset is decoded once into one uint8 tensor (N, C, H, W) plus labels, the layout the training
engine moves to the GPU in one piece. Every loader of :data:`DATASETS` takes the same keyword
arguments, ``limit`` and ``progress``.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import downloads
from playground.config import Limits, get_limits
from playground.images import IMAGE_EXTENSIONS, load_image

STORE_SIZE = 224  # images are kept at this size (shorter side resized, centre-cropped)
Progress = Callable[[int, int], None]  # (done, total): how far a download or a decode has got


@dataclasses.dataclass(frozen=True)
class DatasetReport:
    classes: tuple[str, ...]
    counts: tuple[int, ...]  # images per class, in class order
    skipped: tuple[tuple[str, str], ...]  # (file, why) for files that were not used
    ignored: int = 0  # macOS metadata, hidden files and folders, silently left out

    def summary(self) -> str:
        parts = [
            f"{len(self.classes)} classes, {sum(self.counts)} images: "
            + ", ".join(f"{c} ({n})" for c, n in zip(self.classes, self.counts))
        ]
        if self.skipped:
            parts.append(
                f"{len(self.skipped)} file(s) skipped: "
                + "; ".join(f"{name}: {why}" for name, why in self.skipped[:10])
            )
        return ". ".join(parts) + "."


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    name: str
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    report: DatasetReport | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop a square: (3, size, size) uint8."""
    scale = size / min(image.size)
    resized = image.resize(
        (max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.Resampling.BILINEAR
    )
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(square, dtype=np.uint8).copy()).permute(2, 0, 1)


def assemble(name, items: list[tuple[str, torch.Tensor]], skipped, ignored, limits: Limits) -> ImageDataset:
    """(class, image) pairs -> dataset, checking the class count and images per class."""
    classes = tuple(sorted({label for label, _ in items}))
    counts = tuple(sum(1 for label, _ in items if label == c) for c in classes)
    report = DatasetReport(classes, counts, tuple(skipped), ignored)
    if not limits.min_classes <= len(classes) <= limits.max_classes:
        raise ValueError(
            f"Found {len(classes)} class folder(s) with images; a dataset needs {limits.min_classes} to {limits.max_classes}. "
            + (report.summary() if classes else "")
        )
    few = [f"{c} ({n})" for c, n in zip(classes, counts) if n < limits.min_per_class]
    if few:
        raise ValueError(
            f"Every class needs at least {limits.min_per_class} usable images; too few in: {', '.join(few)}."
        )
    index = {c: i for i, c in enumerate(classes)}
    images = torch.stack([image for _, image in items])
    labels = torch.tensor([index[label] for label, _ in items], dtype=torch.int64)
    return ImageDataset(name, images, labels, classes, report)


def spread(items: list, limit: int) -> list:
    """``limit`` items taken evenly across a sorted list (so every class folder keeps a share)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


# --- built-in and downloadable datasets ----------------------------------------------------------------


def cache_dir() -> Path:
    """Where downloaded and unpacked datasets live (``PLAYGROUND_DATA_DIR``, else ~/.cache/alexnet-playground)."""
    return Path(os.environ.get("PLAYGROUND_DATA_DIR", Path.home() / ".cache" / "alexnet-playground"))


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _subset(images: torch.Tensor, labels: torch.Tensor, limit: int | None):
    """At most ``limit`` images, drawn at random but the same every time."""
    if not limit:
        return images, labels
    keep = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(len(labels))[:limit]))
    return images[keep], labels[keep]


def fashion_mnist(*, limit: int | None = None, progress: Progress | None = None, train: bool = True) -> ImageDataset:
    """Fashion-MNIST through torchvision: from Debian's ``dataset-fashion-mnist`` files when installed
    (``PLAYGROUND_FASHION_MNIST_DIR`` overrides where), else downloaded. Images are 1 × 28 × 28."""
    from torchvision.datasets import FashionMNIST

    root = cache_dir() / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    debian = Path(os.environ.get("PLAYGROUND_FASHION_MNIST_DIR", DEBIAN_FASHION_DIR))
    if not all((raw / name).is_file() for name in _FASHION_FILES) and all(
        (debian / f"{n}.gz").is_file() for n in _FASHION_FILES
    ):
        raw.mkdir(parents=True, exist_ok=True)
        for name in _FASHION_FILES:  # Debian re-gzipped them, so torchvision's checksums differ: unpack ourselves
            with (
                gzip.open(debian / f"{name}.gz") as source,
                tempfile.NamedTemporaryFile(dir=raw, delete=False) as target,
            ):
                shutil.copyfileobj(source, target)
            os.replace(target.name, raw / name)  # atomic: two sessions at once never see half a file
    try:
        data = FashionMNIST(str(root), train=train, download=not downloads.offline())
    except (RuntimeError, OSError) as error:
        raise ValueError(
            "Fashion-MNIST is not available: install Debian's dataset-fashion-mnist package, or go online once "
            f"so torchvision can download it ({type(error).__name__})."
        ) from None
    images, labels = _subset(data.data, data.targets, limit)
    return ImageDataset("Fashion-MNIST", images[:, None].contiguous(), labels.long(), FASHION_CLASSES)


def cifar10(*, limit: int | None = None, progress: Progress | None = None, train: bool = True) -> ImageDataset:
    """CIFAR-10 through torchvision (downloaded when online). Images are 3 × 32 × 32."""
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(str(cache_dir() / "torchvision"), train=train, download=not downloads.offline())
    except (RuntimeError, OSError) as error:
        raise ValueError(
            f"CIFAR-10 could not be had here (it downloads when the machine is online): {type(error).__name__}."
        ) from None
    images, labels = _subset(
        torch.from_numpy(data.data).permute(0, 3, 1, 2), torch.tensor(data.targets, dtype=torch.int64), limit
    )
    return ImageDataset("CIFAR-10", images.contiguous(), labels, tuple(data.classes))


FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"


def five_flowers(*, limit: int | None = None, progress: Progress | None = None, size: int = STORE_SIZE) -> ImageDataset:
    """The five-flowers photos (daisy, dandelion, roses, sunflowers, tulips), downloaded once when online.

    The archive is read member by member from the download; nothing is extracted.
    """
    archive = cache_dir() / "flower_photos.tgz"
    if not archive.is_file():
        if downloads.offline():
            raise ValueError("Five flowers downloads when the machine is online (about 230 MB); this one is offline.")
        try:
            downloads.download(FLOWERS_URL, archive, progress=progress)
        except ValueError as error:
            raise ValueError(f"Five flowers could not be downloaded: {error}.") from None
    items, skipped = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_EXTENSIONS)]
            if limit:
                members = spread(sorted(members, key=lambda m: m.name), limit)
            for member in members:
                parts = member.name.split("/")
                if len(parts) != 3 or ".." in parts:
                    continue
                data = tar.extractfile(member).read(member.size + 1)
                try:
                    items.append((parts[1], to_tensor(load_image(data), size)))
                except ValueError as error:
                    skipped.append((member.name, str(error)))
    except (tarfile.TarError, OSError, EOFError):
        archive.unlink(missing_ok=True)
        raise ValueError(
            "The five-flowers download was damaged; it has been removed, so the next try starts afresh."
        ) from None
    return assemble("five flowers", items, skipped, 0, get_limits())


# --- a synthetic set that always works ------------------------------------------------------------------

SYNTHETIC_CLASSES = ("vertical stripes", "horizontal stripes", "diagonal stripes", "rings", "checkerboard")


def synthetic(
    *, limit: int | None = None, progress: Progress | None = None, per_class: int = 60, size: int = 64, seed: int = 0
) -> ImageDataset:
    """Oriented stripes, rings and checkerboards with random frequency, phase, colours and noise.

    Telling them apart takes exactly what conv1 filters are: oriented edge and frequency detectors.
    ``limit`` caps the total (``per_class`` images of each class, fewer when the cap says so).
    """
    if limit:
        per_class = max(1, min(per_class, limit // len(SYNTHETIC_CLASSES)))
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images, labels = [], []
    for label, kind in enumerate(SYNTHETIC_CLASSES):
        for _ in range(per_class):
            f = rng.uniform(3, 8)
            phase = rng.uniform(0, 2 * np.pi)
            if kind == "vertical stripes":
                wave = np.sin(2 * np.pi * f * x + phase)
            elif kind == "horizontal stripes":
                wave = np.sin(2 * np.pi * f * y + phase)
            elif kind == "diagonal stripes":
                sign = rng.choice([-1, 1])
                wave = np.sin(2 * np.pi * f * (x + sign * y) / np.sqrt(2) + phase)
            elif kind == "rings":
                cx, cy = rng.uniform(0.3, 0.7, size=2)
                wave = np.sin(2 * np.pi * f * np.hypot(x - cx, y - cy) + phase)
            else:
                wave = np.sin(2 * np.pi * f / 2 * x + phase) * np.sin(2 * np.pi * f / 2 * y + phase)
            a, b = rng.uniform(0, 255, size=(2, 3))
            mix = (wave[..., None] + 1) / 2
            pixels = a * mix + b * (1 - mix) + rng.normal(0, 12, size=(size, size, 3))
            images.append(torch.from_numpy(np.clip(pixels, 0, 255).astype(np.uint8)).permute(2, 0, 1))
            labels.append(label)
    return ImageDataset("synthetic", torch.stack(images), torch.tensor(labels), SYNTHETIC_CLASSES)


# Name -> loader, for the command line and the Train tab. Every loader takes ``limit`` and ``progress``.
DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "synthetic": synthetic,
    "fashion-mnist": fashion_mnist,
    "five-flowers": five_flowers,
    "cifar10": cifar10,
}
# Images in each one's training split, what a loader reads without a limit (to book GPU time before reading).
DATASET_IMAGES: dict[str, int] = {"synthetic": 300, "fashion-mnist": 60_000, "five-flowers": 3_670, "cifar10": 50_000}


def stratified_split(
    labels: torch.Tensor, val_fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices with every class in the same proportion in both (at least one
    validation image per class with two or more images), reproducible from ``seed``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"The validation fraction must be between 0 and 1, got {val_fraction}.")
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = len(members)
        n_val = min(count - 1, max(1, round(count * val_fraction))) if count > 1 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(val)).values
