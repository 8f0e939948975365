"""Shared fixtures: a real app server for the HTTP and browser tests."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["PLAYGROUND_OFFLINE"] = "1"  # in-process tests must not download weights either
if "PLAYGROUND_RUNS_DIR" not in os.environ:  # nor fill the real runs folder
    os.environ["PLAYGROUND_RUNS_DIR"] = tempfile.mkdtemp(prefix="playground-test-runs-")
    atexit.register(shutil.rmtree, os.environ["PLAYGROUND_RUNS_DIR"], True)
if "PLAYGROUND_DATA_DIR" not in os.environ:  # nor the real class board's database
    os.environ["PLAYGROUND_DATA_DIR"] = tempfile.mkdtemp(prefix="playground-test-data-")
    atexit.register(shutil.rmtree, os.environ["PLAYGROUND_DATA_DIR"], True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER: dict = {}  # the running app's process id, for tests that watch its memory


@contextlib.contextmanager
def start_app(tmp_path_factory, **settings):
    """Start ``python app.py`` exactly as ``make run`` does, on a free local port, with extra environment
    ``settings``: ``with start_app(...) as (url, process)``; stopped when the block ends."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "app.log"
    # Each server's run folders in a temporary folder of its own: a stopped server never frees its sessions' runs,
    # and left in the shared default they would count against the next servers' disk budget.
    settings = {"PLAYGROUND_RUNS_DIR": str(tmp_path_factory.mktemp("runs")),
                "PLAYGROUND_DATA_DIR": str(tmp_path_factory.mktemp("data")), **settings}  # fmt: skip
    env = dict(
        os.environ,
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        PLAYGROUND_OFFLINE="1",  # never download weights in tests ...
        TORCH_HOME=str(tmp_path_factory.mktemp("torch-home")),  # ... nor find a real cached copy
        **settings,
    )
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the app did not start; its log:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The app, as ``make run`` serves it, for every HTTP and browser test; as on a Space, one proxy in front
    is trusted to append the visitor's address to X-Forwarded-For (a test that sets it plays that proxy)."""
    with start_app(tmp_path_factory, PLAYGROUND_PROXY_HOPS="1") as (url, process):
        SERVER["pid"] = process.pid
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    """A gradio_client session against the running app (one per test module)."""
    from gradio_client import Client

    return Client(app_url, verbose=False)
