"""Long work ends when nobody listens, over real HTTP: a Units pass stopped, cancelled or abandoned while it
is still reading its dataset is gone within seconds, and there are never more Units workers than the limit."""

from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest
from PIL import Image

from tests.test_app_units import _file, _new_client, _workers_of_the_server

pytestmark = pytest.mark.http

GONE_WITHIN = 10.0  # seconds: the bound for a cancelled or abandoned pass


def _slow_zip(path, members=24) -> str:
    """Tiny 1-bit PNGs whose pictures are 6,000 px square: each takes a good fraction of a second to decode,
    so reading the zip takes many seconds while the worker sends nothing."""
    buffer = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buffer, format="PNG")
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(members):
            archive.writestr(f"{('cats', 'dogs')[i % 2]}/{i}.png", buffer.getvalue())
    return str(path)


def _started_reading(client, tmp_path, name):
    client.predict(_file(_slow_zip(tmp_path / f"{name}.zip")), api_name="/remember_zip")
    job = client.submit("alexnet_compact", "features.0", 0, "my zip", api_name="/top_patches")
    deadline = time.monotonic() + 30
    while not _workers_of_the_server():
        assert time.monotonic() < deadline, "the pass never started"
        time.sleep(0.1)
    time.sleep(1.0)  # well into reading the zip
    return job


def _gone_within(seconds: float) -> float:
    started = time.monotonic()
    while _workers_of_the_server():
        assert time.monotonic() - started < seconds, "the Units worker kept running"
        time.sleep(0.2)
    return time.monotonic() - started


def test_stop_during_reading_ends_the_worker(app_url, tmp_path):
    client = _new_client(app_url)
    job = _started_reading(client, tmp_path, "stop")
    client.predict(api_name="/stop_units")  # what the Stop button sends (besides cancelling the event)
    job.cancel()
    _gone_within(GONE_WITHIN)


def test_a_cancelled_event_alone_ends_the_worker(app_url, tmp_path):
    """A client that only cancels its event (Gradio's /cancel): the handler's thread cannot be interrupted,
    but the watchdog sees the event has gone."""
    client = _new_client(app_url)
    job = _started_reading(client, tmp_path, "cancel")
    job.cancel()
    _gone_within(GONE_WITHIN)


def test_a_client_that_hangs_up_during_reading_leaves_no_worker(app_url, tmp_path):
    import httpx

    client = _new_client(app_url)
    client.predict(_file(_slow_zip(tmp_path / "hangup.zip")), api_name="/remember_zip")
    session = client.session_hash
    fn_index = next(i for i, d in enumerate(client.config["dependencies"]) if d.get("api_name") == "top_patches")
    body = {"data": ["alexnet_compact", "features.0", 0, "my zip"], "fn_index": fn_index, "session_hash": session}
    base = app_url.rstrip("/")
    assert httpx.post(base + "/gradio_api/queue/join", json=body, timeout=30).status_code == 200
    with httpx.stream("GET", base + f"/gradio_api/queue/data?session_hash={session}", timeout=30) as stream:
        deadline = time.monotonic() + 30
        for _ in stream.iter_lines():  # listen until the worker has started, then hang up
            if _workers_of_the_server() or time.monotonic() > deadline:
                break
    assert _workers_of_the_server(), "the pass never started"
    _gone_within(GONE_WITHIN)


def test_never_more_units_workers_than_the_limit_while_passes_are_cancelled(app_url, tmp_path):
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(_workers_of_the_server())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(4):  # a new session each time, each cancelled half a second in
            client = _new_client(app_url)
            job = client.submit("alexnet", "features.10", 3, False, 512, api_name="/feature_visualisation")
            time.sleep(0.5)
            job.cancel()
        _gone_within(4 * GONE_WITHIN)  # the queued ones may each start (and be stopped) in turn
    finally:
        done.set()
        watcher.join()
    assert max(seen) <= 1, " ".join(map(str, seen))  # Limits.units_jobs_running


def test_a_fourth_visitors_visualisation_starts_while_three_addresses_hold_grids(app_url):
    from gradio_client import Client

    def visitor(address: str):
        return Client(app_url, verbose=False, headers={"X-Forwarded-For": address})  # the trusted proxy's entry

    holders = [visitor(f"10.9.0.{i}") for i in (1, 2, 3)]
    grids = [holder.submit("alexnet", "features.10", api_name="/layer_grid") for holder in holders]
    try:
        deadline = time.monotonic() + 60
        while not _workers_of_the_server():
            assert time.monotonic() < deadline, "no grid started"
            time.sleep(0.2)
        fourth = visitor("10.9.0.4")
        started = time.monotonic()
        job = fourth.submit("alexnet_compact", "features.3", 5, False, 32, api_name="/feature_visualisation")
        while not job.outputs():
            assert time.monotonic() - started < 30, "the fourth visitor's visualisation did not start within 30 s"
            time.sleep(0.2)
        job.result(timeout=120)
    finally:
        for holder, grid in zip(holders, grids):
            holder.predict(api_name="/stop_units")
            grid.cancel()
    _gone_within(4 * GONE_WITHIN)


def _seconds(text: str) -> float:
    number, unit = text.split()
    return float(number.replace(",", "")) / (1000 if unit == "ms" else 1)


def test_a_training_says_what_it_waits_for_and_its_time_from_the_click(app_url, tmp_path):
    """While the zip is read the status says so, with the time so far; the result says how long the learner
    waited from the click, not only the training's own seconds."""
    import re

    from gradio_client import Client

    client = Client(app_url, verbose=False, download_files=False)  # its clock then times the server, not downloads
    photos = _file(_slow_zip(tmp_path / "slow.zip", members=12))
    clicked = time.monotonic()
    job = client.submit(photos, api_name="/train")
    final = job.result()[0]
    waited_here = time.monotonic() - clicked
    statuses = [outputs[0] for outputs in job.outputs()]
    reading = [s for s in statuses if "The training process is starting and reading the data (" in str(s)]
    assert reading and all(str(s).endswith(" so far).</p>") for s in reading), statuses
    found = re.search(r"([\d.,]+ m?s) from your click to this result \(.*?([\d.,]+ m?s) training, ([\d.,]+ m?s) "
                      r"starting, reading the data and writing the files\)", final)  # fmt: skip
    assert found, final
    total, training, rest = (_seconds(found.group(i)) for i in (1, 2, 3))
    assert waited_here - 5.0 <= total <= waited_here + 0.1  # what the learner waited (less uploading the zip)
    assert rest >= 2.0 and training < total  # reading the slow zip counts, and is not called training
