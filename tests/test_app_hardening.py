"""The attacks of a stranger on a shared server, replayed against the running app: each is refused before
anything large is allocated (the server's peak memory barely moves) and another visitor is still served."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.server
import io
import json
import re
import struct
import threading
import time
import uuid
import zlib
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.load import App, call
from tests.conftest import SERVER, start_app

pytestmark = pytest.mark.http
MB = 1024 * 1024


def _status(field: str, pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) * 1024


@contextlib.contextmanager
def peak_rise(attack: str, pid: int | None = None):
    """How far the server's peak resident memory rises during the block: the peak is reset to the current
    size first (Linux: ``5 > /proc/PID/clear_refs``), so the figure is this attack's own, not an earlier
    one's. Yields a list that holds the rise in bytes once the block ends; the figure is printed too."""
    pid = pid or SERVER["pid"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _status("VmHWM", pid)
    rise = []
    yield rise
    rise.append(_status("VmHWM", pid) - before)
    print(f"\n[peak memory] {attack}: +{rise[0] / MB:,.0f} MB")


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
    """Another visitor's top-5, which must keep answering within seconds."""
    from gradio_client import handle_file

    from ui.photos import example_paths

    def served(within: float = 10.0) -> bool:
        started = time.monotonic()
        top, _ = client.submit("alexnet", handle_file(example_paths()[0]), api_name="/predict").result(timeout=within)
        return len(top["confidences"]) == 5 and time.monotonic() - started < within

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


def _editor_id(app) -> str:
    config = httpx.get(app.url + "/config").json()
    return str(next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "occlude-editor"))


def _blob(app, fields: dict, content: bytes) -> httpx.Response:
    fields = {"session_hash": "blobby", "fn_name": "accept_blobs", "component_id": _editor_id(app), **fields}
    return httpx.post(
        f"{app.url}/gradio_api/component_server", data=fields, files={"blob": ("blob", content)}, timeout=120
    )


def test_editor_blobs_with_an_absurd_index_are_refused(app, bystander):
    layer = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(layer, "PNG")
    with peak_rise("editor blobs: absurd indices, a header claiming 144 MP") as rise:
        for index in ("999999999", "5", "-1", "x"):
            response = _blob(app, {"type": "layer", "index": index, "id": "a" * 10}, layer.getvalue())
            assert response.status_code != 200 and "at most 4 layers" in response.text
        huge = _png_claiming(12_000, 12_000)  # 144 MP declared in a few hundred bytes
        response = _blob(app, {"type": "layer", "index": "0", "id": "b" * 10}, huge)
        assert response.status_code != 200 and "too large" in response.text
    assert rise[0] < 500 * MB and bystander()


def test_editor_blob_sets_larger_than_the_budget_are_refused_and_never_kept(app, bystander):
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (1990, 1990, 4), dtype=np.uint8)  # under 4 MP
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG", compress_level=0)
    picture = buffer.getvalue()  # ~15 MB: four of them reach the 64 MB budget of all editors' pictures
    assert 15 * MB < len(picture) < 16 * MB
    refused = 0
    with peak_rise("editor blobs: 8 sets of 5 pictures of 15 MB, each set over the 64 MB budget") as rise:
        for round_ in range(8):
            for kind, index in [("background", "null"), ("layer", "0"), ("layer", "1"), ("layer", "2"), ("layer", "3")]:
                response = _blob(app, {"type": kind, "index": index, "id": f"round{round_}"}, picture)
                refused += "too large together" in response.text
    assert refused == 8  # the fifth picture of every set
    assert rise[0] < 500 * MB and bystander()


def test_editor_layers_that_declare_huge_pictures_are_refused_from_their_headers(app, bystander):
    photo = _upload(app, "photo.png", _small_png())
    bomb = _upload(app, "layer.png", _png_claiming(12_000, 12_000))
    edited = {"background": photo, "layers": [bomb] * 4, "composite": photo, "id": None}
    with peak_rise("editor layers: four headers claiming 144 MP each") as rise:
        message = _event(app, "occlude", ["alexnet", photo, edited])
        assert not message["success"] and "too large" in message["output"]["error"]
        too_many = {"background": photo, "layers": [photo] * 9, "composite": photo, "id": None}
        message = _event(app, "occlude", ["alexnet", photo, too_many])
        assert not message["success"] and "at most 4" in message["output"]["error"]
    assert rise[0] < 500 * MB and bystander()


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
    with peak_rise("checkpoint: a 6 KB .pt of expanded views posing as 100,000 classes") as rise:
        with pytest.raises(AppError, match="as a view of other data"):
            client.predict(handle_file(str(path)), "auto", api_name="/load_checkpoint")
    assert rise[0] < 500 * MB and bystander()


def test_a_half_precision_checkpoint_costs_its_float32_size_once(app, client, tmp_path, bystander):
    from gradio_client import handle_file

    from playground.models import build

    path = tmp_path / "alexnet-half.safetensors"
    save_file({key: value.half() for key, value in build("alexnet").state_dict().items()}, str(path))
    assert 115 * MB < path.stat().st_size < 125 * MB  # 244 MB once widened to float32
    with peak_rise("checkpoint: a 122 MB float16 AlexNet, widened to 244 MB and kept") as rise:
        chooser, status = client.predict(handle_file(str(path)), "auto", api_name="/load_checkpoint")
    assert "alexnet with weights from alexnet-half.safetensors" in status
    assert rise[0] < 500 * MB and bystander()


def test_baseline_metadata_cannot_size_a_huge_model(app, client, tmp_path, bystander):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    state = {"1.weight": torch.zeros(2, 12), "1.bias": torch.zeros(2)}
    metadata = {"variant": "linear", "input_shape": json.dumps([3, 1000, 1000]), "classes": json.dumps(["a", "b"])}
    path = tmp_path / "tiny.safetensors"
    save_file(state, str(path), metadata=metadata)
    assert path.stat().st_size < 2048
    with peak_rise("checkpoint: 2 KB baseline whose metadata claims a 3 x 1000 x 1000 input") as rise:
        with pytest.raises(AppError, match="do not fit the linear baseline"):
            client.predict(handle_file(str(path)), "auto", api_name="/load_checkpoint")
    assert rise[0] < 500 * MB and bystander()


def test_seventy_training_jobs_nobody_listens_to_cannot_capture_the_queue(app, bystander):
    fn_index, data = app.payload("train", None)
    data[1] = "synthetic"
    statuses = []
    with peak_rise("queue: 70 /train joins from fresh sessions, never listened to") as rise:
        for _ in range(70):  # one visitor (its proxy-recorded address), a fresh session each time
            body = {"data": data, "fn_index": fn_index, "session_hash": f"deaf-{uuid.uuid4().hex[:8]}"}
            response = httpx.post(
                f"{app.url}/gradio_api/queue/join", json=body, headers={"X-Forwarded-For": "198.51.100.7"}, timeout=60
            )
            statuses.append(response.status_code)
        assert bystander()  # while they are there
    assert statuses.count(200) <= 2 and 503 not in statuses  # refused at the door; the queue never filled
    assert rise[0] < 500 * MB


# --- the queue, and what Gradio would do with a request before our code sees it -------------------------


def test_events_cannot_skip_the_queue(app, bystander):
    photo = _upload(app, "photo.png", _small_png())
    direct = httpx.post(f"{app.url}/gradio_api/run/predict", json={"data": ["alexnet", photo]}, timeout=60)
    assert direct.status_code == 404 and "join the queue" in direct.json()["detail"]
    assert bystander()  # gradio_client (and the browser) go through the queue, and still work


def test_every_event_body_is_bounded_before_gradio_reads_it(app):
    def chunks(total: int):
        for _ in range(total // MB):
            yield b"x" * MB

    for path, most in [("/gradio_api/component_server", 17 * MB), ("/gradio_api/call/predict", 64 * MB)]:
        response = httpx.post(app.url + path, content=chunks(most + 2 * MB), timeout=120)
        assert response.status_code == 413 and "too large" in response.json()["detail"], path
    declared = httpx.post(
        f"{app.url}/gradio_api/process_recording", content=b"x" * (2 * MB), headers={"Content-Type": "text/plain"}
    )
    assert declared.status_code == 413


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 (the standard library's name)
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(_small_png())

    def log_message(self, *args):
        pass


def test_a_file_value_that_names_a_url_is_refused_unfetched(app):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/huge.png"
        remote = {"path": url, "orig_name": "huge.png", "meta": {"_type": "gradio.FileData"}}
        for route, body in [
            ("call/predict", {"data": ["alexnet", remote]}),
            ("queue/join", {"data": ["alexnet", remote], "fn_index": app.endpoints["predict"][0], "session_hash": "u"}),
            ("call/occlude", {"data": ["alexnet", None, {"background": remote, "layers": [], "composite": None}]}),
        ]:
            response = httpx.post(f"{app.url}/gradio_api/{route}", json=body, timeout=60)
            assert response.status_code == 422, response.text
            assert "upload the file itself; this server does not fetch files from URLs" in response.json()["detail"]
        assert _Counting.hits == 0
    finally:
        server.shutdown()


def test_malformed_file_values_get_a_sentence_naming_the_input(app):
    fn_index = app.endpoints["predict"][0]
    for value in ({"path": 5, "meta": {"_type": "gradio.FileData"}}, "photo.png", [1, 2]):
        for route, body in [
            ("call/predict", {"data": ["alexnet", value]}),
            ("queue/join", {"data": ["alexnet", value], "fn_index": fn_index, "session_hash": "m"}),
        ]:
            response = httpx.post(f"{app.url}/gradio_api/{route}", json=body, timeout=60)
            assert response.status_code == 422, response.text
            assert response.json()["detail"].startswith("Photo: expected an uploaded file, got "), response.text
    editor = {"background": None, "layers": "not a list", "composite": None}
    response = httpx.post(f"{app.url}/gradio_api/call/occlude", json={"data": ["alexnet", None, editor]}, timeout=60)
    assert response.status_code == 422 and "expected the editor's pictures" in response.json()["detail"]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A server where a session may keep two requests waiting and an address three, one running per event,
    and Gradio keeps the state of 100 sessions."""
    settings = dict(
        PLAYGROUND_QUEUED_EVENTS_PER_SESSION="2",
        PLAYGROUND_QUEUED_EVENTS_PER_ADDRESS="3",
        PLAYGROUND_CONCURRENCY="1",
        PLAYGROUND_ATTRIBUTE_CONCURRENCY="1",
        PLAYGROUND_PROXY_HOPS="1",
        PLAYGROUND_SESSIONS_KEPT="100",
    )
    with start_app(tmp_path_factory, **settings) as (url, process):
        app = App(url, httpx.get(url.rstrip("/") + "/config", timeout=30).json())
        app.pid = process.pid
        yield app


def test_one_visitor_cannot_fill_the_queue_for_everyone(crowded):
    app = crowded
    photo = _upload(app, "photo.png", _small_png())
    fn_index, data = app.payload("attribute", photo, method="integrated_gradients")
    data[-1] = 200  # about a second each: they wait behind one another

    def join(session, address="203.0.113.5"):
        body = {"data": data, "fn_index": fn_index, "session_hash": session}
        response = httpx.post(
            f"{app.url}/gradio_api/queue/join", json=body, headers={"X-Forwarded-For": address}, timeout=60
        )
        return response.status_code, response.text

    same_session = [join("greedy") for _ in range(6)]
    assert any(code == 429 and "You already have 2 requests waiting" in text for code, text in same_session)
    fresh_sessions = [join(f"fresh-{i}") for i in range(6)]  # new sessions from the same address
    assert any(code == 429 and "from your network are already waiting" in text for code, text in fresh_sessions)
    assert sum(code == 200 for code, _ in same_session + fresh_sessions) <= 1 + 3 + 1  # running + waiting
    # Someone else is still let in, and served.
    _, data_predict = app.payload("predict", photo)
    served = _event(app, "predict", data_predict)
    assert served["success"] and len(served["output"]["data"][0]["confidences"]) == 5


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
    simple = httpx.post(f"{app.url}/gradio_api/call/apply_kernel", json={"data": data[:3]}, timeout=60)
    assert simple.status_code == 422 and simple.json()["detail"] == detail  # the simple API says the same


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


def test_requests_naming_new_sessions_cannot_pile_up_session_state(crowded):
    """Gradio makes a session's state (~0.4 MB) for any request naming a new one, and kept 10,000 of them."""
    body = {"component_id": int(_editor_id(crowded)), "fn_name": "nope", "data": None}
    with httpx.Client(timeout=60) as http:
        with peak_rise("sessions: 600 tiny requests, each naming a new session", pid=crowded.pid) as rise:
            for i in range(600):
                response = http.post(
                    f"{crowded.url}/gradio_api/component_server", json={**body, "session_hash": f"s{i}"}
                )
                assert response.status_code == 404
    assert rise[0] < 150 * MB  # 600 sessions would be ~240 MB; 100 are kept
