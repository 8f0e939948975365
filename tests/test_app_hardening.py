"""The attacks of a stranger on a shared server, replayed against the running app: each is refused before
anything large is allocated (the server's peak memory barely moves) and another visitor is still served."""

from __future__ import annotations

import concurrent.futures
import io
import json
import re
import struct
import uuid
import zlib
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.load import App, call
from tests.conftest import SERVER

pytestmark = pytest.mark.http
MB = 1024 * 1024


def _peak_rss() -> int:
    """The server's high-water mark of resident memory, in bytes (it only ever grows)."""
    status = Path(f"/proc/{SERVER['pid']}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # RGBA, as editor layers are
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def app(app_url):
    return App(app_url, httpx.get(app_url.rstrip("/") + "/config", timeout=30).json())


@pytest.fixture
def bystander(client):
    """Another visitor's top-5, which must keep answering."""
    from gradio_client import handle_file

    from ui.common import example_paths

    def served() -> bool:
        top, _ = client.predict("alexnet", handle_file(example_paths()[0]), api_name="/predict")
        return len(top["confidences"]) == 5

    return served


def _upload(app, name: str, content: bytes) -> dict:
    response = httpx.post(f"{app.url}/gradio_api/upload", files={"files": (name, content)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _event(app, name: str, data: list, session: str | None = None) -> dict:
    import asyncio

    async def go():
        async with httpx.AsyncClient(timeout=120) as client:
            fn_index = app.endpoints[name][0]
            return (await call(client, app, session or uuid.uuid4().hex[:10], name, fn_index, data))[2]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop: a browser test may hold this thread's
        return pool.submit(asyncio.run, go()).result()


# --- the five attacks ------------------------------------------------------------------------------------


def test_editor_blobs_with_an_absurd_index_are_refused(app, bystander):
    editor = next(
        c for c in httpx.get(app.url + "/config").json()["components"] if c["props"].get("elem_id") == "occlude-editor"
    )
    before = _peak_rss()
    layer = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(layer, "PNG")
    for index in ("999999999", "5", "-1", "x"):
        fields = {
            "component_id": str(editor["id"]),
            "session_hash": "blobby",
            "fn_name": "accept_blobs",
            "type": "layer",
            "index": index,
            "id": "a" * 10,
        }
        response = httpx.post(
            f"{app.url}/gradio_api/component_server",
            data=fields,
            files={"blob": ("blob", layer.getvalue())},
            timeout=60,
        )
        assert response.status_code != 200
    fields.update(index="0", id="b" * 10)
    huge = _png_claiming(12_000, 12_000)  # 144 MP declared in a few hundred bytes
    response = httpx.post(
        f"{app.url}/gradio_api/component_server", data=fields, files={"blob": ("blob", huge)}, timeout=60
    )
    assert response.status_code != 200
    assert _peak_rss() - before < 500 * MB and bystander()


def test_editor_layers_that_declare_huge_pictures_are_refused_from_their_headers(app, bystander):
    photo = _upload(app, "photo.png", _small_png())
    bomb = _upload(app, "layer.png", _png_claiming(12_000, 12_000))
    edited = {"background": photo, "layers": [bomb] * 4, "composite": photo, "id": None}
    before = _peak_rss()
    message = _event(app, "occlude", ["alexnet", photo, edited])
    assert not message["success"] and "too large" in message["output"]["error"]
    too_many = {"background": photo, "layers": [photo] * 9, "composite": photo, "id": None}
    message = _event(app, "occlude", ["alexnet", photo, too_many])
    assert not message["success"] and "at most 4" in message["output"]["error"]
    assert _peak_rss() - before < 500 * MB and bystander()


def test_a_checkpoint_of_expanded_views_is_refused_before_it_is_materialised(app, client, tmp_path, bystander):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from playground.models import build

    reference = build("alexnet_compact", num_classes=1).state_dict()
    state = {}
    for key, value in reference.items():
        shape = (100_000, *value.shape[1:]) if key.startswith("classifier.6") else value.shape
        state[key] = torch.zeros(1).expand(*shape)  # one stored number posing as the whole tensor
    path = tmp_path / "views.pt"
    torch.save(state, path)
    assert path.stat().st_size < 100_000
    before = _peak_rss()
    with pytest.raises(AppError, match="as a view of other data"):
        client.predict(handle_file(str(path)), "auto", api_name="/load_checkpoint")
    assert _peak_rss() - before < 500 * MB and bystander()


def test_baseline_metadata_cannot_size_a_huge_model(app, client, tmp_path, bystander):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    state = {"1.weight": torch.zeros(2, 12), "1.bias": torch.zeros(2)}
    metadata = {"variant": "linear", "input_shape": json.dumps([3, 1000, 1000]), "classes": json.dumps(["a", "b"])}
    path = tmp_path / "tiny.safetensors"
    save_file(state, str(path), metadata=metadata)
    assert path.stat().st_size < 2048
    before = _peak_rss()
    with pytest.raises(AppError, match="do not fit the linear baseline"):
        client.predict(handle_file(str(path)), "auto", api_name="/load_checkpoint")
    assert _peak_rss() - before < 500 * MB and bystander()


# (The fifth, a queue full of jobs nobody listens to, is replayed in test_app_train.py.)


# --- the medium ones -------------------------------------------------------------------------------------


def test_malformed_values_get_a_sentence_naming_the_input(app):
    photo = _upload(app, "photo.png", _small_png())
    fn_index, data = app.payload("apply_kernel", photo)
    cases = [
        (4, [1, 2], "Stride: expected a number"),  # a list for a number
        (1, "x" * 1_000_000, "Kernel: expected one of its choices, got 'xxx"),  # a megabyte for a choice
        (3, {"a": 1}, "Channels: "),  # an object for a choice
    ]
    for position, value, sentence in cases:
        bad = list(data)
        bad[position] = value
        message = _event(app, "apply_kernel", bad)
        error = message["output"]["error"]
        assert not message["success"] and error.startswith(sentence) and len(error) < 200, error
    fn_index, data = app.payload("train", None)
    data[7] = None  # null for the learning rate
    message = _event(app, "train", data)
    assert not message["success"] and "Learning rate: expected a number, got None." in message["output"]["error"]


def test_a_missing_value_is_named_not_a_blank_error(app):
    fn_index, data = app.payload("apply_kernel", None)
    response = httpx.post(
        f"{app.url}/gradio_api/queue/join", json={"data": data[:3], "fn_index": fn_index, "session_hash": "short"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "takes 10 value(s)" in detail and "Stride" in detail and "has 3" in detail


def test_uploads_of_other_kinds_must_be_small(app):
    big = httpx.post(f"{app.url}/gradio_api/upload", files={"files": ("data.bin", b"\x00" * (2 * MB))}, timeout=60)
    assert big.status_code == 415 and "Only images, zips and checkpoints" in big.json()["detail"]
    small = httpx.post(f"{app.url}/gradio_api/upload", files={"files": ("notes.txt", b"hello")}, timeout=60)
    assert small.status_code == 200  # a stray file inside an uploaded folder is fine
    photo = httpx.post(
        f"{app.url}/gradio_api/upload", files={"files": ("big.png", b"\x89PNG" + b"\x00" * (2 * MB))}, timeout=60
    )
    assert photo.status_code == 200


def test_the_weights_notice_shows_no_server_paths(client):
    text = client.predict("alexnet", api_name="/model_info")
    assert "$TORCH_HOME/hub/checkpoints/" in text and str(Path.home()) not in text and "/tmp/" not in text


def _small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_file_of_another_kind_later_in_a_large_upload_ends_it(app):
    files = [("files", ("a.png", b"\x89PNG" + b"\x00" * (2 * MB))), ("files", ("b.bin", b"\x00" * (2 * MB)))]
    response = httpx.post(f"{app.url}/gradio_api/upload", files=files, timeout=60)
    assert response.status_code != 200


def test_part_names_are_read_across_chunks_and_never_from_inside_a_file():
    from ui.guard import _PartWatcher

    watcher = _PartWatcher(b"XyZ")
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="photo.png"\r\n\r\n'
        + b'filename="inside.bin"' * 3
    )
    body += b'\r\n--XyZ\r\nContent-Disposition: form-data; name="files"; filename="second.zip"\r\n\r\ndata'
    names = set()
    for start in range(0, len(body), 37):  # awkward chunk sizes split the headers
        names |= set(watcher.names(body[start : start + 37]))
    assert names == {b"photo.png", b"second.zip"}
