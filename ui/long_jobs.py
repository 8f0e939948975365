"""The long-job loop, one for every tab that starts a worker (Train, Experiments, Units).

It claims the session's slot in its group (one training or experiment, one Units pass), starts the worker,
streams its records, and ends the job however the learner leaves it: Stop pressed, the tab closed, the client
hung up, or the job ran past its cap. The worker is stopped by its watchdog (the reaper thread asks
:func:`ui.queueing.listener_check` and the Stop flag every second), not only by this loop: Gradio cannot
interrupt a handler's thread, so a cancelled handler that waits on a worker would otherwise leave it running.
While the job waits (for its turn, for room, or on a quiet worker reading a dataset), the loop yields
:class:`Waiting` every few seconds with what it waits for, so the page can say why (and a client that stopped
reading is noticed). Jobs of a queue that wait for room go in the order they came (:class:`WaitingLine`), so
"2 jobs ahead of you" is what happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import gradio as gr

from playground.config import get_limits
from playground.serving import workers
from playground.serving.jobs import LONG, UNITS, UNITS_QUICK
from ui import runner
from ui.handlers import Clock, duration, user_errors
from ui.queueing import JOB_NAMES, listener_check
from ui.state import JOBS, session_of

HEARTBEAT_SECONDS = 2.0  # a quiet worker is reported this often
ROOM_SECONDS = 10.0  # how long a new job waits for a stopped one's process to be gone before it starts anyway
ROOM_POLL_SECONDS = 1.0  # how often a job waiting for room in the workers' memory pool looks again
CAP_GRACE_SECONDS = 120.0  # a job stops itself at its cap; past this much more the loop stops it


@dataclasses.dataclass
class Redraws:
    """When a live picture (a job's curves) is drawn again: every ``plot_seconds``, or less often when drawing it
    took long, as on a class's busy server, so drawing takes at most ``DRAW_SHARE`` of the time."""

    DRAW_SHARE = 0.05
    last: float = -float("inf")  # time.monotonic() of the last drawing
    took: float = 0.0  # how long it took

    def due(self, now: float) -> bool:
        return now - self.last > max(get_limits().plot_seconds, self.took / self.DRAW_SHARE)

    def draw(self, make: Callable[[], object]) -> object:
        start = time.monotonic()
        picture = make()
        self.last = time.monotonic()
        self.took = self.last - start
        return picture


@dataclasses.dataclass(frozen=True)
class Waiting:
    """The job has had nothing new to show for a while: it waits for its turn or for room, or its worker is
    quiet (starting, reading data)."""

    seconds: float  # since the learner's click (see ui.handlers.Clock)
    why: str = ""  # what it waits for, as a sentence; "": its worker is busy with what it last reported

    def text(self) -> str:
        """The sentence a page shows: "Waiting for a free training slot: 2 jobs ahead of you (12.0 s so far)."."""
        return f"{self.why or 'Working'} ({duration(self.seconds)} so far)."


@dataclasses.dataclass(frozen=True)
class Stopped:
    """The job was stopped (Stop pressed, the session ended or nobody listens); nothing more comes."""


@dataclasses.dataclass(frozen=True)
class JobKind:
    """How a tab's jobs run: their group (one per session in each), their name in sentences, their worker."""

    group: str = LONG
    worker_name: str = "training"  # "The training process ..." in the worker's messages
    memory_bytes: int | None = None  # the worker's memory limit (None: a training worker's)
    idle: bool = True  # idle scheduling class (training); False: niced only, for a job the learner watches
    max_running: int | None = None  # at most this many of these workers alive at once (None: no wait)
    grace_seconds: float = CAP_GRACE_SECONDS  # a job that stops itself at its cap gets this much longer
    lane: str = ""  # the jobs it takes turns with, for max_running ("": all of its worker_name)
    queue: str = ""  # the concurrency group its events wait in ("": its group)

    @property
    def line(self) -> str:
        """The queue whose jobs wait for room in the order they came."""
        return self.queue or self.group

    @property
    def slot(self) -> str:
        """The slot in sentences: "Waiting for a free training slot"."""
        return "training" if self.group == LONG else self.worker_name


class WaitingLine:
    """The jobs of each queue that wait for room to start, in the order they came: only the first may start.

    Gradio runs a few of a queue's events at once; the workers' limits (per lane, and the memory pool) can still
    make an admitted job wait. A job that has gone (Stop, a closed tab, a cancelled event) no longer counts,
    even while its abandoned handler still holds its place.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._places: dict[str, list[Callable[[], bool]]] = {}  # queue -> each waiting job's "has it gone?"

    @contextlib.contextmanager
    def place(self, line: str, gone: Callable[[], bool]) -> Iterator[Callable[[], int]]:
        """Join ``line`` until the block ends; yields a function: how many jobs still waiting came before."""
        with self._lock:
            self._places.setdefault(line, []).append(gone)

        def ahead() -> int:
            with self._lock:
                places = list(self._places.get(line, []))
            before = places[: next(i for i, other in enumerate(places) if other is gone)]
            return sum(1 for other in before if not _has_gone(other))

        try:
            yield ahead
        finally:
            with self._lock:
                self._places[line] = [other for other in self._places.get(line, []) if other is not gone]


def _has_gone(gone: Callable[[], bool]) -> bool:
    try:
        return bool(gone())
    except Exception:  # noqa: BLE001  (a failing check must not hold up the line)
        return True


LINE = WaitingLine()  # the server's one line per queue


class LongJob:
    """One session's job of a group, from claim to clean-up: a context manager around :meth:`run`.

    The slot is claimed on entry (so a second job of the session is refused at once, with a sentence) and
    released on exit, with the worker stopped, however the handler ends: finished, failed, or closed by Gradio.
    """

    def __init__(self, kind: JobKind, request: gr.Request | None):
        self.kind, self.session = kind, session_of(request)
        one = JOB_NAMES.get(kind.group, JOB_NAMES[LONG])[0]
        self.stop = JOBS.claim(self.session, kind.group, what=_what(kind.group, one))
        self.gone = listener_check(request, kind.queue or kind.group)
        self.clock = Clock.start()  # from the learner's click: Waiting says how long they have waited
        self.worker = None

    def __enter__(self) -> LongJob:
        return self

    def __exit__(self, *exc) -> None:
        if self.worker is not None:
            self.worker.stop()
        JOBS.release(self.session, self.kind.group)

    def run(self, target: Callable[..., Iterator], argument, *, cap_seconds: float | None = None) -> Iterator:
        """Run ``target(argument)`` in a worker; yield its records, :class:`Waiting` while it is quiet, and
        :class:`Stopped` (then nothing) when it is stopped.

        Raises:
            ValueError: the job failed (its sentence), or it ran well past ``cap_seconds``.
        """
        if self.gone():  # it waited in the queue for a visitor who has gone
            return
        kind, stop, gone = self.kind, self.stop, self.gone

        def left() -> bool:
            return stop.is_set() or gone()

        with LINE.place(kind.line, left) as ahead:
            yield from _wait_for_turn(kind, left, ahead, self.clock)
            yield from _wait_for_room(kind, stop, gone, self.clock)
            while self.worker is None:
                if left():
                    yield Stopped()
                    return
                try:
                    self.worker = runner.start(target, argument, memory_bytes=kind.memory_bytes, idle=kind.idle,
                                               kind=kind.worker_name, cancelled=left, lane=kind.lane)  # fmt: skip
                except workers.NoRoom:  # the other lanes' workers hold the memory: wait for one to end
                    yield Waiting(self.clock.since_click(), _no_room(kind))
                    stop.wait(ROOM_POLL_SECONDS)
        JOBS.attach(self.session, self.worker, kind.group)
        yield from _records(self.worker, stop, gone, cap_seconds, kind, self.clock)


def _records(worker, stop, gone, cap_seconds: float | None, kind: JobKind, clock: Clock) -> Iterator:
    started = quiet_since = time.monotonic()
    starting = f"The {kind.worker_name} process is starting and reading the data"  # until it first reports
    hard_stop = None if cap_seconds is None else started + cap_seconds + kind.grace_seconds
    try:
        for record in worker.records():
            now = time.monotonic()
            if stop.is_set() or gone():
                yield Stopped()
                return
            if hard_stop is not None and now > hard_stop:
                if kind.grace_seconds:
                    raise ValueError(f"The job ran well past its {cap_seconds:g} s cap and was stopped.")
                raise ValueError(
                    f"The {kind.worker_name} pass took longer than its {cap_seconds:g} s limit and was stopped, so "
                    "others get their turn; try fewer steps, channels or images."
                )
            if record is not None:
                quiet_since, starting = now, ""
                yield record
            elif now - quiet_since >= HEARTBEAT_SECONDS:
                quiet_since = now
                yield Waiting(clock.since_click(), starting)
    except ValueError:
        if stop.is_set() or gone():  # the watchdog stopped it: say so, not why the pipe closed
            yield Stopped()
            return
        raise


def _wait_for_turn(kind: JobKind, left: Callable[[], bool], ahead: Callable[[], int], clock: Clock) -> Iterator:
    """Wait until no job of the line that came before this one still waits to start (said at once, then every
    few seconds)."""
    shown = None
    while (before := ahead()) and not left():
        if shown is None or time.monotonic() - shown >= HEARTBEAT_SECONDS:
            shown, jobs = time.monotonic(), "1 job" if before == 1 else f"{before} jobs"
            yield Waiting(clock.since_click(), f"Waiting for a free {kind.slot} slot: {jobs} ahead of you")
        time.sleep(0.1)


def _wait_for_room(kind: JobKind, stop, gone, clock: Clock) -> Iterator:
    """A job stopped a moment ago frees its queue slot at once, its process within a second or two: wait for
    that, so there are never more of these workers in a lane than its limit."""
    if kind.max_running is None:
        return
    started = time.monotonic()
    while (running := workers.live_workers(kind.lane or kind.worker_name)) >= kind.max_running:
        if time.monotonic() - started > ROOM_SECONDS or stop.wait(0.1) or gone():
            return
        if time.monotonic() - started > HEARTBEAT_SECONDS:
            why = (f"Waiting for a free {kind.slot} slot: {running} running, at most {kind.max_running} at once; "
                   "yours is next")  # fmt: skip
            yield Waiting(clock.since_click(), why)


def _no_room(kind: JobKind) -> str:
    running = workers.live_workers()
    held = "the job running holds it" if running == 1 else f"the {running} jobs running hold it"
    return f"Waiting for room in the server's memory for your {kind.worker_name} process ({held}); yours is next"


def _what(group: str, one: str) -> str:
    return "a training job or an experiment" if group == LONG else f"a {one}"


def stop(request: gr.Request | None, *groups: str) -> None:
    """Ask this session's jobs of ``groups`` (default: the long jobs) to stop (their workers are gone within a
    second)."""
    for group in groups or (LONG,):
        JOBS.stop(session_of(request), group)


def stop_handler(*groups: str):
    """The handler of a tab's Stop button for its jobs' groups (wired with ``cancels=`` to the jobs' events)."""

    @user_errors
    def request_stop(request: gr.Request = None):
        stop(request, *groups)

    return request_stop


def units_kind(*, quick: bool = False) -> JobKind:
    """The Units tab's passes: watched as they form with a budget of seconds, so niced rather than idle-class
    (a busy class would starve them), in a worker of their own memory limit, one at a time in each lane: one
    channel's visualisation (``quick``) never waits behind a whole layer or a dataset pass."""
    limits = get_limits()
    return JobKind(
        group=UNITS_QUICK if quick else UNITS, worker_name="Units", memory_bytes=limits.units_worker_memory_bytes,
        idle=False,
        max_running=limits.units_quick_running if quick else limits.units_jobs_running, grace_seconds=0.0,
        lane="Units quick" if quick else "Units", queue=UNITS_QUICK if quick else UNITS,
    )  # fmt: skip


GOES_WITH_THE_SESSION = (
    "Your models and results live on the server only while this page is open: closing it (or the server "
    "restarting) frees them. **Save my work** (here, or under the model chooser) keeps them, with every tab's settings and "
    "your lesson progress, in one file that **Open my work** brings back, here or on another server."
)


def session_note(tab: str) -> gr.Button:
    """Train's and Experiments' note that their models go with the session, and a Save my work of their own."""
    with gr.Row():
        gr.Markdown(GOES_WITH_THE_SESSION, elem_id=f"{tab}-session-note")
        return gr.Button("Save my work", size="sm", scale=0, min_width=160, elem_id=f"{tab}-save-work")
