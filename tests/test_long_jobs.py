"""The one long-job loop (ui.long_jobs) and its watchdog: a job ends when its learner leaves it, however they
leave, even while its handler's thread is blocked or abandoned."""

from __future__ import annotations

import threading
import time
import types

import pytest

from playground.serving import workers
from playground.serving.jobs import LONG, UNITS
from tests.test_workers import sleeping_for  # a light module: a child imports it without Gradio
from ui import long_jobs, queueing, state


# Jobs run in a fresh process, so they live at module level where the child can import them.
def reading_quietly(seconds: float):
    """A job that sends nothing for a long time, as one reading a large dataset does."""
    time.sleep(seconds)
    yield "read"


def _request(session: str):
    return types.SimpleNamespace(session_hash=session, headers={}, client=None)


def _wait_until(condition, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(autouse=True)
def _fresh_jobs(monkeypatch):
    monkeypatch.setattr(long_jobs, "JOBS", state.JOBS.__class__())
    yield


def test_stop_ends_a_quiet_worker_even_when_nobody_pulls_its_records():
    """Gradio cannot interrupt a handler's thread; a cancelled handler stops pulling. Stop must still end it."""
    request = _request("stopper")
    with long_jobs.LongJob(long_jobs.JobKind(worker_name="Units", idle=False), request) as slot:
        records = slot.run(reading_quietly, 600)
        assert isinstance(next(records), long_jobs.Waiting)  # the worker is quiet; the loop says so
        worker = slot.worker
        assert worker.alive()
        long_jobs.stop(request)  # ... and nobody pulls any more (the handler was abandoned)
        took = _wait_until(lambda: not worker.alive(), 5)
    assert took < 2.5  # the watchdog asks every second


def test_a_stopped_job_says_so_instead_of_failing():
    request = _request("says-stopped")
    with long_jobs.LongJob(long_jobs.JobKind(worker_name="Units", idle=False), request) as slot:
        records = slot.run(reading_quietly, 600)
        next(records)
        threading.Timer(0.3, long_jobs.stop, args=(request,)).start()
        assert [type(r) for r in records][-1] is long_jobs.Stopped
    assert not long_jobs.JOBS.busy("says-stopped")  # the slot is free again


def test_one_job_per_session_and_group():
    request = _request("one-each")
    with long_jobs.LongJob(long_jobs.JobKind(), request):
        with pytest.raises(ValueError, match="already have a training job or an experiment running"):
            long_jobs.LongJob(long_jobs.JobKind(), request)
        with long_jobs.LongJob(long_jobs.units_kind(), request):  # a Units pass beside a training is fine
            with pytest.raises(ValueError, match="already have a Units pass running"):
                long_jobs.LongJob(long_jobs.units_kind(), request)
    assert not long_jobs.JOBS.busy("one-each", LONG) and not long_jobs.JOBS.busy("one-each", UNITS)


def test_a_new_pass_waits_for_a_stopped_ones_process_so_there_are_never_more_than_the_limit(monkeypatch):
    kind = long_jobs.JobKind(worker_name="Units", idle=False, max_running=1)
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(workers.live_workers("Units"))
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    first, second = _request("first"), _request("second")
    try:
        with long_jobs.LongJob(kind, first) as slot:
            records = slot.run(reading_quietly, 600)
            next(records)
            long_jobs.stop(first)  # its queue slot is free at once, its process within a second
            with long_jobs.LongJob(kind, second) as other:
                assert isinstance(next(other.run(reading_quietly, 600)), long_jobs.Waiting)
    finally:
        done.set()
    assert max(seen) == 1


class _Queue:
    """Just what listener_check reads of Gradio's queue."""

    def __init__(self, *events):
        self.active_jobs = [list(events), None]
        self.pending_messages_per_session = {}


def _event(session, group=UNITS):
    return types.SimpleNamespace(session_hash=session, concurrency_id=group, alive=True)


def test_listener_check_sees_a_closed_stream_a_cancelled_event_and_unread_messages(monkeypatch):
    ours, other = _event("s"), _event("s", group=LONG)
    queue = _Queue(ours, other)
    monkeypatch.setattr(queueing, "_queue", lambda: queue)
    gone = queueing.listener_check(_request("s"), UNITS)
    assert not gone()
    ours.alive = False  # the client closed its stream: Gradio marks the session's events so
    assert gone()
    ours.alive = True
    queue.active_jobs = [[other], None]  # our event was cancelled: it left the running events
    assert gone()
    queue.active_jobs = [[ours, other], None]
    queue.pending_messages_per_session["s"] = types.SimpleNamespace(qsize=lambda: 100)  # nobody reads
    assert gone()
    queue.pending_messages_per_session["s"] = types.SimpleNamespace(qsize=lambda: 1)
    assert not gone()


def test_a_finished_event_marked_gone_does_not_end_the_next_one(monkeypatch):
    """A browser closes its stream when its last event completes and Gradio then marks every running event of
    the session; the picture that just finished can be marked while the next click's event runs on."""
    finishing, ours = _event("s"), _event("s")
    finishing.alive = False
    queue = _Queue(finishing, ours)
    monkeypatch.setattr(queueing, "_queue", lambda: queue)
    gone = queueing.listener_check(_request("s"), UNITS)
    assert not gone()
    queue.active_jobs = [[ours], None]  # the finished one leaves
    assert not gone()


def test_the_watchdog_survives_a_check_that_fails():
    def broken():
        raise RuntimeError("a check that fails")

    worker = workers.Worker(reading_quietly, 600, settings=workers.WorkerSettings.from_limits(idle=False),
                            cancelled=broken)  # fmt: skip
    try:
        time.sleep(1.5)
        assert worker.alive()  # the reaper went on ...
        flag = threading.Event()
        other = workers.Worker(reading_quietly, 600, settings=workers.WorkerSettings.from_limits(idle=False),
                               cancelled=flag.is_set)  # fmt: skip
        flag.set()
        _wait_until(lambda: not other.alive(), 5)  # ... and still stops the others
    finally:
        worker.stop()


def test_a_units_pass_past_its_time_limit_is_stopped_with_a_sentence():
    kind = long_jobs.JobKind(worker_name="Units", idle=False, grace_seconds=0.0)
    with long_jobs.LongJob(kind, _request("slow")) as slot:
        with pytest.raises(ValueError, match="The Units pass took longer than its 1 s limit and was stopped"):
            list(slot.run(reading_quietly, 600, cap_seconds=1))
        assert not slot.worker.alive()


def test_a_worker_that_does_not_fit_the_memory_pool_waits_for_one_to_end(monkeypatch):
    from playground.config import Limits
    from ui import runner

    gib = 1024**3
    monkeypatch.setattr(runner, "get_limits", lambda: Limits(workers_memory_bytes=3 * gib))
    first = long_jobs.JobKind(worker_name="Units", idle=False, memory_bytes=2 * gib, lane="slow")
    second = long_jobs.JobKind(worker_name="Units", idle=False, memory_bytes=2 * gib, lane="quick")
    with long_jobs.LongJob(first, _request("holds")) as holding:
        held = holding.run(sleeping_for, 600)  # kept: a generator dropped would stop its worker
        assert next(held) == "started"
        assert workers.reserved_bytes() >= 2 * gib
        with long_jobs.LongJob(second, _request("waits")) as waiting:
            records = waiting.run(sleeping_for, 600)
            assert isinstance(next(records), long_jobs.Waiting) and waiting.worker is None  # no room: not started
            holding.worker.stop()
            deadline = time.monotonic() + 10
            while waiting.worker is None:  # started once the first is gone
                next(records)
                assert time.monotonic() < deadline
            assert waiting.worker.alive()


def test_lanes_take_turns_apart():
    """A quick pass never waits for a slow lane's worker (each lane has its own limit of workers)."""
    slow = long_jobs.JobKind(worker_name="Units", idle=False, max_running=1, lane="Units")
    quick = long_jobs.JobKind(worker_name="Units", idle=False, max_running=1, lane="Units quick")
    with long_jobs.LongJob(slow, _request("grid")) as grid:
        grid_records = grid.run(sleeping_for, 600)
        next(grid_records)
        with long_jobs.LongJob(quick, _request("picture")) as picture:
            started = time.monotonic()
            picture_records = picture.run(sleeping_for, 600)
            next(picture_records)
            assert picture.worker is not None and time.monotonic() - started < 5


def test_a_picture_still_finishing_does_not_refuse_the_same_learners_next_pass():
    """The quick lane's visualisation and a dataset pass queue apart, so they claim apart: a click on Top
    patches the moment the picture arrives (its handler still closing) must not be refused."""
    request = _request("both-lanes")
    with long_jobs.LongJob(long_jobs.units_kind(quick=True), request):
        with long_jobs.LongJob(long_jobs.units_kind(), request):
            pass
        with pytest.raises(ValueError, match="already have a Units pass running"):
            long_jobs.LongJob(long_jobs.units_kind(quick=True), request)


def test_a_waiting_job_says_why_and_jobs_start_in_the_order_they_came(monkeypatch):
    """Room for one worker at a time: the second job waits for memory and is next; the third is told one job is
    ahead of it, and does not jump ahead when room frees (it would, polling first, without the line)."""
    from playground.config import Limits
    from ui import runner

    gib = 1024**3
    monkeypatch.setattr(runner, "get_limits", lambda: Limits(workers_memory_bytes=3 * gib))
    kind = long_jobs.JobKind(worker_name="training", idle=False, memory_bytes=2 * gib)
    with long_jobs.LongJob(kind, _request("first")) as first:
        held = first.run(sleeping_for, 600)
        assert next(held) == "started"
        with long_jobs.LongJob(kind, _request("second")) as second, long_jobs.LongJob(kind, _request("third")) as third:
            second_records, third_records = second.run(sleeping_for, 600), third.run(sleeping_for, 600)
            waiting = next(second_records)
            assert isinstance(waiting, long_jobs.Waiting)
            assert waiting.why.startswith("Waiting for room in the server's memory for your training process")
            assert "yours is next" in waiting.why
            behind = next(third_records)
            assert behind.why == "Waiting for a free training slot: 1 job ahead of you"
            assert behind.text().startswith(behind.why + " (") and behind.text().endswith(" so far).")
            first.worker.stop()
            _wait_until(lambda: workers.live_workers() == 0, 10)
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:  # room for one: the third asks first, yet the second is first
                assert next(third_records).why.endswith("1 job ahead of you") and third.worker is None
            pulled = []
            while "started" not in pulled:  # the worker starts and its first record comes in the same pull
                pulled.append(next(second_records))
            assert second.worker.alive() and third.worker is None
            assert "yours is next" in next(third_records).why  # now first in line, waiting for room
            second.worker.stop()


def test_a_quiet_worker_is_said_to_be_starting_and_reading_until_it_reports():
    with long_jobs.LongJob(long_jobs.JobKind(worker_name="Units", idle=False), _request("quiet")) as slot:
        waiting = next(slot.run(reading_quietly, 600))
        assert waiting.why == "The Units process is starting and reading the data"
        assert waiting.seconds >= long_jobs.HEARTBEAT_SECONDS


def test_live_curves_are_redrawn_less_often_when_drawing_them_takes_long(monkeypatch):
    clock = iter([10.0, 10.0 + 0.02, 100.0, 100.0 + 0.4])  # a quick drawing, then a slow one (a busy server)
    monkeypatch.setattr(long_jobs.time, "monotonic", lambda: next(clock))
    redraws = long_jobs.Redraws()
    assert redraws.due(0.0)  # nothing drawn yet
    assert redraws.draw(lambda: "picture") == "picture"
    plot = long_jobs.get_limits().plot_seconds
    assert not redraws.due(10.02 + plot - 0.1) and redraws.due(10.02 + plot + 0.1)  # quick: every plot_seconds
    redraws.draw(lambda: "picture")  # took 0.4 s: next one after 0.4 / 5 % = 8 s, not plot_seconds
    assert not redraws.due(100.4 + 7.9) and redraws.due(100.4 + 8.1)
