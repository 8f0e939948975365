import gzip
import io
import stat
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from playground import data
from playground.config import Limits


def _jpeg(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def _zip(path, files: dict, *, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in files.items():
            if isinstance(content, zipfile.ZipInfo):
                archive.writestr(content, b"x")
            else:
                archive.writestr(name, content)
    return path


def _good(prefix=""):
    files = {}
    for label, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        for i in range(4):
            files[f"{prefix}{label}/{i}.jpg"] = _jpeg(colour)
    return files


def test_a_zip_of_class_folders(tmp_path):
    dataset = data.read_zip(_zip(tmp_path / "pets.zip", _good()), size=32)
    assert dataset.classes == ("cat", "dog") and dataset.images.shape == (8, 3, 32, 32)
    assert dataset.images.dtype == torch.uint8 and dataset.labels.tolist() == [0] * 4 + [1] * 4
    assert dataset.report.counts == (4, 4) and dataset.report.skipped == ()
    assert dataset.images[0, 0].float().mean() > 150 and dataset.images[-1, 2].float().mean() > 150  # red cats, blue dogs


def test_one_top_folder_and_macos_litter_are_accepted(tmp_path):
    files = _good("flowers/")
    files["__MACOSX/flowers/cat/._0.jpg"] = b"resource fork"
    files["flowers/.DS_Store"] = b"finder"
    files["flowers/cat/.hidden.jpg"] = b"nope"
    dataset = data.read_zip(_zip(tmp_path / "f.zip", files), size=16)
    assert dataset.classes == ("cat", "dog") and len(dataset) == 8
    assert dataset.report.ignored == 3


def test_corrupt_and_foreign_files_are_skipped_and_reported(tmp_path):
    files = _good()
    files["cat/broken.jpg"] = _jpeg()[:100]
    files["dog/notes.txt"] = b"hello"
    files["dog/fake.png"] = b"not a png at all"
    dataset = data.read_zip(_zip(tmp_path / "f.zip", files), size=16)
    skipped = dict(dataset.report.skipped)
    assert len(dataset) == 8
    assert "cat/broken.jpg" in skipped and "Please upload" not in skipped["dog/notes.txt"]
    assert skipped["dog/notes.txt"] == "not an image file"
    assert "not an image we can read" in skipped["dog/fake.png"]
    assert "3 file(s) skipped" in dataset.report.summary()


def _symlink(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _mark_encrypted(path):
    """zipfile cannot write encrypted members, so set the 'encrypted' flag bit in the written bytes."""
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.find(signature)
        while start != -1:
            raw[start + offset] |= 0x1
            start = raw.find(signature, start + 4)
    path.write_bytes(bytes(raw))
    return path


def test_encrypted_archives_are_refused(tmp_path):
    path = _mark_encrypted(_zip(tmp_path / "locked.zip", _good(), compression=zipfile.ZIP_STORED))
    with pytest.raises(ValueError, match="encrypted"):
        data.read_zip(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"../evil.jpg": _jpeg()}, "outside its folder"),
        ({"cat/../../evil.jpg": _jpeg()}, "outside its folder"),
        ({"/etc/evil.jpg": _jpeg()}, "absolute path"),
        ({"C:/evil.jpg": _jpeg()}, "absolute path"),
        ({"cat\\evil.jpg": _jpeg()}, "backslash"),
        ({"cat/link.jpg": _symlink("cat/link.jpg")}, "symbolic link"),
        ({"cat/bomb.jpg": b"\0" * 20_000_000}, "zip bomb"),
    ],
)
def test_hostile_archives_are_refused_whole(tmp_path, extra, message):
    files = {**_good(), **extra}
    with pytest.raises(ValueError, match=message):
        data.read_zip(_zip(tmp_path / "bad.zip", files))
    assert not (tmp_path.parent / "evil.jpg").exists() and not (tmp_path / "evil.jpg").exists()


def test_too_many_members_or_bytes_are_refused(tmp_path):
    path = _zip(tmp_path / "f.zip", _good())
    with pytest.raises(ValueError, match="members; the limit is 5"):
        data.read_zip(path, limits=Limits(max_zip_members=5))
    with pytest.raises(ValueError, match="would expand"):
        data.read_zip(path, limits=Limits(max_zip_bytes=1000))


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.jpg": _jpeg(), "b.jpg": _jpeg()}, "one folder per class"),
        ({"x/y/z/a.jpg": _jpeg(), "x/q/a.jpg": _jpeg()}, "one folder per class"),
        ({f"only/{i}.jpg": _jpeg() for i in range(5)}, "1 class folder"),
        ({**{f"a/{i}.jpg": _jpeg() for i in range(5)}, "b/0.jpg": _jpeg()}, "at least 3 usable images; too few in: b"),
        ({}, "no files"),
    ],
)
def test_bad_layouts_get_a_clear_message(tmp_path, files, message):
    with pytest.raises(ValueError, match=message):
        data.read_zip(_zip(tmp_path / "f.zip", files), size=16)


def test_not_a_zip(tmp_path):
    path = tmp_path / "f.zip"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        data.read_zip(path)


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
        data.open_dataset("imagenet")


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
    dataset = data.open_dataset(str(tmp_path / "set"))
    assert dataset.classes == ("a", "b") and len(dataset) == 6


def test_compression_methods_without_a_size_bound_are_refused(tmp_path):
    path = tmp_path / "bz.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
        for name, content in _good().items():
            archive.writestr(name, content)
    with pytest.raises(ValueError, match="compression method"):
        data.read_zip(path)


def test_the_member_count_is_checked_before_the_directory_is_read(tmp_path, monkeypatch):
    path = _zip(tmp_path / "f.zip", {f"cat/{i}.jpg": b"x" for i in range(30)})
    opened = []
    monkeypatch.setattr(data.zipfile, "ZipFile", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError))
    with pytest.raises(ValueError, match="30 members; the limit is 10"):
        data.read_zip(path, limits=Limits(max_zip_members=10))
    assert not opened


def test_a_damaged_member_is_skipped_not_fatal(tmp_path):
    path = _zip(tmp_path / "f.zip", {**_good(), "cat/extra.jpg": _jpeg()}, compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"cat/extra.jpg") + len("cat/extra.jpg") + 200  # inside that member's data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    dataset = data.read_zip(path, size=16)
    assert len(dataset) == 8 and "damaged inside the archive" in dict(dataset.report.skipped)["cat/extra.jpg"]


def test_reading_can_be_stopped(tmp_path):
    with pytest.raises(ValueError, match="Stopped"):
        data.read_zip(_zip(tmp_path / "f.zip", _good()), should_stop=lambda: True)
