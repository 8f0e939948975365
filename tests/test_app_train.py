"""The Train tab over real HTTP: train from a zip, refuse a hostile one, keep models per session."""

from __future__ import annotations

import io
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
    status, report, curves, confusion, per_class, filters, downloads, chooser = alice.predict(
        _file(make_zip(tmp_path / "colours.zip")), api_name="/train"
    )
    assert "Done" in status and "validation accuracy" in status
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

    from ui import train_tab

    monkeypatch.setattr(train_tab, "uploaded_path", lambda path: str(path))  # a local file stands in for an upload
    request = _Request(f"session-{how}")
    run = train_tab.train(
        make_zip(tmp_path / "z.zip", per_class=8), "your zip", "alexnet_compact", "full", True, 50, 4, request=request
    )
    first = next(run)
    assert "<p>" in first["status"]
    with pytest.raises(gr.Error, match="already have a training job"):
        next(train_tab.train(make_zip(tmp_path / "y.zip"), request=request))
    if how == "stop button":
        train_tab.request_stop(request)
    else:
        train_tab.forget(request)  # what demo.unload does
    rest = list(run)
    assert "Stopped" in rest[-1]["status"] and len(rest) <= 2  # within a step
    assert train_tab.JOBS.last_run(request.session_hash) is None
    train_tab.JOBS.claim(request.session_hash)  # the job slot was released ...
    train_tab.JOBS.release(request.session_hash)
    # A new job can start afterwards.
    again = train_tab.train(
        make_zip(tmp_path / "w.zip"), "your zip", "alexnet_compact", "head", True, 1, request=request
    )
    assert "Done" in list(again)[-1]["status"]
    train_tab.forget(request)


def test_choosing_a_confusion_cell_shows_those_mistakes(tmp_path):
    import gradio as gr
    import pandas as pd

    from playground import data
    from playground.finetune import FinetuneConfig, FinetuneResult, finetune
    from playground.jobs import Run
    from ui import train_tab

    stripes = data.synthetic(per_class=10, size=32)
    config = FinetuneConfig(model="alexnet_compact", mode="head", pretrained=False, image_size=64, epochs=1)
    result = [r for r in finetune(config, stripes) if isinstance(r, FinetuneResult)][0]
    assert result.misclassified  # one epoch on random features: plenty of mistakes
    request = _Request("cell-session")
    thumbnails = {i: Image.new("RGB", (8, 8)) for i, *_ in result.misclassified}
    train_tab.JOBS.keep(request.session_hash, Run(result, thumbnails, str(tmp_path / "run")))
    index, truth, guess, _ = result.misclassified[0]
    table = train_tab._confusion_table(result)

    class Click:
        index = [truth, guess + 1]

    true_name, predicted_name = train_tab.pick_cell(table, Click())
    assert (true_name, predicted_name) == (stripes.classes[truth], stripes.classes[guess])
    items, note = train_tab.misclassified(true_name, predicted_name, request)
    expected = sum(1 for _, t, g, _ in result.misclassified if (t, g) == (truth, guess))
    assert len(items) == expected == int(result.confusion[truth, guess]) and f"{expected} validation image" in note
    with pytest.raises(gr.Error):
        train_tab.misclassified("nope", predicted_name, request)
    train_tab.forget(request)
    assert isinstance(table, pd.DataFrame)
