"""The Units tab's long passes, as jobs a worker process runs (see :mod:`playground.serving.workers`), and the
datasets they read.

Each job takes one picklable :class:`UnitJob` and yields picklable records: previews of a feature
visualisation, the tiles of a whole layer, progress through a dataset, then the finished result. The network
travels as plain-pickled bytes (a copy: the server's shared model is never moved into shared memory) and
only as much of it as the job needs: the features up to the unit, or the whole model for fc7.

Datasets (:func:`choose_dataset`): ``"examples"`` (the example photos), the built-in ones of
:data:`playground.data.datasets.DATASETS`, and ``"my zip"``, the session's last upload (a zip or a
folder, from any tab: ``ui.state.UPLOADS`` remembers it); each becomes a :class:`playground.data.sources.DatasetSource`.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from playground.config import get_limits
from playground.data.datasets import DATASETS
from playground.data.sources import DatasetSource
from playground.hooks import model_lock
from playground.layers import cut_at, frozen_copy
from playground.units.featurevis import FeatureVisSettings, visualise
from playground.units.toppatches import top_patches

if TYPE_CHECKING:
    from playground.units.retrieval import Fc7Features

EXAMPLES = "examples"
MY_ZIP = "my zip"


def dataset_names() -> list[str]:
    """What the Units tab's dataset chooser offers, in order."""
    return [EXAMPLES, *DATASETS, MY_ZIP]


def choose_dataset(name: str, *, zip_path: str | None, example_names: tuple[str, ...]) -> DatasetSource:
    """The dataset a Units chooser name means, at most ``units_dataset_images`` of it (and, for "my zip", a
    check that this session has one).

    Raises:
        ValueError: an unknown name, or "my zip" before any zip was uploaded in this session.
    """
    if name not in dataset_names():
        raise ValueError(f"Unknown dataset {str(name)[:40]!r}; choose one of: {', '.join(dataset_names())}.")
    limit = get_limits().units_dataset_images
    if name == EXAMPLES:
        return DatasetSource.examples(example_names, limit=limit)
    if name == MY_ZIP:
        if not zip_path:
            raise ValueError(
                "This session has no zip yet: upload a zip or a folder of class folders in the Train or the "
                "Experiments tab, then come back (or choose the examples or a built-in dataset)."
            )
        return dataclasses.replace(
            DatasetSource.zip(zip_path, name="your zip", limit=limit), max_pixels=get_limits().units_dataset_pixels
        )
    return DatasetSource.built_in(name, limit=limit)


# --- the jobs --------------------------------------------------------------------------------------------


def pack(model: nn.Module, *, trunk: bool = False) -> bytes:
    """``model`` (or, ``trunk``, just its ``features``: ``cut_at(model, "features")``, a
    :class:`playground.layers.Trunk` under the same layer names) as plain-pickle bytes: a copy of its weights,
    never shared memory.

    Copied under the model's exclusive lock: another learner's capture on the same shared model holds its
    hooks there meanwhile, and a hook is neither picklable nor anything a worker should carry.
    """
    with model_lock(model).exclusive():
        return pickle.dumps(cut_at(model, "features") if trunk else model, protocol=pickle.HIGHEST_PROTOCOL)


@dataclasses.dataclass(frozen=True)
class UnitJob:
    kind: str  # "featurevis", "grid", "top_patches" or "fc7"
    network: bytes  # pack(model, trunk=True), or pack(model) for fc7
    layer: str = ""
    channels: tuple[int, ...] = ()
    settings: FeatureVisSettings = FeatureVisSettings()
    dataset: DatasetSource | None = None  # what top_patches and fc7 read
    gpu_seconds: float = 120.0  # what a ZeroGPU slot books for it (ui.runner); every pass here fits


@dataclasses.dataclass(frozen=True)
class GridProgress:
    done: int  # channels finished
    total: int
    picture: Image.Image  # the grid so far (finished tiles, then the ones forming)
    final: bool = False


@dataclasses.dataclass(frozen=True)
class Fc7Map:
    features: Fc7Features
    picture: Image.Image | None  # None for fewer than 5 images


def run_job(job: UnitJob) -> Iterator:
    """What a worker runs for a :class:`UnitJob`: the records of its pass, the result last."""
    network = pickle.loads(job.network)  # our own bytes, made by pack() in the server
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    network.eval()
    if job.kind == "featurevis":
        yield from visualise(frozen_copy(cut_at(network, job.layer)), list(job.channels), job.settings)
    elif job.kind == "grid":
        yield from layer_grid(network, job.layer, list(job.channels), job.settings)
    elif job.kind == "top_patches":
        yield from top_patches(network, job.dataset.open())
    elif job.kind == "fc7":
        # Imported here: matplotlib and scikit-learn cost a worker that only optimises a picture half a second.
        from playground.units.retrieval import Fc7Features, dataset_features, draw_map

        for record in dataset_features(network, job.dataset.open()):
            if isinstance(record, Fc7Features):
                record = Fc7Map(record, None if record.coordinates is None else draw_map(record))
            yield record
    else:
        raise ValueError(f"Unknown kind of unit job {job.kind!r}.")


def layer_grid(model: nn.Module, layer: str, channels: list[int], settings: FeatureVisSettings):
    """Feature visualisations of many channels, optimised a batch at a time; yields the grid as it forms."""
    trunk = frozen_copy(cut_at(model, layer))
    chunk = 64 if settings.size <= 64 else 16  # small pictures batch well; large ones show progress sooner
    done: list[torch.Tensor] = []
    for start in range(0, len(channels), chunk):
        for preview in visualise(trunk, channels[start : start + chunk], settings):
            current = [_tensor(image) for image in preview.images]
            if preview.final:
                done.extend(current)
                current = []
            finished = len(done) == len(channels)
            yield GridProgress(len(done), len(channels), tile_grid(done + current, len(channels)), finished)


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def tile_grid(tiles: list[torch.Tensor], total: int) -> Image.Image:
    """Tiles (3, s, s) uint8 in a near-square grid sized for ``total``, blank where not yet formed."""
    side = tiles[0].shape[-1]
    blank = torch.full((3, side, side), 255, dtype=torch.uint8)
    padded = tiles + [blank] * (total - len(tiles))
    grid = make_grid(torch.stack(padded), nrow=int(np.ceil(np.sqrt(total))), padding=2, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
