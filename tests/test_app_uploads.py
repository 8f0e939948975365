"""Issue #19.13: one upload per session serves Train, Experiments and Units; the dataset choice follows the
last upload; a new run clears the last run's panels."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from playground.config import get_limits
from playground.data.sources import DatasetSource
from playground.serving import jobs
from tests.test_app_experiments import make_folder
from tests.test_app_train import make_zip
from ui import folders, long_jobs, state
from ui.tabs import experiments as experiments_tab
from ui.tabs import train as train_tab
from ui.tabs import units as units_tab


class _Request:
    def __init__(self, session):
        self.session_hash = session


@pytest.fixture
def local_files(monkeypatch):
    monkeypatch.setattr(folders, "uploaded_path", lambda path: str(path))  # local files stand in for uploads


@pytest.fixture
def session():
    request = _Request("uploads-test")
    yield request
    state.forget_session(request)


def _folder(tmp_path) -> DatasetSource:
    files, paths = make_folder(tmp_path, top="pets")
    return folders.zip_or_folder(None, [str(f) for f in files], json.dumps(paths))


def test_a_folder_uploaded_in_train_switches_every_tab_to_your_folder(tmp_path, local_files):
    """After a folder upload Train said "your zip" and then asked for a zip; Experiments knew nothing of it."""
    store = state.SessionUploads()
    shared = folders.announce(store, "s", _folder(tmp_path), "Train")
    dataset, note, *boxes = folders.follow(store, "Train", shared, "s")
    assert dataset == folders.FOLDER and "the folder **pets** (18 files)" in note
    assert all(isinstance(box, type(gr.skip())) for box in boxes)  # the tab it was made in keeps its boxes
    dataset, note, zip_box, folder_box, paths = folders.follow(store, "Experiments", shared, "s")
    assert dataset == folders.FOLDER and "uploaded in the Train tab" in note
    assert (zip_box, folder_box, paths) == (None, None, "")  # emptied: what Experiments reads is the last upload
    # Then a zip, in Experiments: both tabs say "your zip" now.
    shared = folders.announce(store, "s", folders.zip_or_folder(str(make_zip(tmp_path / "cats.zip")), None, None),
                              "Experiments")  # fmt: skip
    assert folders.follow(store, "Train", shared, "s")[:2] == (
        folders.ZIP,
        folders.describe(store.last("s"), "Experiments"),
    )
    assert "the zip **cats.zip**" in folders.describe(store.last("s"))
    assert folders.follow(store, "Train", shared, "someone else") == (gr.skip(),) * 5  # nobody else's upload


def test_the_same_file_uploaded_again_is_followed_again(tmp_path, local_files):
    """Uploaded, then a built-in set chosen, then the same zip again: the choice must come back to it."""
    store, upload = state.SessionUploads(), folders.zip_or_folder(str(make_zip(tmp_path / "a.zip")), None, None)
    assert folders.announce(store, "s", upload, "Train") != folders.announce(store, "s", upload, "Train")


def test_the_last_upload_from_any_tab_is_what_your_zip_or_your_folder_reads(tmp_path, local_files):
    upload = _folder(tmp_path)
    assert folders.source(folders.FOLDER, None, None, None, 0, upload) == upload
    assert folders.source(folders.FOLDER, None, [], "", 0, upload) == upload  # an emptied box
    zipped = folders.zip_or_folder(str(make_zip(tmp_path / "z.zip")), None, None)
    assert folders.source(folders.ZIP, None, None, None, 0, zipped) == zipped
    # The tab's own upload wins; a choice of the other kind still asks for its upload.
    other = str(make_zip(tmp_path / "other.zip"))
    assert folders.source(folders.ZIP, other, None, None, 0, zipped).path == other
    with pytest.raises(ValueError, match="Upload a zip"):
        folders.source(folders.ZIP, None, None, None, 0, upload)
    with pytest.raises(ValueError, match="Choose \\(or drop\\) a folder"):
        folders.source(folders.FOLDER, None, None, None, 0, zipped)
    assert folders.source("synthetic", None, None, None, 40, upload) == DatasetSource.built_in("synthetic", limit=40)


def test_units_my_zip_reads_a_folder_uploaded_in_another_tab(tmp_path, local_files, session):
    """Units offered only the Train tab's zip: a learner uploaded the same photos again."""
    with pytest.raises(ValueError, match="no zip yet"):
        units_tab._dataset("my zip", session)
    upload = _folder(tmp_path)
    state.UPLOADS.remember(session.session_hash, upload)
    chosen = units_tab._dataset("my zip", session)
    limits = get_limits()
    assert (chosen.kind, chosen.files) == ("folder", upload.files)
    assert (chosen.limit, chosen.max_pixels) == (limits.units_dataset_images, limits.units_dataset_pixels)
    assert len(chosen.open()) == 18
    zipped = folders.zip_or_folder(str(make_zip(tmp_path / "z.zip")), None, None)
    state.UPLOADS.remember(session.session_hash, zipped)
    assert units_tab._dataset("my zip", session).path == zipped.path
    state.forget_session(session)  # the tab closed: its upload is gone
    assert state.UPLOADS.last(session.session_hash) is None


def test_a_job_remembers_its_upload_only_once_the_worker_has_read_it(tmp_path, local_files):
    """An API client's zip, sent with /train: a zip refused as unreadable is not offered to the other tabs."""
    upload = folders.zip_or_folder(str(make_zip(tmp_path / "z.zip")), None, None)
    records = [long_jobs.Waiting(1.0), long_jobs.Stopped()]
    assert list(folders.once_read(iter(records), "api", upload)) == records
    assert state.UPLOADS.last("api") is None
    ready = jobs.DatasetReady("3 classes, 18 images")
    assert list(folders.once_read(iter([ready]), "api", upload)) == [ready]
    assert state.UPLOADS.last("api") == upload
    state.forget("api")


@pytest.fixture(scope="module")
def demo():
    import app

    return app.build_demo()


def _ids(blocks):
    return {getattr(block, "elem_id", None) for block in blocks}


def test_an_upload_in_either_tab_reaches_both_tabs_dataset_choices(demo):
    """The page's wiring: each upload event records the upload in one shared state, whose change moves both
    tabs' dataset choices and notes."""
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    shared = {
        by_name[name].outputs[0]._id
        for name in ("remember_zip", "remember_folder", "remember_experiment_zip", "remember_experiment_folder")
    }
    assert len(shared) == 1
    followers = [fn for fn in demo.fns.values() if any(tuple(t) in {(*shared, "change")} for t in fn.targets)]
    outputs = set().union(*(_ids(fn.outputs) for fn in followers))
    assert {"train-dataset", "train-upload-note", "experiment-dataset", "experiment-upload-note"} <= outputs
    assert {"train-zip", "train-folder", "experiment-zip", "experiment-folder"} <= outputs


def test_pressing_train_clears_the_last_runs_panels(demo, session):
    """The last run's misclassified list stayed while a new run was going."""
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    assert {"train-mistakes", "train-mistakes-note", "train-downloads", "train-confusion"} <= _ids(train.outputs)
    run = train_tab.train(None, "synthetic", "alexnet_compact", "head", True, 1, request=session)
    first = next(run)
    long_jobs.stop(session)
    list(run)
    assert {k: first[k] for k in ("confusion", "per_class", "filters", "downloads", "curves")} == dict.fromkeys(
        ("confusion", "per_class", "filters", "downloads", "curves")
    )
    assert (first["mistakes"], first["mistakes_note"], first["report"], first["true_class"]) == ([], "", "", "")


def test_starting_an_experiment_clears_the_last_ones_panels(session):
    run = experiments_tab.experiment(None, "synthetic", "relu-vs-tanh", 1, epochs=1, limit=100, request=session)
    first = next(run)
    long_jobs.stop(session)
    list(run)
    assert (first["curves"], first["table"], first["downloads"], first["report"], first["notes"]) == (
        None,
        None,
        None,
        "",
        "",
    )


@pytest.mark.http
def test_a_zip_uploaded_in_experiments_trains_in_train_without_a_second_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    client.predict(handle_file(str(make_zip(tmp_path / "colours.zip"))), api_name="/remember_experiment_zip")
    status, report, *_ = client.predict(None, "your zip", "alexnet_compact", "head", True, 1, api_name="/train")
    assert "Done" in status and report.startswith("3 classes, 18 images")


def test_the_last_uploads_are_bounded_in_sessions_and_freed_with_them(tmp_path):
    """API callers never close a tab: only the newest sessions' uploads are kept."""
    store, upload = state.SessionUploads(sessions=2), DatasetSource.zip(str(make_zip(tmp_path / "a.zip")))
    for session in "abc":
        store.remember(session, upload)
    assert store.last("a") is None and store.last("c") is upload
    store.remember("d", DatasetSource.built_in("synthetic"))  # nobody's upload: not kept
    assert store.last("d") is None
    store.forget("c")
    assert store.last("c") is None and store.last("b") is upload
