"""The HTTP gate in front of the app, driven directly as the ASGI middleware it is."""

from __future__ import annotations

import os
import time
import types

import pytest
from starlette.testclient import TestClient

from playground.config import Limits
from ui import guard

MB = 1024 * 1024


async def _downstream(scope, receive, send):
    """Stands in for Gradio: reads the whole body and answers 200 with its length."""
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


@pytest.mark.parametrize("name", ["photo.JPG", "set.zip", "model.safetensors", "weights.pt"])
def test_the_kinds_the_inputs_take_are_accepted(name):
    assert guard._accepted(name.encode())
