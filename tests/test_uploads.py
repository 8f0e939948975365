import io
import stat
import zipfile

import pytest
import torch
from PIL import Image

from playground.config import Limits
from playground.data import uploads


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
    dataset = uploads.read_zip(_zip(tmp_path / "pets.zip", _good()), size=32)
    assert dataset.classes == ("cat", "dog") and dataset.images.shape == (8, 3, 32, 32)
    assert dataset.images.dtype == torch.uint8 and dataset.labels.tolist() == [0] * 4 + [1] * 4
    assert dataset.report.counts == (4, 4) and dataset.report.skipped == ()
    assert (
        dataset.images[0, 0].float().mean() > 150 and dataset.images[-1, 2].float().mean() > 150
    )  # red cats, blue dogs


def test_one_top_folder_and_macos_litter_are_accepted(tmp_path):
    files = _good("flowers/")
    files["__MACOSX/flowers/cat/._0.jpg"] = b"resource fork"
    files["flowers/.DS_Store"] = b"finder"
    files["flowers/cat/.hidden.jpg"] = b"nope"
    dataset = uploads.read_zip(_zip(tmp_path / "f.zip", files), size=16)
    assert dataset.classes == ("cat", "dog") and len(dataset) == 8
    assert dataset.report.ignored == 3


def test_corrupt_and_foreign_files_are_skipped_and_reported(tmp_path):
    files = _good()
    files["cat/broken.jpg"] = _jpeg()[:100]
    files["dog/notes.txt"] = b"hello"
    files["dog/fake.png"] = b"not a png at all"
    dataset = uploads.read_zip(_zip(tmp_path / "f.zip", files), size=16)
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
        uploads.read_zip(path)


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
        uploads.read_zip(_zip(tmp_path / "bad.zip", files))
    assert not (tmp_path.parent / "evil.jpg").exists() and not (tmp_path / "evil.jpg").exists()


def test_too_many_members_or_bytes_are_refused(tmp_path):
    path = _zip(tmp_path / "f.zip", _good())
    with pytest.raises(ValueError, match="members; the limit is 5"):
        uploads.read_zip(path, limits=Limits(max_zip_members=5))
    with pytest.raises(ValueError, match="would expand"):
        uploads.read_zip(path, limits=Limits(max_zip_bytes=1000))


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
        uploads.read_zip(_zip(tmp_path / "f.zip", files), size=16)


def test_not_a_zip(tmp_path):
    path = tmp_path / "f.zip"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        uploads.read_zip(path)


def test_compression_methods_without_a_size_bound_are_refused(tmp_path):
    path = tmp_path / "bz.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
        for name, content in _good().items():
            archive.writestr(name, content)
    with pytest.raises(ValueError, match="compression method"):
        uploads.read_zip(path)


def test_the_member_count_is_checked_before_the_directory_is_read(tmp_path, monkeypatch):
    path = _zip(tmp_path / "f.zip", {f"cat/{i}.jpg": b"x" for i in range(30)})
    opened = []
    monkeypatch.setattr(
        uploads.zipfile, "ZipFile", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError)
    )
    with pytest.raises(ValueError, match="30 members; the limit is 10"):
        uploads.read_zip(path, limits=Limits(max_zip_members=10))
    assert not opened


def test_a_damaged_member_is_skipped_not_fatal(tmp_path):
    path = _zip(tmp_path / "f.zip", {**_good(), "cat/extra.jpg": _jpeg()}, compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"cat/extra.jpg") + len("cat/extra.jpg") + 200  # inside that member's data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    dataset = uploads.read_zip(path, size=16)
    assert len(dataset) == 8 and "damaged inside the archive" in dict(dataset.report.skipped)["cat/extra.jpg"]


def test_reading_can_be_stopped(tmp_path):
    with pytest.raises(ValueError, match="Stopped"):
        uploads.read_zip(_zip(tmp_path / "f.zip", _good()), should_stop=lambda: True)


# --- a folder that arrives file by file (a browser's directory upload): the same intake as a zip ---------


def _folder(tmp_path, files: dict):
    """Write each file under its own random-looking name, as an upload server stores them, and pair it with
    its path inside the folder, as the browser names it."""
    pairs = []
    for i, (relative, content) in enumerate(files.items()):
        stored = tmp_path / "uploads" / f"{i:04d}" / relative.rsplit("/", 1)[-1].replace("\\", "_")
        stored.parent.mkdir(parents=True)
        stored.write_bytes(content)
        pairs.append((relative, str(stored)))
    return pairs


def test_a_folder_gives_the_same_dataset_as_its_zip(tmp_path):
    files = {**_good("pets/"), "pets/.DS_Store": b"finder", "pets/cat/notes.txt": b"hello", "pets/dog/x.jpg": b"bad"}
    folder = uploads.read_files(_folder(tmp_path, files), size=16, name="pets")
    zipped = uploads.read_zip(_zip(tmp_path / "pets.zip", files), size=16, name="pets")
    assert folder.classes == zipped.classes == ("cat", "dog")
    assert torch.equal(folder.images, zipped.images) and torch.equal(folder.labels, zipped.labels)
    assert folder.report == zipped.report  # the same files skipped for the same reasons, the same ignored
    assert dict(folder.report.skipped)["pets/cat/notes.txt"] == "not an image file"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"../evil.jpg": _jpeg()}, "folder has a file that points outside its folder"),
        ({"cat/../../evil.jpg": _jpeg()}, "outside its folder"),
        ({"/etc/evil.jpg": _jpeg()}, "absolute path"),
        ({"cat\\evil.jpg": _jpeg()}, "backslash"),
    ],
)
def test_a_hostile_folder_is_refused_whole(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        uploads.read_files(_folder(tmp_path, {**_good(), **extra}))


def test_a_folder_is_held_to_the_zip_limits(tmp_path):
    pairs = _folder(tmp_path, _good())
    with pytest.raises(ValueError, match="The folder has 8 files; the limit is 5"):
        uploads.read_files(pairs, limits=Limits(max_zip_members=5))
    with pytest.raises(ValueError, match="The folder holds 0 MB; the limit is 0 MB"):
        uploads.read_files(pairs, limits=Limits(max_zip_bytes=1000))
    with pytest.raises(ValueError, match="one folder per class"):
        uploads.read_files(_folder(tmp_path / "flat", {"a.jpg": _jpeg(), "b.jpg": _jpeg()}))
    with pytest.raises(ValueError, match="did not arrive"):
        uploads.read_files([("cat/0.jpg", str(tmp_path / "missing.jpg"))])
    with pytest.raises(ValueError, match="path inside the folder"):
        uploads.read_files([(None, pairs[0][1])])
    with pytest.raises(ValueError, match="Stopped while reading the folder"):
        uploads.read_files(pairs, should_stop=lambda: True)


@pytest.mark.parametrize(
    "label, why",
    [("a\x00b", "control character"), ("x" * 600, "too long"), ("花" * 86, "too long"), ("tab\there", "control")],
)
def test_a_class_name_that_could_not_be_saved_is_refused_at_the_door(tmp_path, label, why):
    """Names become file names and checkpoint metadata: refused before any training, not when saving after it."""
    files = {**_good(), **{f"{label}/{i}.jpg": _jpeg() for i in range(4)}}
    with pytest.raises(ValueError, match=why) as refused:
        uploads.read_files(_folder(tmp_path, files), size=32)
    assert len(str(refused.value)) < 200  # the name is cut short in the sentence, never quoted whole
    if "\x00" not in label:  # a zip's names cannot hold a NUL (zipfile cuts them there)
        with pytest.raises(ValueError, match=why):
            uploads.read_zip(_zip(tmp_path / "named.zip", files), size=32)


def test_a_dataset_name_that_could_not_be_saved_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dataset name .* too long"):
        uploads.read_zip(_zip(tmp_path / "pets.zip", _good()), size=32, name="花" * 86)
    assert uploads.read_zip(_zip(tmp_path / "ok.zip", _good()), size=32, name="花" * 33).name == "花" * 33


def _one_bit_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_read_decodes_at_most_its_limit_of_files_taken_evenly(tmp_path):
    files = {f"{label}/{i}.jpg": _jpeg() for label in ("cat", "dog") for i in range(20)}
    dataset = uploads.read_zip(_zip(tmp_path / "pets.zip", files), size=32, limit=8)
    assert len(dataset) == 8 and dataset.labels.tolist() == [0] * 4 + [1] * 4


def test_a_pixel_budget_counts_what_the_headers_declare_not_the_files_bytes(tmp_path):
    """Tiny files that declare huge pictures (a 1-bit PNG of 36 MP is a few kB, and a second to decode)."""
    files = {f"{label}/{i}.png": _one_bit_png(6000) for label in ("a", "b") for i in range(3)}
    archive = _zip(tmp_path / "huge.zip", files)
    assert archive.stat().st_size < 200_000
    with pytest.raises(uploads.TooManyPixels, match="more than 100 megapixels together"):
        uploads.read_zip(archive, size=32, max_pixels=100_000_000)


def test_a_jpeg_is_charged_at_the_scale_it_is_decoded():
    photo = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(photo, format="JPEG")
    limits = Limits()
    assert uploads._decoded_pixels(photo.getvalue(), limits) == 4 * limits.working_pixels  # draft mode
    assert uploads._decoded_pixels(_one_bit_png(3000), limits) == 9_000_000  # a PNG in full
