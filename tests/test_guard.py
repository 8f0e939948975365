"""The HTTP gate in front of the app, driven directly as the ASGI middleware it is."""

from __future__ import annotations

import os
import time
import types
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from playground.config import Limits
from ui import guard, queueing

MB = 1024 * 1024


CALLS = []  # the requests that reached the app behind the guard


async def _downstream(scope, receive, send):
    """Stands in for Gradio: reads the whole body and answers 200 with its length."""
    CALLS.append(scope["path"])
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"cut"})
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _client(limits: Limits, monkeypatch, blocks=None) -> TestClient:
    monkeypatch.setattr(guard, "get_limits", lambda: limits)
    monkeypatch.setattr(guard, "sweep", lambda incoming=0: True)
    monkeypatch.setattr(queueing, "proxy_hops", lambda: 1)  # the test client plays the one trusted proxy
    CALLS.clear()
    return TestClient(guard.Guard(_downstream, blocks=blocks or types.SimpleNamespace(fns={})))


def test_each_address_may_upload_so_much_an_hour(monkeypatch):
    client = _client(Limits(upload_bytes_per_address_hour=5 * MB), monkeypatch)
    photo = ("p.png", b"\x89PNG" + b"\x00" * (2 * MB))
    assert client.post("/gradio_api/upload", files={"files": photo}).status_code == 200
    assert client.post("/gradio_api/upload", files={"files": photo}).status_code == 200
    refused = client.post("/gradio_api/upload", files={"files": photo})
    assert refused.status_code == 429 and "in the last hour" in refused.json()["detail"]
    other = client.post("/gradio_api/upload", files={"files": photo}, headers={"X-Forwarded-For": "10.1.2.3"})
    assert other.status_code == 200  # another visitor has a budget of its own


def test_event_bodies_are_bounded_and_must_name_an_event(monkeypatch):
    inputs = [types.SimpleNamespace(label="Stride"), types.SimpleNamespace(label="Padding")]
    blocks = types.SimpleNamespace(fns={3: types.SimpleNamespace(inputs=inputs)})
    client = _client(Limits(max_request_bytes=MB), monkeypatch, blocks)
    assert client.post("/gradio_api/queue/join", json={"fn_index": 3, "data": [1, 0]}).status_code == 200
    too_big = client.post("/gradio_api/queue/join", json={"fn_index": 3, "data": ["x" * (2 * MB), 0]})
    assert too_big.status_code == 413
    nowhere = client.post("/gradio_api/queue/join", json={"fn_index": 99, "data": [1, 0]})
    assert nowhere.status_code == 422 and "names no event" in nowhere.json()["detail"]
    assert client.post("/gradio_api/queue/join", content=b"not json").status_code == 422


def test_the_disk_budget_sweeps_the_oldest_files_first(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(guard, "get_limits", lambda: Limits(uploads_disk_bytes=10 * MB))
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    now = time.time()
    for i in range(8):  # 8 files of 1 MB, the first the oldest
        path = tmp_path / f"f{i}" / "upload.bin"
        path.parent.mkdir()
        path.write_bytes(b"\x00" * MB)
        os.utime(path, (now - 1000 + i, now - 1000 + i))
    assert guard.sweep(incoming=1 * MB)  # 9 MB: fits, nothing goes
    assert len(list(tmp_path.rglob("*.bin"))) == 8
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    assert guard.sweep(incoming=4 * MB)  # 12 MB would not fit: the oldest go, down to 80 %
    left = sorted(p.parent.name for p in tmp_path.rglob("*.bin"))
    assert left == ["f4", "f5", "f6", "f7"]
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    assert not guard.sweep(incoming=20 * MB)  # larger than the whole budget: refused


def _file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * size)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_the_app_s_own_files_survive_the_disk_sweep(tmp_path, monkeypatch):
    """The example photos Gradio keeps for the app are its oldest files: a sweep must never take them."""
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(guard, "get_limits", lambda: Limits(uploads_disk_bytes=10 * MB))
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    example = _file(uploads / "hash" / "coffee.png", MB, age=10_000)  # copied at start-up: the oldest
    blocks = types.SimpleNamespace(blocks={1: types.SimpleNamespace(keep_in_cache={str(example)})})
    monkeypatch.setattr(guard, "APP_FILES", set())
    guard.keep_app_files(blocks)
    for i in range(8):
        _file(uploads / f"u{i}" / "upload.bin", MB, age=1000 - i)
    assert guard.sweep(incoming=4 * MB)
    assert example.exists()  # never swept ...
    assert len(list(uploads.rglob("*.bin"))) == 3  # ... the oldest uploads went instead (down to 80 %)


def test_run_folders_count_in_the_disk_budget_and_the_oldest_run_goes_first(tmp_path, monkeypatch):
    from playground.serving import jobs
    from ui import state

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(guard, "get_limits", lambda: Limits(uploads_disk_bytes=10 * MB))
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    book = jobs.Jobs()
    monkeypatch.setattr(state, "JOBS", book)
    folders = []
    for session in ("old", "new"):
        folder = jobs.new_run_folder()
        assert Path(folder).parent == tmp_path / "runs"  # every run's folder lives where the budget looks
        _file(Path(folder) / "run-0.safetensors", 4 * MB, age=0)
        book.keep(session, jobs.ExperimentRun(None, {}, {}, folder), "experiment")
        folders.append(folder)
    assert guard.sweep(incoming=0)  # 8 MB of runs: measured, and under the budget
    monkeypatch.setitem(guard._usage, "measured", -1e9)
    assert guard.sweep(incoming=4 * MB)  # 12 MB would not fit: the oldest run goes, with its files
    assert not os.path.exists(folders[0]) and os.path.exists(folders[1])
    assert book.last_run("old", "experiment") is None and book.last_run("new", "experiment") is not None
    book.forget("new")  # a session's runs go with it
    assert not os.path.exists(folders[1])


@pytest.mark.parametrize("name", ["photo.JPG", "set.zip", "model.safetensors", "weights.pt"])
def test_the_kinds_the_inputs_take_are_accepted(name):
    assert guard._accepted(name.encode())


def _chunks(total: int, size: int = 256 * 1024):
    """A body sent in chunks, without saying its length first (as a client streaming it would)."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/gradio_api/call/predict", "max_request_bytes"),
        ("/gradio_api/run/predict", "max_request_bytes"),
        ("/gradio_api/call/v2/predict", "max_request_bytes"),
        ("/gradio_api/stream/abc123", "max_request_bytes"),
        ("/gradio_api/component_server", "component"),
        ("/gradio_api/process_recording", "small_request_bytes"),
        ("/gradio_api/reset", "small_request_bytes"),
        ("/login", "small_request_bytes"),
    ],
)
def test_every_post_body_is_bounded_before_the_app_reads_it(monkeypatch, path, limit):
    limits = Limits(max_request_bytes=3 * MB, small_request_bytes=MB // 2, editor_blob_bytes=MB)
    client = _client(limits, monkeypatch)
    most = limits.editor_blob_bytes + limits.small_request_bytes if limit == "component" else getattr(limits, limit)
    refused = client.post(path, content=_chunks(most + 1))
    assert refused.status_code == 413 and "too large" in refused.json()["detail"]
    declared = client.post(path, content=b"x" * (most + 1), headers={"Content-Length": str(most + 1)})
    assert declared.status_code == 413
    assert CALLS == []  # nothing reached the app


def test_an_upload_of_the_wrong_kind_is_refused_before_it_costs_any_budget(monkeypatch):
    client = _client(Limits(upload_bytes_per_address_hour=5 * MB), monkeypatch)
    for _ in range(3):
        stray = client.post("/gradio_api/upload", files={"files": ("data.bin", b"\x00" * (2 * MB))})
        assert stray.status_code == 415
    photo = ("p.png", b"\x89PNG" + b"\x00" * (2 * MB))
    assert client.post("/gradio_api/upload", files={"files": photo}).status_code == 200  # the budget is whole
    assert client.post("/gradio_api/upload", files={"files": photo}).status_code == 200


def _blocks():
    """An app with one event: a photo and a stride."""
    from gradio.data_classes import ImageData

    photo = types.SimpleNamespace(label="Photo", data_model=ImageData)
    stride = types.SimpleNamespace(label="Stride", data_model=None)
    fn = types.SimpleNamespace(inputs=[photo, stride], api_name="convolve")
    api = {
        "named_endpoints": {"/convolve": {"parameters": [{"parameter_name": "image"}, {"parameter_name": "stride"}]}}
    }
    return types.SimpleNamespace(fns={3: fn}, get_api_info=lambda: api)


UPLOADED = {"path": "/tmp/gradio/abc/photo.png", "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/gradio_api/queue/join", {"fn_index": 3, "data": [UPLOADED], "session_hash": "s"}),
        ("/gradio_api/call/convolve", {"data": [UPLOADED]}),
        ("/gradio_api/run/convolve", {"data": [UPLOADED]}),
    ],
)
def test_a_missing_value_is_named_on_every_route(monkeypatch, path, body):
    client = _client(Limits(), monkeypatch, _blocks())
    refused = client.post(path, json=body)
    assert refused.status_code == 422
    assert "takes 2 value(s), in this order: Photo, Stride; the request has 1" in refused.json()["detail"]
    body["data"] = [UPLOADED, 1]
    assert client.post(path, json=body).status_code == 200


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ({"path": "http://10.0.0.1/huge.iso", "meta": {"_type": "gradio.FileData"}}, "does not fetch files from URLs"),
        ({"url": "https://example.com/x.png", "meta": {"_type": "gradio.FileData"}}, "does not fetch files from URLs"),
        ({"path": 5}, "Photo: expected an uploaded file, got {'path': 5}."),
        ("a string", "Photo: expected an uploaded file, got 'a string'."),
        ([1, 2], "Photo: expected an uploaded file, got [1, 2]."),
    ],
)
def test_file_values_must_be_uploads(monkeypatch, value, sentence):
    client = _client(Limits(), monkeypatch, _blocks())
    for path, body in [
        ("/gradio_api/queue/join", {"fn_index": 3, "data": [value, 1], "session_hash": "s"}),
        ("/gradio_api/call/convolve", {"data": [value, 1]}),
        ("/gradio_api/call/v2/convolve", {"image": value, "stride": 1}),
    ]:
        refused = client.post(path, json=body)
        assert refused.status_code == 422 and sentence in refused.json()["detail"], (path, refused.text)
    # A file uploaded here may carry its own address beside its path (the browser sends both).
    uploaded = dict(UPLOADED, url="http://127.0.0.1:7860/gradio_api/file=/tmp/gradio/abc/photo.png")
    assert client.post("/gradio_api/call/convolve", json={"data": [uploaded, 1]}).status_code == 200


def test_a_named_value_the_event_does_not_take_is_refused(monkeypatch):
    client = _client(Limits(), monkeypatch, _blocks())
    refused = client.post("/gradio_api/call/v2/convolve", json={"image": UPLOADED, "bogus": 1})
    assert refused.status_code == 422 and "takes image, stride; 'bogus' is not one of them" in refused.json()["detail"]


def test_a_url_is_found_however_deep_it_is_hidden(monkeypatch):
    deep = {"path": "http://10.0.0.1/huge.iso", "meta": {"_type": "gradio.FileData"}}
    for _ in range(50):
        deep = [{"nested": deep}]
    assert guard._names_a_url(deep)
    client = _client(Limits(), monkeypatch, _blocks())
    refused = client.post("/gradio_api/call/convolve", json={"data": [UPLOADED, deep]})  # the stride, of all inputs
    assert refused.status_code == 422 and "Stride: upload the file itself" in refused.json()["detail"]
