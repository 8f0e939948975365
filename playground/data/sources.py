"""Where a dataset comes from, in one picklable value: a built-in dataset of the catalogue, a zip of class
folders, a folder of them (uploaded file by file, or on this machine), or the example photos.

A :class:`DatasetSource` is what the Train and Experiments tabs send a worker, what the Units tab caches
by (:meth:`DatasetSource.identity`), what both command lines read from ``--data``
(:meth:`DatasetSource.parse`), and what books GPU time before any data is read
(:meth:`DatasetSource.planned_images`). :meth:`DatasetSource.open` reads it, in the worker.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground.data import uploads
from playground.data.datasets import DATASET_IMAGES, DATASETS, STORE_SIZE, ImageDataset, spread, to_tensor

BUILT_IN, ZIP, FOLDER, EXAMPLES = "built-in", "zip", "folder", "examples"  # the kinds of source


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    kind: str  # BUILT_IN, ZIP, FOLDER or EXAMPLES
    name: str  # a built-in dataset's name (a key of DATASETS); else what the data is called on screen
    path: str | None = None  # ZIP: the archive on this machine; FOLDER: a local folder (the command line)
    files: tuple[tuple[str, str | None], ...] = ()  # FOLDER, uploaded: (path inside the folder, server path)
    example_names: tuple[str, ...] = ()  # EXAMPLES: scikit-image photo names
    limit: int | None = None  # at most this many images (None: all of them)
    max_pixels: int | None = None  # a zip's or folder's pictures, as their headers declare them, together

    @classmethod
    def built_in(cls, name: str, *, limit: int | None = None) -> DatasetSource:
        """A dataset of :data:`playground.data.datasets.DATASETS`.

        Raises:
            ValueError: a name that is not in the catalogue.
        """
        if name not in DATASETS:
            raise ValueError(f"Unknown dataset {name!r}.")
        return cls(BUILT_IN, name, limit=limit)

    @classmethod
    def zip(cls, path: str | None, *, name: str = "your zip", limit: int | None = None) -> DatasetSource:
        """A zip of class folders at ``path`` on this machine (an upload's server path)."""
        return cls(ZIP, name, path=path, limit=limit)

    @classmethod
    def folder(cls, files, *, name: str = "your folder") -> DatasetSource:
        """A folder uploaded file by file: (path inside the folder, server path or None) for every file."""
        return cls(FOLDER, name, files=tuple(files))

    @classmethod
    def local_folder(cls, path: str | os.PathLike, *, limit: int | None = None) -> DatasetSource:
        """A folder of class folders on this machine (the command line and benchmarks)."""
        return cls(FOLDER, Path(path).name, path=str(path), limit=limit)

    @classmethod
    def examples(cls, names, *, limit: int | None = None) -> DatasetSource:
        """The example photos (scikit-image's), one class each."""
        return cls(EXAMPLES, "the example photos", example_names=tuple(names), limit=limit)

    @classmethod
    def parse(cls, spec: str, *, limit: int | None = None) -> DatasetSource:
        """What ``--data`` names: a built-in dataset, a ``.zip`` of class folders, or a folder of them.

        ``limit`` applies to a built-in dataset and a folder; a zip is read whole (as it always was).

        Raises:
            ValueError: none of the three.
        """
        if spec in DATASETS:
            return cls.built_in(spec, limit=limit)
        path = Path(spec)
        if path.suffix.lower() == ".zip" and path.is_file():
            return cls.zip(str(path), name=path.stem)
        if path.is_dir():
            return cls.local_folder(path, limit=limit)
        raise ValueError(f"{spec!r} is neither a dataset name ({', '.join(DATASETS)}), a .zip file nor a folder.")

    def own(self) -> bool:
        """Whether this is a user's own data (a zip or a folder), as opposed to data every user shares."""
        return self.kind in (ZIP, FOLDER)

    def open(self) -> ImageDataset:
        """Read the data (in the worker: reading a zip or decoding Fashion-MNIST takes seconds), keeping about
        :attr:`limit` images, taken evenly across it (a zip or folder decodes only those, at least 3 a class).

        Raises:
            ValueError: data that cannot be had here, is not there, or has no usable images (the sentence says
                which).
        """
        dataset = self._read()
        if self.limit and len(dataset) > self.limit and self.kind not in (ZIP, FOLDER):  # those read within it
            keep = torch.tensor(spread(list(range(len(dataset))), self.limit))
            dataset = dataclasses.replace(dataset, images=dataset.images[keep], labels=dataset.labels[keep])
        if len(dataset) == 0:
            raise ValueError(f"{dataset.name} has no images.")
        return dataset

    def _read(self) -> ImageDataset:
        if self.kind == ZIP:
            if not self.path:
                raise ValueError("Upload a zip of class folders, or choose one of the built-in datasets.")
            if not os.path.isfile(self.path):
                raise ValueError(
                    "Your zip is no longer on the server (uploads are swept after a while); upload it again."
                )
            return uploads.read_zip(self.path, name=self.name, limit=self.limit, max_pixels=self.max_pixels)
        if self.kind == FOLDER:
            if self.path:
                return uploads.read_folder(self.path, limit=self.limit)
            if not self.files:
                raise ValueError("Choose (or drop) a folder of class folders, or choose one of the built-in datasets.")
            return uploads.read_files(self.files, name=self.name, limit=self.limit, max_pixels=self.max_pixels)
        if self.kind == EXAMPLES:
            return _example_photos(self.example_names)
        if self.kind != BUILT_IN or self.name not in DATASETS:
            raise ValueError(f"Unknown dataset {self.name!r}.")
        return DATASETS[self.name](limit=self.limit)

    def planned_images(self) -> int:
        """How many images :meth:`open` will give, known before anything is read (to book GPU time).

        Raises:
            ValueError: a zip that is not readable, or has too many members.
        """
        if self.kind == ZIP:
            found = uploads.count_images(self.path) if self.path else 0
        elif self.kind == FOLDER:
            found = len(self.files) if not self.path else sum(1 for p in Path(self.path).glob("*/*") if p.is_file())
        elif self.kind == EXAMPLES:
            found = len(self.example_names)
        else:
            found = DATASET_IMAGES.get(self.name, 0)
        return min(self.limit, found) if self.limit else found

    def identity(self, session: str) -> tuple:
        """This source as part of a cache key. A user's own data is that session's alone, and a zip or a local
        folder is known by its size and time too (the same path may hold another upload later)."""
        if not self.own():
            return (self.kind, self.name, self.example_names, self.limit)
        stat = os.stat(self.path) if self.path and os.path.exists(self.path) else None
        return (self.kind, session, self.path, stat and (stat.st_size, stat.st_mtime_ns), self.files, self.limit)


def _example_photos(names: tuple[str, ...]) -> ImageDataset:
    from skimage import data as photos  # (scikit-image loads in a fraction of a second, but only when asked)

    pictures = [Image.fromarray(np.asarray(getattr(photos, n)())).convert("RGB") for n in names]
    if not pictures:
        raise ValueError("There are no example photos to look through.")
    images = torch.stack([to_tensor(p, STORE_SIZE) for p in pictures])
    return ImageDataset("the example photos", images, torch.arange(len(pictures)), names)
