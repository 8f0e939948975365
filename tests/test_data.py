import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from playground.data import datasets as data
from playground.data.sources import DatasetSource


def _idx(path, array: np.ndarray):
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_debian_style_files(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    debian.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _idx(debian / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(debian / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    monkeypatch.setenv("PLAYGROUND_FASHION_MNIST_DIR", str(debian))
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PLAYGROUND_OFFLINE", "1")
    train = data.fashion_mnist(train=True)
    assert train.images.shape == (30, 1, 28, 28) and train.classes[9] == "Ankle boot"
    assert train.labels.tolist()[:11] == list(range(10)) + [0]
    assert data.fashion_mnist(train=False, limit=4).images.shape == (4, 1, 28, 28)


def test_unavailable_datasets_say_so_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PLAYGROUND_OFFLINE", "1")
    with pytest.raises(ValueError, match="dataset-fashion-mnist"):
        data.fashion_mnist()
    with pytest.raises(ValueError, match="online"):
        data.five_flowers()
    with pytest.raises(ValueError, match="CIFAR-10"):
        data.cifar10()
    with pytest.raises(ValueError, match="neither a dataset name"):
        DatasetSource.parse("imagenet")


def test_synthetic_set_is_balanced_and_reproducible():
    a, b = data.synthetic(per_class=7, size=32), data.synthetic(per_class=7, size=32)
    assert a.images.shape == (35, 3, 32, 32) and torch.equal(a.images, b.images)
    assert torch.bincount(a.labels).tolist() == [7] * 5
    assert not torch.equal(a.images, data.synthetic(per_class=7, size=32, seed=1).images)


def test_stratified_split_keeps_class_proportions():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 2)
    train, val = data.stratified_split(labels, 0.2, seed=3)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(82))
    assert torch.bincount(labels[val]).tolist() == [10, 6, 1]
    again = data.stratified_split(labels, 0.2, seed=3)
    assert torch.equal(again[1], val) and not torch.equal(data.stratified_split(labels, 0.2, seed=4)[1], val)
    with pytest.raises(ValueError):
        data.stratified_split(labels, 1.5)


def test_local_folders(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (i * 50, 0, 0)).save(tmp_path / "set" / label / f"{i}.png")
    dataset = DatasetSource.parse(str(tmp_path / "set")).open()
    assert dataset.classes == ("a", "b") and len(dataset) == 6 and dataset.name == "set"


def test_every_built_in_dataset_has_its_size():
    assert set(data.DATASET_IMAGES) == set(data.DATASETS)
    assert len(data.synthetic()) == data.DATASET_IMAGES["synthetic"]
