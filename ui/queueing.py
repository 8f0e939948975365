"""What Gradio's queue knows: who is queued or running, whether anyone still listens, who is asking, and when
their click arrived.

Gradio 6 answers neither question in its public API, so this module reads its queue (``Blocks._queue``):
the waiting events per concurrency group, the running ones, and each session's unread messages. It is
the one place that does; the version range in requirements.txt pins what it reads, and the tests cover
each answer through a running server.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import gradio as gr
from gradio.context import LocalContext

from playground.config import get_limits
from playground.serving.jobs import (
    LONG,
    UNITS,
    UNITS_QUICK,
)  # the concurrency groups: long jobs, and Units passes apart


def _queue():
    blocks = LocalContext.blocks.get(None)
    return getattr(blocks, "_queue", None)


def arrival() -> float | None:
    """When the event this handler runs for joined Gradio's queue (``time.monotonic()``), or None outside one.

    That is when the server received the click: the browser's ``/queue/join`` request creates the event and
    stamps it (``Event.enqueue_time``); Gradio names the running event in the handler's context
    (``LocalContext.event_id``). Read it in the handler's own thread.
    """
    queue, event_id = _queue(), LocalContext.event_id.get(None)
    if queue is None or event_id is None:
        return None
    event = queue.event_ids_to_events.get(event_id)
    return getattr(event, "enqueue_time", None)


PROXY_HOPS_ENV = "PLAYGROUND_PROXY_HOPS"  # proxies in front of the app that append to X-Forwarded-For


@functools.cache
def proxy_hops() -> int:
    """How many proxies in front of the app to trust: ``PLAYGROUND_PROXY_HOPS``, else one on a Hugging Face
    Space (which sets ``SPACE_ID``; its proxy appends the visitor's address) and none elsewhere."""
    text = os.environ.get(PROXY_HOPS_ENV)
    if text is None:
        return 1 if os.environ.get("SPACE_ID") else 0
    if not text.strip().isdigit():
        raise ValueError(f"{PROXY_HOPS_ENV}={text!r} is not valid: it counts proxies (0, 1, 2, ...)")
    return int(text)


def address(request) -> str:
    """The visitor's network address, for per-address limits: on a ``gr.Request``, on the HTTP request a
    queued event keeps, and on an ASGI scope (the guard's).

    A client can write any X-Forwarded-For it likes; a proxy appends the address it saw to what it was sent.
    So the entry the nearest trusted proxy appended (``proxy_hops()`` from the right) names the visitor, and
    with no proxy trusted it is the peer of the connection.
    """
    if request is None:
        return ""
    if isinstance(request, dict):  # an ASGI scope
        headers = request.get("headers", [])
        forwarded = [value.decode("latin-1") for key, value in headers if key == b"x-forwarded-for"]
        peer = (request.get("client") or ("",))[0]
    else:
        headers = getattr(request, "headers", None) or {}
        getlist = getattr(headers, "getlist", None)
        forwarded = getlist("x-forwarded-for") if getlist else [headers.get("x-forwarded-for", "")]
        peer = getattr(getattr(request, "client", None), "host", "") or ""
    hops = proxy_hops()
    entries = [entry.strip() for line in forwarded for entry in line.split(",") if entry.strip()]
    if hops and entries:
        return entries[-min(hops, len(entries))]
    return peer or ""


def listener_check(request: gr.Request | None, group: str | None = None) -> Callable[[], bool]:
    """A check, callable from any thread (a worker's watchdog), of whether this request's listener has gone.

    Gone: the client closed its event stream (Gradio then marks the session's events as no longer alive and
    drops their messages, so nothing piles up); the event of ``group`` that was running when the check was made
    was cancelled (it left the running events while its handler's thread, which Gradio cannot interrupt, went
    on); or its unread messages pile up (a client that joined the queue and never opened the stream).
    """
    queue = _queue()  # read here: the context that names the app is this thread's alone
    session = getattr(request, "session_hash", None)
    if queue is None or not session:
        return lambda: False
    threshold = get_limits().unread_messages_when_gone

    def running() -> list:
        return [event for job in list(queue.active_jobs) if job for event in job if event.session_hash == session]

    # Ours: the event of ``group`` this request runs in, alive when the check is made. Another event of the
    # session may already be marked gone: Gradio marks every running event of a session when one of its
    # streams closes, and a browser closes its stream when its last event completes and opens a new one for
    # the next, so the picture that just finished can be marked while the next click's event is ours.
    ours = [event for event in running() if (group is None or event.concurrency_id == group) and event.alive]

    def gone() -> bool:
        mine = running()
        current = [event for event in ours if any(event is other for other in mine)]
        if group is not None and not current:
            return True  # cancelled (perhaps before this check was made: then none was found at all)
        if any(not event.alive for event in current):
            return True  # the client closed its stream while ours ran
        pending = queue.pending_messages_per_session.get(session)
        return pending is not None and pending.qsize() >= threshold

    return gone


JOB_NAMES = {
    LONG: ("long job", "long jobs"),
    UNITS: ("Units pass", "Units passes"),
    UNITS_QUICK: ("Units pass", "Units passes"),
}  # (one, many) in sentences


def _long_events(group_id: str = LONG) -> tuple[list, list]:
    """(waiting, running) events of a concurrency group (the long-jobs one by default)."""
    queue = _queue()
    if queue is None:
        return [], []
    group = queue.event_queue_per_concurrency_id.get(group_id)
    waiting = list(group.queue) if group else []
    running = [event for job in list(queue.active_jobs) if job for event in job if event.concurrency_id == group_id]
    return waiting, running


def admission_problem(request: gr.Request | None, group: str = LONG) -> str:
    """Why a new long job from this visitor cannot join the queue now, or "" when it can.

    One job per session and a few per address at a time (queued or running), and only a few waiting
    for the whole server, so long jobs can never fill the queue that everyone's clicks go through.
    """
    limits = get_limits()
    waiting, running = _long_events(group)
    session, where = getattr(request, "session_hash", None), address(request)
    one, many = JOB_NAMES.get(group, JOB_NAMES[LONG])
    mine = [event for event in waiting + running if event.session_hash == session]
    if mine:
        return f"You already have a {one} queued or running; stop it or wait for it to finish."
    from_here = [event for event in waiting + running if address(getattr(event, "request", None)) == where]
    per_address = limits.long_jobs_per_address if group == LONG else limits.units_jobs_per_address
    if where and len(from_here) >= per_address:
        return (
            f"{len(from_here)} {one if len(from_here) == 1 else many} from your network "
            f"{'is' if len(from_here) == 1 else 'are'} already queued or running (the limit is {per_address}); "
            "try again when one has finished."
        )
    if len(waiting) >= limits.long_jobs_waiting:
        return (
            f"The server is busy: {_count(len(running), one, many)} running and {len(waiting)} waiting. "
            "Please try again in a few minutes."
        )
    return ""


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one} is" if n == 1 else f"{n} {many} are"


def crowding_problem(queue, session: str | None, where: str) -> str:
    """Why one more event from this session and address cannot wait in ``queue`` (Gradio's), or "".

    A browser has a few events in flight (opening the page fires a dozen at once); a client that joins
    event after event, fresh session or not, could otherwise fill the queue that everyone's clicks go
    through. Asked by the guard before Gradio's own queue sees the request.
    """
    if queue is None:
        return ""
    limits = get_limits()
    waiting = [event for group in list(queue.event_queue_per_concurrency_id.values()) for event in list(group.queue)]
    if session and sum(event.session_hash == session for event in waiting) >= limits.queued_events_per_session:
        return (
            f"You already have {limits.queued_events_per_session} requests waiting; please wait for them to "
            "finish before sending more."
        )
    if where and sum(address(event.request) == where for event in waiting) >= limits.queued_events_per_address:
        return (
            f"{limits.queued_events_per_address} requests from your network are already waiting; please try "
            "again in a moment."
        )
    return ""


def admits_long_jobs(handler, group: str = LONG):
    """A Gradio validator for ``handler``'s event: refuse a long job at the door, before it takes a place in
    the queue. Jobs are counted within their concurrency ``group``: a learner may train and look at units
    at the same time, but runs one job of each kind.

    Gradio calls a validator with the handler's own parameters (the request among them, where the handler
    asks for one), and wants a verdict per input; the refusal is shown on the first one.
    """

    @functools.wraps(handler)
    def validator(*args, **kwargs):
        values = [*args, *kwargs.values()]
        request = next((value for value in values if isinstance(value, gr.Request)), None)
        verdicts = [None] * sum(1 for value in values if not isinstance(value, gr.Request))
        problem = admission_problem(request, group)
        if problem and verdicts:
            verdicts[0] = gr.validate(False, problem)
        return verdicts

    return validator
