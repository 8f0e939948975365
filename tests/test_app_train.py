"""The Train tab over real HTTP: train from a zip, refuse a hostile one, keep models per session."""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile

import pytest
from PIL import Image

pytestmark = pytest.mark.http


def make_zip(path, *, classes=("red", "green", "blue"), per_class=6, top="pets", extra=None):
    colours = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
    with zipfile.ZipFile(path, "w") as archive:
        for label in classes:
            for i in range(per_class):
                buffer = io.BytesIO()
                shade = tuple(max(0, c - 12 * i) for c in colours[label])
                Image.new("RGB", (48, 40), shade).save(buffer, "JPEG")
                archive.writestr(f"{top}/{label}/{i}.jpg", buffer.getvalue())
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return path


def _file(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_train_with_only_a_zip_and_keep_the_model_for_this_session(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    status, report, curves, confusion, per_class, filters, downloads, chooser, *_ = alice.predict(
        _file(make_zip(tmp_path / "colours.zip")), api_name="/train"
    )
    assert "Done" in status and "validation accuracy" in status
    assert "(chance: 33.3%, 1 of 3 classes)" in status  # guessing among three classes, named beside the score
    assert "only its last layer learns, on frozen random features" in status  # offline: what head only really did
    assert report.startswith("3 classes, 18 images")
    assert confusion["headers"] == ["true \\ predicted", "blue", "green", "red"]
    assert sum(sum(row[1:]) for row in confusion["data"]) == 3  # a fifth of each class (one image) validates
    assert {row[0] for row in per_class["data"]} == {"blue", "green", "red"}
    assert {p.rsplit(".", 1)[-1] for p in downloads} == {"safetensors", "json", "onnx"}
    assert filters is not None and Image.open(curves).width > 600
    key = chooser["value"]
    assert key.startswith("mine:") and "trained here on colours" in {v: k for k, v in chooser["choices"]}[key]
    top, _ = alice.predict(key, _file(_photo(tmp_path)), api_name="/predict")
    assert {c["label"] for c in top["confidences"]} == {"blue", "green", "red"}
    # Bob never sees it.
    assert key not in str(bob.predict("alexnet", api_name="/model_choices"))
    with pytest.raises(AppError):
        bob.predict(key, api_name="/architecture")


def _photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    return path


def test_a_hostile_zip_is_refused_through_train(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    evil = make_zip(tmp_path / "evil.zip", extra={"../../escape.jpg": b"x"})
    with pytest.raises(AppError, match="outside its folder"):
        client.predict(_file(evil), api_name="/train")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(AppError, match="no files"):
        client.predict(_file(empty), api_name="/train")
    with pytest.raises(AppError, match="Upload a zip"):
        client.predict(None, api_name="/train")
    # The server is still there, and a good zip still trains.
    status, *_ = client.predict(
        _file(make_zip(tmp_path / "ok.zip")), "your zip", "alexnet_compact", "head", True, 2, api_name="/train"
    )
    assert "Done" in status


def test_builtin_synthetic_dataset_and_an_unavailable_one(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    status, report, *_ = client.predict(None, "synthetic", "alexnet_compact", "head", True, 2, api_name="/train")
    assert "Done" in status and "synthetic" in report
    with pytest.raises(AppError, match="online"):
        client.predict(None, "five-flowers", api_name="/train")


class _Request:
    def __init__(self, session):
        self.session_hash = session


@pytest.mark.parametrize("how", ["stop button", "browser closed"])
def test_one_job_per_session_and_stopping_mid_run(tmp_path, monkeypatch, how):
    import gradio as gr

    from ui import folders, long_jobs, state
    from ui.tabs import train as train_tab

    monkeypatch.setattr(folders, "uploaded_path", lambda path: str(path))  # a local file stands in for an upload
    request = _Request(f"session-{how}")
    run = train_tab.train(
        make_zip(tmp_path / "z.zip", per_class=8), "your zip", "alexnet_compact", "full", True, 50, 4, request=request
    )
    first = next(run)
    assert "<p>" in first["status"]
    with pytest.raises(gr.Error, match="already have a training job"):
        next(train_tab.train(make_zip(tmp_path / "y.zip"), request=request))
    if how == "stop button":
        long_jobs.stop(request)
    else:
        state.forget_session(request)  # what demo.unload does
    rest = list(run)
    assert "Stopped" in rest[-1]["status"] and len(rest) <= 2  # within a step
    assert state.JOBS.last_run(request.session_hash) is None
    state.JOBS.claim(request.session_hash)  # the job slot was released ...
    state.JOBS.release(request.session_hash)
    # A new job can start afterwards.
    again = train_tab.train(
        make_zip(tmp_path / "w.zip"), "your zip", "alexnet_compact", "head", True, 1, request=request
    )
    assert "Done" in list(again)[-1]["status"]
    state.forget_session(request)


def test_choosing_a_confusion_cell_shows_those_mistakes(tmp_path):
    import gradio as gr
    import pandas as pd

    from playground.data import datasets as data
    from playground.serving.jobs import TrainingRun
    from playground.training.finetune import FinetuneConfig, FinetuneResult, finetune
    from ui import state
    from ui.tabs import train as train_tab

    stripes = data.synthetic(per_class=10, size=32)
    config = FinetuneConfig(model="alexnet_compact", mode="head", pretrained=False, image_size=64, epochs=1)
    result = [r for r in finetune(config, stripes) if isinstance(r, FinetuneResult)][0]
    assert result.misclassified  # one epoch on random features: plenty of mistakes
    request = _Request("cell-session")
    thumbnails = {i: Image.new("RGB", (8, 8)) for i, *_ in result.misclassified}
    state.JOBS.keep(request.session_hash, TrainingRun(result, thumbnails, str(tmp_path / "run")))
    index, truth, guess, _ = result.misclassified[0]
    table = train_tab._confusion_table(result.classes, result.confusion)

    class Click:
        index = [truth, guess + 1]

    true_name, predicted_name = train_tab.pick_cell(table, Click())
    assert (true_name, predicted_name) == (stripes.classes[truth], stripes.classes[guess])
    items, note = train_tab.misclassified(true_name, predicted_name, request)
    expected = sum(1 for _, t, g, _ in result.misclassified if (t, g) == (truth, guess))
    assert len(items) == expected == int(result.confusion[truth, guess]) and f"{expected} validation image" in note
    with pytest.raises(gr.Error):
        train_tab.misclassified("nope", predicted_name, request)
    state.forget_session(request)
    assert isinstance(table, pd.DataFrame)


# --- long jobs: admitted at the door, cancelled when nobody listens, reported when the worker dies ------


def _train_payload(app_url, **values):
    import httpx

    from bench.load import App

    app = App(app_url, httpx.get(app_url.rstrip("/") + "/config", timeout=30).json())
    defaults = {"dataset": "synthetic", "model": "alexnet_compact", "what learns": "head", "epochs": 50}
    return app.payload("train", None, **{**defaults, **values})


def _join(app_url, session, payload, **headers):
    import httpx

    fn_index, data = payload
    body = {"data": data, "fn_index": fn_index, "session_hash": session}
    return httpx.post(app_url.rstrip("/") + "/gradio_api/queue/join", json=body, headers=headers, timeout=60)


def test_a_job_nobody_listens_to_is_cancelled_within_seconds_and_frees_its_place(app_url):
    payload = _train_payload(app_url)
    assert _join(app_url, "never-listens", payload).status_code == 200  # joined, but its stream is never opened
    second = _join(app_url, "never-listens", payload)
    assert second.status_code == 422 and "already have a long job" in second.text  # refused at the door
    deadline = time.monotonic() + 40
    while _join(app_url, "never-listens", payload).status_code != 200:  # admitted once the first was cancelled
        assert time.monotonic() < deadline, "the job nobody listened to was never cancelled"
        time.sleep(1)
    # (this last one is not listened to either: it goes the same way)


def test_many_long_jobs_cannot_capture_the_queue(app_url, client):
    payload = _train_payload(app_url)
    same_address = [_join(app_url, f"crowd-{i}", payload).status_code for i in range(6)]
    assert same_address.count(200) <= 2 and same_address.count(422) >= 4  # a few per address
    spread = [
        _join(app_url, f"spread-{i}", payload, **{"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(12)
    ]
    assert spread.count(422) >= 6  # and only a few waiting for the whole server
    top, _ = client.predict("alexnet", _file(_photo_path()), api_name="/predict")  # clicks still get through
    assert len(top["confidences"]) == 5


def _photo_path():
    from ui.photos import example_paths

    return example_paths()[0]


def test_a_worker_that_dies_mid_run_gets_a_sentence_and_keeps_the_earlier_model(tmp_path, monkeypatch):
    import gradio as gr

    from ui import folders, state
    from ui.state import STORE
    from ui.tabs import train as train_tab

    monkeypatch.setattr(folders, "uploaded_path", lambda path: str(path))
    request = _Request("dies-mid-run")
    first = list(
        train_tab.train(make_zip(tmp_path / "a.zip"), "your zip", "alexnet_compact", "head", True, 1, request=request)
    )
    key = first[-1]["chooser"]["value"]
    run = train_tab.train(
        make_zip(tmp_path / "b.zip", per_class=8), "your zip", "alexnet_compact", "full", True, 50, 4, request=request
    )
    while "Epoch" not in next(run)["status"]:  # training has started in its worker
        pass
    os.kill(state.JOBS.worker(request.session_hash).pid, signal.SIGKILL)
    with pytest.raises(gr.Error, match="stopped by the system"):
        list(run)
    assert STORE.get(key, request.session_hash)  # the earlier model is still there
    assert not state.JOBS.busy(request.session_hash)  # and a new job may start
    state.forget_session(request)


def test_the_time_cap_ends_a_job_with_its_result_and_says_so(tmp_path, monkeypatch):
    from playground.config import Limits
    from ui import state
    from ui.tabs import train as train_tab

    monkeypatch.setattr(train_tab, "get_limits", lambda: Limits(train_max_seconds=8))
    request = _Request("capped")
    outputs = list(train_tab.train(None, "synthetic", "alexnet_compact", "full", False, 50, 16, request=request))
    assert "Done" in outputs[-1]["status"] and "time cap" in outputs[-1]["status"]
    state.forget_session(request)


def test_the_imagenet_switch_and_the_defaults_follow_the_model_chosen(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    note, lr, epochs = client.predict("alexnet_compact", "full", True, api_name="/train_start_chosen")
    assert note == "alexnet_compact has no ImageNet weights, so it trains every layer from scratch (random weights)."
    assert (lr, epochs) == (1e-4, 10)  # the from-scratch recipe: at 1e-3 the loss stays flat at ln(classes)
    note, lr, _ = client.predict("alexnet", "head", True, api_name="/train_start_chosen")
    assert note.startswith("ImageNet weights are unavailable here, so alexnet starts from random weights")
    assert lr == 1e-3  # head only: the course's recipe
    switch, note, lr, _ = client.predict("alexnet_compact", "head", api_name="/train_model_chosen")
    assert switch["value"] is False and not switch["interactive"]  # compact AlexNet has no ImageNet weights
    assert switch["label"].startswith("Start from ImageNet weights (none exist for alexnet_compact")


def test_the_switchs_words_name_the_model_chosen():
    from ui.tabs import train

    switch, note, lr, epochs = train.model_chosen("alexnet_compact", "full")
    assert switch["label"] == (
        "Start from ImageNet weights (none exist for alexnet_compact: it starts from random weights)"
    )
    assert switch["value"] is False and switch["interactive"] is False
    switch, *_ = train.model_chosen("alexnet", "head")
    assert switch["label"] == "Start from ImageNet weights (alexnet: not available here, so random weights)"
    assert switch["value"] is False  # offline in tests: nothing to start from
