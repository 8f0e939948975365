"""Pairing a browser's folder upload (files under their bare names) with the paths the page recorded."""

import json

import pytest

from ui import folders


@pytest.fixture(autouse=True)
def local_files(monkeypatch):
    monkeypatch.setattr(folders, "uploaded_path", lambda path: str(path))  # local files stand in for uploads


def test_each_upload_gets_its_path_even_when_names_repeat_across_classes():
    paths = ["pets/cat/1.jpg", "pets/cat/notes.txt", "pets/dog/1.jpg", "pets/dog/my photo?.jpg", "pets/.DS_Store"]
    # What the server stored: the images only (the page leaves other kinds out), each under its bare name,
    # with the characters Gradio strips from names gone.
    uploaded = ["/up/a1/1.jpg", "/up/b2/1.jpg", "/up/c3/my photo.jpg"]
    assert folders.pair(uploaded, json.dumps(paths)) == (
        ("pets/cat/1.jpg", "/up/a1/1.jpg"),
        ("pets/cat/notes.txt", None),
        ("pets/dog/1.jpg", "/up/b2/1.jpg"),
        ("pets/dog/my photo?.jpg", "/up/c3/my photo.jpg"),
        ("pets/.DS_Store", None),
    )


@pytest.mark.parametrize(
    "uploaded, paths, message",
    [
        ([], ["a/b.jpg"], "Choose \\(or drop\\) a folder"),
        (["/up/1.jpg"], None, "came without their paths"),
        (["/up/1.jpg"], {"a": 1}, "came without their paths"),
        (["/up/1.jpg"], ["x" * 2000], "came without their paths"),
        (["/up/1.jpg", "/up/2.jpg"], ["c/2.jpg", "c/1.jpg"], "do not match"),
        (["/up/9.jpg"], ["c/1.jpg"], "do not match"),
    ],
)
def test_uploads_that_do_not_fit_their_paths_get_a_sentence(uploaded, paths, message):
    with pytest.raises(ValueError, match=message):
        folders.pair(uploaded, json.dumps(paths) if paths is not None else None)


def test_a_folder_too_large_is_refused_before_any_file_is_looked_at(monkeypatch):
    from playground.config import Limits

    monkeypatch.setattr(folders, "get_limits", lambda: Limits(max_zip_members=3))
    monkeypatch.setattr(folders, "uploaded_path", lambda path: pytest.fail("looked at a file"))
    with pytest.raises(ValueError, match="The folder has 4 files; the limit is 3"):
        folders.pair(["/u/1.jpg"], json.dumps([f"c/{i}.jpg" for i in range(4)]))


def test_the_tabs_choice_becomes_one_dataset_source():
    from playground.data.sources import DatasetSource

    files = folders.source(folders.FOLDER, None, ["/up/1.jpg"], json.dumps(["pets/cat/1.jpg"]), 100)
    assert files == DatasetSource.folder((("pets/cat/1.jpg", "/up/1.jpg"),), name="pets")  # a folder is read whole
    assert folders.source(folders.ZIP, "/up/x/flowers.zip", None, None, 100) == DatasetSource.zip(
        "/up/x/flowers.zip", name="flowers"
    )
    assert folders.source("synthetic", None, None, None, 40) == DatasetSource.built_in("synthetic", limit=40)
    assert folders.source("synthetic", None, None, None, 0).limit is None
    with pytest.raises(ValueError, match="Upload a zip of class folders, choose a folder"):
        folders.source(folders.ZIP, None, None, None, 0)
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
        folders.source("imagenet", None, None, None, 0)
