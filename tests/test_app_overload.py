"""A server past its limits says so in a sentence and keeps serving: a full queue, and a class at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import httpx
import pytest

from bench.load import App, call, upload
from tests.conftest import start_app
from ui.photos import example_paths

pytestmark = pytest.mark.http


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """The app with room for three waiting requests and one running per event."""
    with start_app(tmp_path_factory, PLAYGROUND_QUEUE_MAX_SIZE="3", PLAYGROUND_CONCURRENCY="1") as (url, _):
        yield App(url, httpx.get(url.rstrip("/") + "/config", timeout=30).json())


def test_a_full_queue_turns_requests_away_with_a_sentence_and_then_serves_again(small_server):
    app = small_server

    async def flood():
        async with httpx.AsyncClient(timeout=120) as client:
            with open(example_paths()[0], "rb") as handle:
                photo = await upload(client, app, handle.read(), "cup.png")
            slow = dict(method="integrated_gradients")
            fn_index, data = app.payload("attribute", photo, **slow)
            data[-1] = 200  # n_steps: about a second each on one core
            calls = [call(client, app, uuid.uuid4().hex[:10], "attribute", fn_index, data) for _ in range(10)]
            outcomes = [message for _, _, message in await asyncio.gather(*calls)]
            fn_index, data = app.payload("predict", photo)
            after = (await call(client, app, uuid.uuid4().hex[:10], "predict", fn_index, data))[2]
            return outcomes, after

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop: a browser test may hold this thread's
        outcomes, after = pool.submit(asyncio.run, flood()).result()
    refused = [m for m in outcomes if not m.get("success")]
    served = [m for m in outcomes if m.get("success")]
    assert refused and served  # some waited their turn, the rest were turned away
    assert all("Queue is full" in str(m["output"]["error"]) for m in refused)  # the browser says "currently busy"
    assert after.get("success") and len(after["output"]["data"][0]["confidences"]) == 5  # and it serves again
