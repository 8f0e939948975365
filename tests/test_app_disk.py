"""The disk budget over real HTTP, on a server with a tiny budget and short ages: a class's uploads fill it,
both sweeps run, and a new visitor still gets the example photos."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.load import App
from tests.conftest import start_app
from tests.test_app_hardening import _event, _upload

pytestmark = pytest.mark.http


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    settings = dict(
        PLAYGROUND_UPLOADS_DISK_BYTES=str(3 * 1024**2),  # a few photos fill it
        PLAYGROUND_DISK_RESCAN_SECONDS="1",
        PLAYGROUND_DISK_SWEEP_SECONDS="1",
        PLAYGROUND_CACHE_SWEEP_SECONDS="1",  # Gradio's own age sweep ...
        PLAYGROUND_CACHE_MAX_AGE_SECONDS="2",  # ... of files older than 2 s
        PLAYGROUND_RUNS_DIR=str(tmp_path_factory.mktemp("runs")),
    )
    with start_app(tmp_path_factory, **settings) as (url, _):
        config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
        app = App(url, config)
        app.config = config
        yield app


def _noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (600, 600, 3), dtype=np.uint8)  # ~1 MB, incompressible
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def _example_values(app: App) -> list[dict]:
    """The example photos as the page offers them: files in Gradio's folder, kept there for the app."""
    found = []
    for component in app.config["components"]:
        props = component.get("props", {})
        for sample in props.get("samples") or []:
            for value in sample:
                if isinstance(value, dict) and str(value.get("path", "")).endswith(".png"):
                    found.append({**value, "meta": {"_type": "gradio.FileData"}})
    assert found, "no example photos in the page's config"
    return found


def test_a_new_visitor_gets_the_examples_after_both_sweeps(small_disk):
    for seed in range(6):  # ~6 MB of uploads and results into a 3 MB budget: the disk sweep must run
        photo = _upload(small_disk, f"noise{seed}.png", _noise_png(seed))
        _event(small_disk, "apply_kernel", small_disk.payload("apply_kernel", photo)[1])
    time.sleep(5)  # past the age limit, with both sweeps run a few times
    for example in _example_values(small_disk):
        output = _event(
            small_disk, "apply_kernel", small_disk.payload("apply_kernel", example)[1]
        )  # a new visitor clicks each example
        assert output.get("success"), output
