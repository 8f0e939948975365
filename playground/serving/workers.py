"""Long work in a process of its own, so the server keeps answering clicks and survives whatever happens there.

A :class:`Worker` runs a generator function in a child process that shares no state with the server, at a
lower CPU priority and with a bounded number of threads, and streams
the generator's records back through a pipe. Stopping it terminates the process, so a stop takes effect
at once wherever the job is (decoding a zip, computing features, exporting ONNX) and all of its memory
goes back to the system. A crash, a ``kill`` or an out-of-memory in the child ends the job with a
sentence; the server is untouched.

A job nobody reads any more is stopped by a reaper thread: the server's handler pulls records at least
twice a second while a learner listens, so a job whose records have not been pulled for a few seconds
belongs to a browser that left or an API client that never listened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from playground.config import get_limits

# What to try when a job runs out of memory or is killed by the system, by the kind the learner knows it as.
ADVICE = {
    "training": "Try fewer images, a smaller batch or a smaller model",
    "experiment": "Try fewer images, runs or seeds, or a smaller model",
    "Units": "Try fewer steps or images, or a smaller layer or model",
}
POLL_SECONDS = 0.5  # how long a read waits before handing control back (so callers can check a Stop flag)
# Imported once by the fork server, so that a job's process starts in a fraction of a second instead of the
# ~3 s a fresh interpreter takes to import torch. The fork server is itself a fresh process (never a fork of
# the server, with its threads and users' data) that only imports these; it never runs torch, so the forks
# start without thread pools or CUDA state.
PRELOADED = ("torch", "torchvision", "playground.serving.jobs", "playground.units.jobs")


def _context():
    """Processes forked from a fork server that has imported :data:`PRELOADED` (``spawn`` where there is none)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))
    return context


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    nice: int  # added to the child's CPU niceness: interactive requests win the cores when they need them
    threads: int  # torch's intra-op threads in the child (more would fight the server's requests)
    memory_bytes: int  # the child's data-segment limit (0: none); past it, the job ends with a sentence
    stale_seconds: float  # a job whose records nobody pulled for this long is stopped
    kind: str = "training"  # what the learner knows the job as, for the messages ("The training process ...")
    idle: bool = True  # in the idle scheduling class (training); False: niced only, for a job a learner watches
    advice: str = ""  # what to try when it runs out of memory ("" : the advice for its kind, see ADVICE)
    lane: str = ""  # which jobs it takes turns with (see live_workers; "": its kind's)

    def what_to_try(self) -> str:
        return self.advice or ADVICE.get(self.kind, ADVICE["training"])

    @classmethod
    def from_limits(
        cls, *, memory_bytes: int | None = None, kind: str = "training", idle: bool = True,
        lane: str = "",
    ) -> WorkerSettings:  # fmt: skip
        """The limits' settings; ``memory_bytes`` instead of a training worker's memory limit."""
        limits = get_limits()
        memory = limits.worker_memory_bytes if memory_bytes is None else memory_bytes
        return cls(
            nice=limits.worker_nice, threads=limits.worker_threads, memory_bytes=memory,
            stale_seconds=limits.worker_stale_seconds, kind=kind, idle=idle, lane=lane,
        )  # fmt: skip


def idle_priority(thread_or_process: int) -> None:
    """Put a process (or, on Linux, one thread, by its native id; 0 is the caller) in the idle scheduling class:
    it runs only when nothing else wants the core. A niceness of +10 still took a tenth of a core from a class's
    clicks whenever they wanted both cores; an idle-class job takes what they leave. Needs no privilege; where
    the system has no such class, niceness alone applies."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(thread_or_process, os.SCHED_IDLE, os.sched_param(0))


_LAUNCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_not_reimported():
    """Start a child without re-running the server's main script in it.

    multiprocessing tells every child of a fork server to import the parent's ``__main__`` from its path (the
    app's ``app.py``, and Gradio with it: seconds before the job runs, and memory it never needs). A job's
    target is importable by name, so the child needs none of it; a main module whose spec is named
    ``__main__`` is one multiprocessing leaves alone.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    with _LAUNCH_LOCK:
        main.__spec__ = types.SimpleNamespace(name="__main__")
        try:
            yield
        finally:
            main.__spec__ = None


def warm_up() -> None:
    """Start the fork server now (it takes seconds to import torch), so the first job starts at once."""
    context = _context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
    _start_reaper()  # which also watches the fork server


class Worker:
    """``target(*args)`` (a generator function, importable at module level) running in a child process.

    Iterate :meth:`records` to receive what it yields, in order; it returns when the generator finishes.

    Raises (from :meth:`records`):
        ValueError: the job raised one (its sentence is kept), failed otherwise, ran out of memory or died.
    """

    def __init__(
        self,
        target: Callable[..., Iterator],
        *args,
        settings: WorkerSettings | None = None,
        cancelled: Callable[[], bool] | None = None,
        pool_bytes: int | None = None,
    ):
        """``cancelled``: asked every second by the reaper, from its own thread; True stops the job at once,
        whatever the thread that reads its records is doing (blocked, or abandoned by a cancelled handler).
        ``pool_bytes``: the job starts only if its memory limit fits beside the live workers' within this many
        bytes (else :class:`NoRoom`, and nothing started)."""
        self.settings = settings or WorkerSettings.from_limits()
        self.cancelled = cancelled
        context = _context()
        self._receiver, sender = context.Pipe(duplex=False)
        # A fork server's child dies with it; a child spawned by a thread of the server must not die with that thread.
        orphan_dies = context.get_start_method() == "forkserver"
        self._process = context.Process(
            target=_child, args=(sender, target, args, self.settings, orphan_dies), daemon=True
        )
        self.last_pull = time.monotonic()
        self.stopped_because = ""
        self.starting = True  # counted by live_workers while the job's data is handed over (seconds for a model)
        with _POOL_LOCK:  # checked and taken together: two jobs starting at once cannot both take the last room
            if pool_bytes is not None and reserved_bytes() + self.settings.memory_bytes > pool_bytes:
                raise NoRoom(f"{reserved_bytes():,} of {pool_bytes:,} bytes of worker memory are taken.")
            _LIVE.add(self)
        try:
            with _main_not_reimported():
                self._process.start()
        finally:
            self.starting = False
        sender.close()  # the child holds the only writing end: its death closes the pipe
        self.last_pull = time.monotonic()
        _start_reaper()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.is_alive()

    def records(self, poll: float = POLL_SECONDS) -> Iterator[Any]:
        """What the job yields, in order; ``None`` whenever nothing arrived within ``poll`` seconds."""
        try:
            while True:
                self.last_pull = time.monotonic()
                if not self._receiver.poll(poll):
                    if not self._process.is_alive() and not self._receiver.poll(0):
                        raise ValueError(self._death())
                    yield None
                    continue
                try:
                    kind, payload = pickle.loads(self._receiver.recv_bytes())
                except (EOFError, OSError):
                    raise ValueError(self._death()) from None
                if kind == "record":
                    yield payload
                elif kind == "error":
                    raise ValueError(payload)
                else:  # "done"
                    return
        finally:
            self.stop()

    def stop(self, reason: str = "") -> None:
        """End the job now (terminate, then kill); safe to call twice."""
        self.stopped_because = self.stopped_because or reason
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=3)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=3)
        self._receiver.close()
        _LIVE.discard(self)

    def _death(self) -> str:
        self._process.join(timeout=3)
        if self.stopped_because:
            return self.stopped_because
        code = self._process.exitcode
        if code is not None and code < 0:  # killed by a signal: the kernel's out-of-memory killer, most often
            return (
                f"The {self.settings.kind} process was stopped by the system (it may have run out of memory). "
                f"{self.settings.what_to_try()}; your earlier results are unchanged."
            )
        return f"The {self.settings.kind} process ended unexpectedly (exit code {code}); your earlier results are unchanged."


def _die_with_parent() -> None:
    """Be killed by the kernel when the process that forked this one (the fork server) dies: an orphan would
    run on unseen, its server no longer able to stop it (Linux only; elsewhere the job runs to its end)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            pr_set_pdeathsig = 1  # prctl's option number (linux/prctl.h)
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _child(
    sender, target: Callable[..., Iterator], args: tuple, settings: WorkerSettings, orphan_dies: bool = False
) -> None:
    """The child process: lower priority, bounded threads and memory, then run the job and send its records."""
    if orphan_dies:
        _die_with_parent()
    with contextlib.suppress(OSError):  # a container may forbid it; the job still runs
        os.nice(settings.nice)
    if settings.idle:
        idle_priority(0)
    import torch

    if settings.memory_bytes and not torch.cuda.is_available():  # CUDA reserves address space of its own
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (settings.memory_bytes, settings.memory_bytes))
    torch.set_num_threads(settings.threads)

    def send(kind: str, payload=None) -> None:
        # Plain pickle, which copies tensors into the message. multiprocessing's own pickler would hand
        # tensors over as shared memory that vanishes when this process exits, before the server reads it.
        sender.send_bytes(pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL))

    failed = f"The {settings.kind} process failed ({{}}); your earlier results are unchanged."
    try:
        for record in target(*args):
            send("record", record)
        send("done")
    except ValueError as error:
        send("error", str(error))
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, MemoryError) or "alloc" in str(error).lower():
            send("error", _OUT_OF_MEMORY.format(settings.kind, settings.what_to_try()))
        else:
            traceback.print_exc()
            send("error", failed.format(type(error).__name__))
    except Exception as error:  # noqa: BLE001  (whatever it was, the learner gets a sentence)
        traceback.print_exc()
        send("error", failed.format(type(error).__name__))
    finally:
        sender.close()


_OUT_OF_MEMORY = "The {} process ran out of the memory it may use. {}; your earlier results are unchanged."

# --- the reaper: stops jobs nobody reads --------------------------------------------------------------

_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()
_reaper_started = threading.Event()


def _start_reaper() -> None:
    if not _reaper_started.is_set():
        _reaper_started.set()
        threading.Thread(target=_reap, name="worker-reaper", daemon=True).start()


def _reap() -> None:
    while True:
        time.sleep(1.0)
        _restart_a_dead_fork_server()
        now = time.monotonic()
        for worker in list(_LIVE):
            if worker.starting:
                continue
            if now - worker.last_pull > worker.settings.stale_seconds:
                worker.stop("Stopped: nobody was listening to this job any more.")
            elif worker.cancelled is not None and _asks_to_stop(worker.cancelled):
                worker.stop("Stopped.")


def _restart_a_dead_fork_server() -> None:
    """A fork server that died (killed, out of memory) is reaped and started again now, not when the next job
    finds it gone (its start then waits on torch's import), and its jobs died with it (``_die_with_parent``)."""
    if _context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    if forkserver._forkserver._forkserver_pid is None:  # never started: nothing to watch
        return
    with contextlib.suppress(Exception):  # noqa: BLE001  (the next job will try again)
        forkserver.ensure_running()  # a cheap check while it lives; reaps and restarts it when it has died


def _asks_to_stop(cancelled: Callable[[], bool]) -> bool:
    try:
        return bool(cancelled())
    except Exception:  # noqa: BLE001  (a failing check must not end the reaper, which guards every job)
        traceback.print_exc()
        return False


def _live() -> list[Worker]:
    return [worker for worker in list(_LIVE) if worker.starting or worker.alive()]


def live_workers(lane: str | None = None) -> int:
    """How many jobs (of ``lane``, a kind such as "Units" unless set apart; None: any) run in workers now."""
    return sum(1 for worker in _live() if lane in (None, worker.settings.lane or worker.settings.kind))


def reserved_bytes() -> int:
    """The memory limits of every job running (or starting) in a worker, added up."""
    return sum(worker.settings.memory_bytes for worker in _live())


class NoRoom(RuntimeError):
    """A job's worker would not fit in the workers' memory pool now; nothing was started."""


_POOL_LOCK = threading.Lock()
