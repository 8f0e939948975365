"""Where a dataset comes from: one value, read the same way by the tabs, the Units passes and the command lines."""

import io
import os
import zipfile

import pytest
from PIL import Image

from playground.data.sources import DatasetSource


def _zip(path, per_class=4):
    with zipfile.ZipFile(path, "w") as archive:
        for c, name in enumerate(("cats", "dogs")):
            for i in range(per_class):
                buffer = io.BytesIO()
                Image.new("RGB", (40, 30), (80 * c, 20 * i, 100)).save(buffer, format="PNG")
                archive.writestr(f"{name}/{i}.png", buffer.getvalue())
    return str(path)


def _folder(root, per_class=3):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20, 20), (i * 50, 0, 0)).save(root / label / f"{i}.png")
    return root


def test_the_command_lines_data_is_a_name_a_zip_or_a_folder(tmp_path):
    assert DatasetSource.parse("synthetic", limit=50) == DatasetSource.built_in("synthetic", limit=50)
    zipped = DatasetSource.parse(_zip(tmp_path / "pets.zip"), limit=5)
    assert (zipped.kind, zipped.name, zipped.limit) == ("zip", "pets", None)  # a zip is read whole
    folder = DatasetSource.parse(str(_folder(tmp_path / "set", per_class=5)), limit=6)
    assert (folder.kind, folder.name, folder.limit) == ("folder", "set", 6)
    assert len(folder.open()) == 6 and folder.planned_images() == 6
    with pytest.raises(ValueError, match=r"'missing.zip' is neither a dataset name \(synthetic, "):
        DatasetSource.parse("missing.zip")
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'."):
        DatasetSource.built_in("imagenet")


def test_open_reads_each_kind_with_todays_sentences(tmp_path):
    pets = DatasetSource.zip(_zip(tmp_path / "pets.zip"), name="pets").open()
    assert pets.name == "pets" and pets.classes == ("cats", "dogs") and len(pets) == 8
    paths = [(f"{label}/{i}.png", str(tmp_path / "set" / label / f"{i}.png")) for label in "ab" for i in range(3)]
    _folder(tmp_path / "set")
    assert len(DatasetSource.folder(paths, name="set").open()) == 6
    assert len(DatasetSource.built_in("synthetic", limit=20).open()) == 20
    for source, sentence in (
        (DatasetSource.zip(None), "Upload a zip of class folders, or choose one of the built-in datasets."),
        (DatasetSource.zip(str(tmp_path / "swept.zip")), "Your zip is no longer on the server"),
        (DatasetSource.folder(()), "Choose \\(or drop\\) a folder of class folders"),
        (DatasetSource.examples(()), "There are no example photos to look through."),
        (DatasetSource("built-in", "imagenet"), "Unknown dataset 'imagenet'."),
    ):
        with pytest.raises(ValueError, match=sentence):
            source.open()


def test_planned_images_are_known_before_reading(tmp_path):
    assert DatasetSource.zip(_zip(tmp_path / "c.zip", per_class=6)).planned_images() == 12
    assert DatasetSource.zip(None).planned_images() == 0
    assert DatasetSource.built_in("fashion-mnist", limit=2000).planned_images() == 2000
    assert DatasetSource.built_in("synthetic").planned_images() == 300
    assert DatasetSource.folder([("a/1.png", "/up/1.png"), ("b/1.png", None)]).planned_images() == 2
    assert DatasetSource.examples(("coffee", "camera"), limit=1000).planned_images() == 2


def test_a_users_own_data_is_cached_for_that_session_only(tmp_path):
    path = _zip(tmp_path / "x.zip")
    mine = DatasetSource.zip(path, limit=1000)
    assert mine.identity("a") != mine.identity("b")
    before = mine.identity("a")
    os.utime(path, ns=(0, 0))  # another upload at the same path
    assert mine.identity("a") != before
    shared = DatasetSource.built_in("synthetic", limit=1000)
    assert shared.identity("a") == shared.identity("b") != DatasetSource.built_in("synthetic").identity("a")
    examples = DatasetSource.examples(("coffee",))
    assert examples.identity("a") != DatasetSource.examples(("camera",)).identity("a")
