"""Datasets for fine-tuning: a user's zip of class folders, Fashion-MNIST, five flowers, CIFAR-10, a
synthetic set, and a stratified split.

Every dataset is decoded once into one uint8 tensor (N, C, H, W) plus labels, the layout the training
engine moves to the GPU in one piece. Uploaded archives are read member by member in memory: nothing
is ever extracted to disk.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from playground.config import Limits, get_limits
from playground.images import load_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MAX_RATIO = 100  # uncompressed / compressed size of one member: JPEGs and PNGs are near 1
MIN_PER_CLASS = 3  # at least one validation image and two to train on
STORE_SIZE = 224  # images are kept at this size (shorter side resized, centre-cropped)


@dataclasses.dataclass(frozen=True)
class DatasetReport:
    classes: tuple[str, ...]
    counts: tuple[int, ...]  # images per class, in class order
    skipped: tuple[tuple[str, str], ...]  # (file, why) for files that were not used
    ignored: int = 0  # macOS metadata, hidden files and folders, silently left out

    def summary(self) -> str:
        parts = [f"{len(self.classes)} classes, {sum(self.counts)} images: " + ", ".join(f"{c} ({n})" for c, n in zip(self.classes, self.counts))]
        if self.skipped:
            parts.append(f"{len(self.skipped)} file(s) skipped: " + "; ".join(f"{name}: {why}" for name, why in self.skipped[:10]))
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


def _to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop a square: (3, size, size) uint8."""
    scale = size / min(image.size)
    resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.Resampling.BILINEAR)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(square, dtype=np.uint8).copy()).permute(2, 0, 1)


def _assemble(name, items: list[tuple[str, torch.Tensor]], skipped, ignored, limits: Limits) -> ImageDataset:
    """(class, image) pairs -> dataset, checking the class count and images per class."""
    classes = tuple(sorted({label for label, _ in items}))
    counts = tuple(sum(1 for label, _ in items if label == c) for c in classes)
    report = DatasetReport(classes, counts, tuple(skipped), ignored)
    if not limits.min_classes <= len(classes) <= limits.max_classes:
        raise ValueError(
            f"Found {len(classes)} class folder(s) with images; a dataset needs {limits.min_classes} to {limits.max_classes}. "
            + (report.summary() if classes else "")
        )
    few = [f"{c} ({n})" for c, n in zip(classes, counts) if n < MIN_PER_CLASS]
    if few:
        raise ValueError(f"Every class needs at least {MIN_PER_CLASS} usable images; too few in: {', '.join(few)}.")
    index = {c: i for i, c in enumerate(classes)}
    images = torch.stack([image for _, image in items])
    labels = torch.tensor([index[label] for label, _ in items], dtype=torch.int64)
    return ImageDataset(name, images, labels, classes, report)


# --- a user's zip of class folders ---------------------------------------------------------------------


def _ignored(parts: list[str]) -> bool:
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _check_directory(source, limits: Limits) -> None:
    """Refuse an archive whose end-of-directory record announces too many members or an oversized
    directory, before ``zipfile`` reads the directory into memory."""
    handle = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source
    try:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65_557))  # the record (22 bytes) plus the longest possible comment
        tail = handle.read()
        handle.seek(0)
    finally:
        if handle is not source:
            handle.close()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise ValueError("This file is not a readable zip archive.")
    entries, directory_size = struct.unpack("<H", tail[at + 10 : at + 12])[0], struct.unpack("<I", tail[at + 12 : at + 16])[0]
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:  # a ZIP64 archive: far beyond our member limit
        raise ValueError(f"The archive is enormous (ZIP64); the limit is {limits.max_zip_members:,} members.")
    if entries > limits.max_zip_members or directory_size > limits.max_zip_members * 1024:
        raise ValueError(f"The archive has {entries:,} members; the limit is {limits.max_zip_members:,}.")


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and LZMA members decompress without any size bound in zipfile: refuse them.
        raise ValueError(f"The archive member {name!r} uses a compression method we do not accept; please zip it again (deflate).")
    if "\\" in name:
        raise ValueError(f"The archive has a member with a backslash in its name ({name!r}); please zip the folders again.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"The archive has a member with an absolute path ({name!r}), which is not allowed.")
    if ".." in name.split("/"):
        raise ValueError(f"The archive has a member that points outside its folder ({name!r}), which is not allowed.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(f"The archive contains a symbolic link ({name!r}); only plain files are allowed.")
    if info.flag_bits & 0x1:
        raise ValueError(f"The archive is encrypted ({name!r}); please upload it without a password.")
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1_000_000:
        raise ValueError(
            f"The archive member {name!r} expands {info.file_size / info.compress_size:.0f}-fold, which looks like a zip bomb."
        )


def read_zip(
    source, *, limits: Limits | None = None, size: int = STORE_SIZE, name: str = "your zip", should_stop: Callable[[], bool] | None = None
) -> ImageDataset:
    """Read a zip of class folders (``class/file.jpg``, or all under one top folder) into a dataset.

    The whole archive is refused, with the problem named, if any member has an absolute, backslash or
    ``..`` path, is a symbolic link or encrypted, or if the archive has too many members, too many bytes
    or a suspicious compression ratio. ``__MACOSX/`` and hidden files are ignored. Files that are not
    images, or images that fail the image intake, are skipped and listed in the report.

    Raises:
        ValueError: a sentence naming what is wrong with the archive.
    """
    limits = limits or get_limits()
    try:
        _check_directory(source, limits)
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, struct.error):
        raise ValueError("This file is not a readable zip archive.") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise ValueError(f"The archive has {len(members):,} members; the limit is {limits.max_zip_members:,}.")
        for info in members:
            _check_member(info)
        total = sum(info.file_size for info in members)
        if total > limits.max_zip_bytes:
            raise ValueError(f"The archive would expand to {total / 1e6:,.0f} MB; the limit is {limits.max_zip_bytes / 1e6:,.0f} MB.")
        files, ignored = [], 0
        for info in members:
            parts = [p for p in info.filename.split("/") if p]
            if info.is_dir() or not parts:
                continue
            if _ignored(parts):
                ignored += 1
                continue
            files.append((info, parts))
        if not files:
            raise ValueError("The archive holds no files: put one folder per class, with the images inside.")
        tops = {parts[0] for _, parts in files}
        if len(tops) == 1 and all(len(parts) == 3 for _, parts in files):
            files = [(info, parts[1:]) for info, parts in files]  # flowers/daisy/1.jpg: "flowers" is the root
        wrong = [info.filename for info, parts in files if len(parts) != 2]
        if wrong:
            raise ValueError(
                f"Files must sit in one folder per class (class/image.jpg), but {wrong[0]!r} does not "
                f"({len(wrong)} such file{'s' if len(wrong) > 1 else ''})."
            )
        items, skipped = [], []
        for info, (label, filename) in files:
            if not filename.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((info.filename, "not an image file"))
                continue
            if should_stop is not None and should_stop():
                raise ValueError("Stopped while reading the archive.")
            try:
                with archive.open(info) as handle:
                    data = handle.read(info.file_size + 1)  # never more than the header promised
            except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError, RuntimeError) as error:
                skipped.append((info.filename, f"damaged inside the archive ({type(error).__name__})"))
                continue
            try:
                items.append((label, _to_tensor(load_image(data, limits=limits), size)))
            except ValueError as error:
                skipped.append((info.filename, str(error)))
    return _assemble(name, items, skipped, ignored, limits)


def read_folder(root: str | os.PathLike, *, limits: Limits | None = None, size: int = STORE_SIZE, limit: int | None = None) -> ImageDataset:
    """A local folder of class folders (for the command line and benchmarks, not for uploads)."""
    limits = limits or get_limits()
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of class folders.")
    paths = sorted(p for p in root.glob("*/*") if p.is_file() and not _ignored(p.relative_to(root).parts))
    if limit:
        paths = _spread(paths, limit)
    items, skipped = [], []
    for path in paths:
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append((str(path.relative_to(root)), "not an image file"))
            continue
        try:
            items.append((path.parent.name, _to_tensor(load_image(path, limits=limits), size)))
        except ValueError as error:
            skipped.append((str(path.relative_to(root)), str(error)))
    return _assemble(root.name, items, skipped, 0, limits)


def _spread(paths: list, limit: int) -> list:
    """``limit`` items taken evenly across a sorted list (so every class folder keeps a share)."""
    if len(paths) <= limit:
        return paths
    step = len(paths) / limit
    return [paths[int(i * step)] for i in range(limit)]


# --- built-in and downloadable datasets ----------------------------------------------------------------


def cache_dir() -> Path:
    """Where downloaded and unpacked datasets live (``PLAYGROUND_DATA_DIR``, else ~/.cache/alexnet-playground)."""
    return Path(os.environ.get("PLAYGROUND_DATA_DIR", Path.home() / ".cache" / "alexnet-playground"))


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _offline() -> bool:
    return os.environ.get("PLAYGROUND_OFFLINE", "") not in ("", "0")


def fashion_mnist(*, train: bool = True, limit: int | None = None) -> ImageDataset:
    """Fashion-MNIST through torchvision: from Debian's ``dataset-fashion-mnist`` files when installed
    (``PLAYGROUND_FASHION_MNIST_DIR`` overrides where), else downloaded. Images are 1 × 28 × 28."""
    from torchvision.datasets import FashionMNIST

    root = cache_dir() / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    debian = Path(os.environ.get("PLAYGROUND_FASHION_MNIST_DIR", DEBIAN_FASHION_DIR))
    if not all((raw / name).is_file() for name in _FASHION_FILES) and all((debian / f"{n}.gz").is_file() for n in _FASHION_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for name in _FASHION_FILES:  # Debian re-gzipped them, so torchvision's checksums differ: unpack ourselves
            with gzip.open(debian / f"{name}.gz") as source, tempfile.NamedTemporaryFile(dir=raw, delete=False) as target:
                shutil.copyfileobj(source, target)
            os.replace(target.name, raw / name)  # atomic: two sessions at once never see half a file
    try:
        data = FashionMNIST(str(root), train=train, download=not _offline())
    except (RuntimeError, OSError) as error:
        raise ValueError(
            "Fashion-MNIST is not available: install Debian's dataset-fashion-mnist package, or go online once "
            f"so torchvision can download it ({type(error).__name__})."
        ) from None
    images, labels = data.data, data.targets
    if limit:
        keep = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(len(labels))[:limit]))
        images, labels = images[keep], labels[keep]
    return ImageDataset("Fashion-MNIST", images[:, None].contiguous(), labels.long(), FASHION_CLASSES)


def cifar10(*, train: bool = True, limit: int | None = None) -> ImageDataset:
    """CIFAR-10 through torchvision (downloaded when online). Images are 3 × 32 × 32."""
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(str(cache_dir() / "torchvision"), train=train, download=not _offline())
    except (RuntimeError, OSError) as error:
        raise ValueError(f"CIFAR-10 could not be had here (it downloads when the machine is online): {type(error).__name__}.") from None
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(data.targets, dtype=torch.int64)
    if limit:
        keep = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(len(labels))[:limit]))
        images, labels = images[keep], labels[keep]
    return ImageDataset("CIFAR-10", images, labels, tuple(data.classes))


FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"


def five_flowers(*, limit: int | None = None, size: int = STORE_SIZE, progress: Callable[[int, int], None] | None = None) -> ImageDataset:
    """The five-flowers photos (daisy, dandelion, roses, sunflowers, tulips), downloaded once when online.

    The archive is read member by member from the download; nothing is extracted.
    """
    archive = cache_dir() / "flower_photos.tgz"
    if not archive.is_file():
        if _offline():
            raise ValueError("Five flowers downloads when the machine is online (about 230 MB); this one is offline.")
        _download(FLOWERS_URL, archive, progress)
    items, skipped = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_EXTENSIONS)]
            if limit:
                members = _spread(sorted(members, key=lambda m: m.name), limit)
            for member in members:
                parts = member.name.split("/")
                if len(parts) != 3 or ".." in parts:
                    continue
                data = tar.extractfile(member).read(member.size + 1)
                try:
                    items.append((parts[1], _to_tensor(load_image(data), size)))
                except ValueError as error:
                    skipped.append((member.name, str(error)))
    except (tarfile.TarError, OSError, EOFError):
        archive.unlink(missing_ok=True)
        raise ValueError("The five-flowers download was damaged; it has been removed, so the next try starts afresh.") from None
    return _assemble("five flowers", items, skipped, 0, get_limits())


def _download(url: str, target: Path, progress: Callable[[int, int], None] | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkstemp(dir=target.parent, suffix=".part")[1])  # one per download: no two writers
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as handle:
            total, done = int(response.headers.get("Content-Length", 0)), 0
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ValueError(f"The download failed ({error}); is the machine online?") from None
    os.replace(partial, target)


# --- a synthetic set that always works ------------------------------------------------------------------

SYNTHETIC_CLASSES = ("vertical stripes", "horizontal stripes", "diagonal stripes", "rings", "checkerboard")


def synthetic(*, per_class: int = 60, size: int = 64, seed: int = 0) -> ImageDataset:
    """Oriented stripes, rings and checkerboards with random frequency, phase, colours and noise.

    Telling them apart takes exactly what conv1 filters are: oriented edge and frequency detectors.
    """
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


# Name -> loader, for the command line and the Train tab.
DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "synthetic": synthetic,
    "fashion-mnist": fashion_mnist,
    "five-flowers": five_flowers,
    "cifar10": cifar10,
}


def open_dataset(spec: str, *, limit: int | None = None) -> ImageDataset:
    """A dataset by name (:data:`DATASETS`), a ``.zip`` of class folders, or a folder of class folders."""
    if spec in DATASETS:
        loader = DATASETS[spec]
        return loader() if spec == "synthetic" or limit is None else loader(limit=limit)
    path = Path(spec)
    if path.suffix.lower() == ".zip" and path.is_file():
        return read_zip(path, name=path.stem)
    if path.is_dir():
        return read_folder(path, limit=limit)
    raise ValueError(f"{spec!r} is neither a dataset name ({', '.join(DATASETS)}), a .zip file nor a folder.")


def stratified_split(labels: torch.Tensor, val_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
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

