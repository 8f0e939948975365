"""The Experiments tab over real HTTP, folders uploaded file by file (Train and Experiments), and one long job
per session whether it trains or experiments."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.test_app_train import _join, _photo, make_zip

pytestmark = pytest.mark.http
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def _file(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def make_folder(root, *, per_class=6, top="pets", extra=None, size=(48, 40)):
    """A folder of class folders on disk, and every file's path inside it (as a browser lists them)."""
    paths = []
    for label, colour in COLOURS.items():
        for i in range(per_class):
            relative = f"{top}/{label}/{i}.jpg"
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, tuple(max(0, c - 12 * i) for c in colour)).save(target, "JPEG")
            paths.append(relative)
    for relative, content in (extra or {}).items():
        target = root / relative.replace("..", "up")  # stored somewhere harmless; its claimed path is the test
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        paths.append(relative)
    files = [root / (p.replace("..", "up")) for p in paths]
    return files, paths


def _experiment(client, *args, **kwargs):
    return client.predict(*args, api_name="/experiment", **kwargs)


def test_an_experiment_over_http_and_its_runs_open_in_the_other_tabs(app_url, tmp_path):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    status, report, curves, table, notes, downloads, runs = _experiment(
        client, _file(make_zip(tmp_path / "colours.zip")), "your zip", "relu-vs-tanh", 1, "activation", "", 1
    )
    assert "Done" in status and "2 of 2 runs" in status and report.startswith("3 classes, 18 images")
    assert [row[0] for row in table["data"]] == ["ReLU", "tanh"] and "val. accuracy" in table["headers"]
    chance = table["headers"].index("chance")  # guessing among the zip's three classes, named in every row
    assert [row[chance] for row in table["data"]] == ["33.3% (1/3)"] * 2
    assert "Theirs, not ours" in notes and "six times faster" in notes
    names = sorted(path.rsplit("/", 1)[-1] for path in downloads)
    assert names == ["curves.png", "results.csv", "results.json", "summary.csv"]
    saved = json.loads(Path(next(p for p in downloads if p.endswith(".json"))).read_text())
    assert [run["label"] for run in saved["runs"]] == ["ReLU", "tanh"] and saved["runs"][1]["settings"] == {
        "activation": "tanh"
    }
    assert Image.open(curves).width == 1000
    assert [label.split(" (")[0] for label, _ in runs["choices"]] == ["ReLU", "tanh"]
    chooser, opened = client.predict(runs["choices"][1][1], api_name="/open_run")
    assert "tanh (seed 0) on colours" in opened and chooser["value"].startswith("mine:")
    top, _ = client.predict(chooser["value"], _file(_photo(tmp_path)), api_name="/predict")
    assert {c["label"] for c in top["confidences"]} == {"blue", "green", "red"}
    rows, *_ = client.predict(chooser["value"], api_name="/architecture")
    assert any(row[1] == "Tanh" for row in rows["data"])  # the opened run is the tanh network


def test_bad_experiments_get_a_sentence(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    zipped = _file(make_zip(tmp_path / "c.zip"))
    with pytest.raises(AppError, match="Removing conv2 from a pretrained AlexNet"):
        _experiment(client, zipped, "your zip", "ladder", 1, "drop_conv", "2, 3")
    with pytest.raises(AppError, match="'fast' is not a value lr can take"):
        _experiment(client, zipped, "your zip", "lrn", 1, "lr", "0.1, fast")
    with pytest.raises(AppError, match="Upload a zip"):
        _experiment(client, None, "your zip", "lrn")
    *_, table, notes, _, _ = _experiment(client, zipped, "your zip", "lrn", 1, "activation", "", 1, 1)
    assert "No run reached the target (1% validation error)" in notes and len(table["data"]) == 2
    with pytest.raises(AppError, match="outside its folder"):
        _experiment(client, _file(make_zip(tmp_path / "evil.zip", extra={"../../x.jpg": b"x"})), "your zip", "lrn")


def test_a_folder_uploaded_file_by_file_trains_and_experiments(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    files, paths = make_folder(tmp_path, extra={"pets/red/notes.txt": b"not a picture", "pets/.DS_Store": b"x"})
    uploads = [_file(f) for f in files if f.suffix == ".jpg"]  # as the page sends them: images only, all paths
    status, report, *_ = client.predict(
        None, "your folder", "alexnet_compact", "head", True, 1, 16, 0.001, "adam", True, True, False, 1000, 0.0,
        uploads, json.dumps(paths), api_name="/train",
    )  # fmt: skip
    assert "Done" in status and report.startswith("3 classes, 18 images: blue (6), green (6), red (6)")
    assert "pets/red/notes.txt: not an image file" in report
    with pytest.raises(Exception):  # noqa: B017  (Gradio itself refuses a file of another kind: HTTP 400)
        client.predict(None, "your folder", "alexnet_compact", api_name="/train", folder=[_file(f) for f in files])
    status, report, *_ = _experiment(
        client, None, "your folder", "dropout", 1, "activation", "", 1, 0, 0, uploads, json.dumps(paths)
    )
    assert "Done" in status and report.startswith("3 classes, 18 images")
    for claimed, message in (
        ([*paths[:-1], "../../escape.jpg"], "points outside its folder"),
        ([p.replace("/", "\\") for p in paths], "backslash"),
        (paths[::-1], "do not match the list of their paths"),
        (None, "came without their paths inside the folder"),
    ):
        with pytest.raises(AppError, match=message):
            _experiment(client, None, "your folder", "dropout", 1, "activation", "", 1, 0, 0, uploads,
                        json.dumps(claimed) if claimed else None)  # fmt: skip


def _upload(app_url, files: list[tuple[str, bytes]], **headers):
    parts = [("files", (name, content)) for name, content in files]
    return httpx.post(app_url.rstrip("/") + "/gradio_api/upload", files=parts, headers=headers, timeout=60)


def _photo_bytes(seed: int, side=400) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 60 + seed).convert("RGB").save(buffer, "PNG")  # noise: large files
    return buffer.getvalue()


def test_the_upload_guard_lets_a_folder_of_photos_through_and_refuses_a_hostile_one(app_url):
    photos = [(f"{i}.png", _photo_bytes(i)) for i in range(8)]
    assert sum(len(c) for _, c in photos) > 1024 * 1024  # a request large enough for the guard to read its parts
    passed = _upload(app_url, photos, **{"X-Forwarded-For": "10.9.0.1"})
    assert passed.status_code == 200 and len(passed.json()) == 8
    script = ("run.sh", b"#!/bin/sh\nrm -rf /\n")
    hostile = _upload(app_url, [script, *photos], **{"X-Forwarded-For": "10.9.0.2"})
    assert hostile.status_code == 415 and "Only images, zips and checkpoints" in hostile.text
    hidden = _upload(app_url, [*photos, script], **{"X-Forwarded-For": "10.9.0.2"})  # last, past the first chunk
    assert hidden.status_code != 200


def test_one_long_job_per_session_training_or_experimenting(app_url, client):
    from bench.load import App

    app = App(app_url, httpx.get(app_url.rstrip("/") + "/config", timeout=30).json())
    experiment = app.payload(
        "experiment", None, dataset="synthetic", experiment="drop-conv", **{"epochs (0: the preset's)": 50}
    )
    training = app.payload("train", None, dataset="synthetic", model="alexnet_compact", epochs=50)
    assert _join(app_url, "one-job", experiment).status_code == 200  # joined (and never listened to)
    refused = _join(app_url, "one-job", training)
    assert refused.status_code == 422 and "already have a long job" in refused.text
    top, _ = client.predict("alexnet", _file(_photo_path()), api_name="/predict")  # everyone else keeps working
    assert len(top["confidences"]) == 5


def _photo_path():
    from ui.photos import example_paths

    return example_paths()[0]


class _Request:
    def __init__(self, session):
        self.session_hash = session


def test_the_training_cap_covers_the_whole_experiment_and_stop_keeps_what_finished(tmp_path, monkeypatch):
    import gradio as gr

    from playground.config import Limits
    from ui import long_jobs, state
    from ui.tabs import experiments as experiments_tab
    from ui.tabs import train as train_tab

    monkeypatch.setattr(experiments_tab, "get_limits", lambda: Limits(train_max_seconds=25))
    request = _Request("capped-experiment")
    outputs = list(experiments_tab.experiment(None, "synthetic", "drop-conv", 2, "activation", "", 50, request=request))
    final = outputs[-1]
    assert "Done" in final["status"] and "The time cap was reached" in final["notes"]
    assert len(final["table"]) < 4 * 2  # fewer trainings than the 4 runs x 2 seeds planned
    # One long job per session: while an experiment runs, the same session cannot start a training.
    monkeypatch.setattr(experiments_tab, "get_limits", lambda: Limits())
    running = experiments_tab.experiment(None, "synthetic", "relu-vs-tanh", 1, "activation", "", 50, request=request)
    next(running)
    with pytest.raises(gr.Error, match="already have a training job or an experiment running"):
        next(train_tab.train(None, "synthetic", request=request))
    while "▶" not in (next(running).get("status") or ""):  # training in its worker
        pass
    long_jobs.stop(request)
    started = time.monotonic()
    rest = list(running)
    assert "Stopped" in rest[-1]["status"] and time.monotonic() - started < 10
    assert state.JOBS.last_run(request.session_hash, "experiment") is not None  # the capped one's runs
    state.forget_session(request)
    assert state.JOBS.last_run(request.session_hash, "experiment") is None


def test_offline_the_ladders_description_names_the_transfer_run_for_what_it_is():
    from ui.tabs import experiments

    about = experiments.describe("ladder")
    assert "**AlexNet, random features (no ImageNet weights here)**" in about and "ImageNet transfer**" not in about
