"""ui.queueing's answers that need no running server: who a visitor is, and whether it crowds the queue."""

from __future__ import annotations

import types

import pytest

from playground.config import Limits
from ui import queueing


@pytest.fixture
def hops(monkeypatch):
    def trust(n: int):
        monkeypatch.setattr(queueing, "proxy_hops", lambda: n)

    return trust


def _scope(forwarded: list[bytes], peer="10.0.0.9"):
    return {"headers": [(b"x-forwarded-for", value) for value in forwarded], "client": (peer, 5000)}


def test_the_address_is_the_entry_the_trusted_proxy_appended(hops):
    hops(1)
    # A client wrote "6.6.6.6" itself; the one proxy in front appended what it saw: 203.0.113.7.
    assert queueing.address(_scope([b"6.6.6.6, 203.0.113.7"])) == "203.0.113.7"
    assert queueing.address(_scope([b"6.6.6.6", b"203.0.113.7"])) == "203.0.113.7"  # two header lines, in order
    assert queueing.address(_scope([])) == "10.0.0.9"  # nothing appended: the peer
    hops(2)
    assert queueing.address(_scope([b"6.6.6.6, 198.51.100.1, 10.1.1.1"])) == "198.51.100.1"
    hops(0)  # no proxy trusted: whatever a client writes is ignored
    assert queueing.address(_scope([b"6.6.6.6"])) == "10.0.0.9"


def test_the_same_answer_for_a_request_object(hops):
    hops(1)
    request = types.SimpleNamespace(
        headers={"x-forwarded-for": "6.6.6.6, 203.0.113.7"}, client=types.SimpleNamespace(host="10.0.0.9")
    )
    assert queueing.address(request) == "203.0.113.7"
    hops(0)
    assert queueing.address(request) == "10.0.0.9"
    assert queueing.address(None) == ""


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, 0), ({"SPACE_ID": "someone/alexnet"}, 1), ({"SPACE_ID": "x", "PLAYGROUND_PROXY_HOPS": "0"}, 0)],
)
def test_proxies_trusted_by_default_only_on_a_space(monkeypatch, environ, expected):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("PLAYGROUND_PROXY_HOPS", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    queueing.proxy_hops.cache_clear()
    try:
        assert queueing.proxy_hops() == expected
    finally:
        queueing.proxy_hops.cache_clear()


def test_a_bad_proxy_count_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_PROXY_HOPS", "one")
    queueing.proxy_hops.cache_clear()
    try:
        with pytest.raises(ValueError, match="PLAYGROUND_PROXY_HOPS"):
            queueing.proxy_hops()
    finally:
        queueing.proxy_hops.cache_clear()


def test_one_session_or_address_may_hold_only_part_of_the_queue(hops, monkeypatch):
    hops(0)
    monkeypatch.setattr(
        queueing, "get_limits", lambda: Limits(queued_events_per_session=2, queued_events_per_address=3)
    )

    def event(session, peer):
        return types.SimpleNamespace(
            session_hash=session, request=types.SimpleNamespace(headers={}, client=types.SimpleNamespace(host=peer))
        )

    queue = types.SimpleNamespace(
        event_queue_per_concurrency_id={
            "a": types.SimpleNamespace(queue=[event("s1", "10.0.0.1"), event("s1", "10.0.0.1")]),
            "b": types.SimpleNamespace(queue=[event("s2", "10.0.0.1"), event("s3", "10.0.0.2")]),
        }
    )
    assert "You already have 2 requests waiting" in queueing.crowding_problem(queue, "s1", "10.0.0.1")
    assert "from your network" in queueing.crowding_problem(queue, "fresh", "10.0.0.1")
    assert queueing.crowding_problem(queue, "fresh", "10.0.0.2") == ""
    assert queueing.crowding_problem(None, "s1", "10.0.0.1") == ""


def _long_event(session, peer, group):
    request = types.SimpleNamespace(headers={}, client=types.SimpleNamespace(host=peer))
    return types.SimpleNamespace(session_hash=session, request=request, concurrency_id=group)


def test_units_passes_are_admitted_as_units_passes_one_per_address(hops, monkeypatch):
    """Three addresses holding passes must leave room in the queue for a fourth visitor, and the sentences
    call a Units pass a Units pass."""
    hops(0)
    monkeypatch.setattr(queueing, "get_limits", lambda: Limits())
    running = [_long_event("grid-a", "10.0.0.1", queueing.UNITS)]
    waiting = [_long_event("grid-b", "10.0.0.2", queueing.UNITS), _long_event("grid-c", "10.0.0.3", queueing.UNITS)]
    queue = types.SimpleNamespace(
        event_queue_per_concurrency_id={queueing.UNITS: types.SimpleNamespace(queue=waiting)},
        active_jobs=[running, None],
    )
    monkeypatch.setattr(queueing, "_queue", lambda: queue)

    def asking(session, peer):
        return types.SimpleNamespace(session_hash=session, headers={}, client=types.SimpleNamespace(host=peer))

    assert queueing.admission_problem(asking("fourth", "10.0.0.4"), queueing.UNITS) == ""  # room for a fourth
    second = queueing.admission_problem(asking("other-tab", "10.0.0.1"), queueing.UNITS)
    assert "1 Units pass from your network is already queued or running (the limit is 1)" in second
    assert "long job" not in second
    mine = queueing.admission_problem(asking("grid-a", "10.0.0.1"), queueing.UNITS)
    assert mine.startswith("You already have a Units pass queued or running")


def _in_event(enqueued: float, fn):
    """Run ``fn`` as Gradio runs a handler: with its app and event named in the context, the event stamped
    with the time its click joined the queue."""
    import contextvars

    from gradio.context import LocalContext

    event = types.SimpleNamespace(enqueue_time=enqueued)
    blocks = types.SimpleNamespace(_queue=types.SimpleNamespace(event_ids_to_events={"the-event": event}))

    def run():
        LocalContext.blocks.set(blocks)
        LocalContext.event_id.set("the-event")
        return fn()

    return contextvars.copy_context().run(run)


def test_a_caption_counts_the_time_from_the_click_not_only_the_computing():
    """The first Grad-CAM under load waited 98 s in the queue while its caption said 50 ms."""
    import time

    from ui.handlers import Clock

    clicked = time.monotonic() - 97.9  # the click joined the queue; the handler starts now
    clock = _in_event(clicked, Clock.start)
    assert clock.clicked == clicked
    caption = clock.took(("computing", 0.05))
    total, waited = caption.split(" from your click to this result (")[0], caption.split("(")[1].split(",")[0]
    assert float(total.removesuffix(" s")) >= 97.9 and waited.startswith("97.9 s waiting for the server")
    assert "50 ms computing" in caption
    assert queueing.arrival() is None  # outside an event: no click known ...
    assert Clock.start().took(("computing", 0.05)).endswith("on the server (50 ms computing)")  # ... nor claimed


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.0004, "0 ms"), (0.05, "50 ms"), (0.9996, "1.0 s"), (97.94, "97.9 s"), (1234.4, "1,234 s")]
)
def test_times_read_as_a_learner_reads_them(seconds, shown):
    from ui.handlers import duration

    assert duration(seconds) == shown
