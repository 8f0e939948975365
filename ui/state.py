"""The app's process-wide state, in one module: what the server keeps for every visitor, and the one function
that forgets a session when its browser tab closes.

Everything here is either shared read-only (the pretrained models) or keyed by session, so no visitor ever
reads another's models, runs, uploads or results; each store is bounded, because API callers never close a tab.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

import gradio as gr

from playground.config import get_limits
from playground.data.sources import DatasetSource
from playground.serving.jobs import Jobs
from playground.serving.store import ModelStore
from playground.units.probes import UnitResults
from ui.canvas_blobs import CanvasBlobs
from ui.handlers import user_errors

T = TypeVar("T")


class PerSession(Generic[T]):
    """The newest value of each session, bounded in sessions (API callers never close a tab): the sessions
    quiet longest go first."""

    def __init__(self, sessions: int):
        self._sessions = sessions
        self._values: collections.OrderedDict[str, T] = collections.OrderedDict()
        self._lock = threading.Lock()

    def keep(self, session: str, value: T) -> None:
        if not session:
            return
        with self._lock:
            self._values.pop(session, None)
            self._values[session] = value
            while len(self._values) > self._sessions:
                self._values.popitem(last=False)

    def last(self, session: str) -> T | None:
        with self._lock:
            return self._values.get(session or "")

    def forget(self, session: str) -> None:
        with self._lock:
            self._values.pop(session, None)


class SessionUploads(PerSession[DatasetSource]):
    """The last zip or folder each session uploaded, in any tab, or trained on: the one upload that Train,
    Experiments and Units all read."""

    def __init__(self, sessions: int | None = None):
        super().__init__(sessions or get_limits().zips_remembered)

    def remember(self, session: str, upload: DatasetSource) -> None:
        """``upload`` is now the session's (a built-in dataset is nobody's upload, and is not kept)."""
        if upload.own():
            self.keep(session, upload)


class LastKernels(PerSession[dict]):
    """Each session's last kernel applied in the Convolution lab (its name and numbers): what "publish a kernel"
    publishes."""

    def __init__(self, sessions: int = 1_000):
        super().__init__(sessions)

    def remember(self, session: str, name: str, rows: list[list[float]]) -> None:
        self.keep(session, {"name": name, "kernel": rows})


STORE = ModelStore()  # the shared variants (read-only) and each session's own models
JOBS = Jobs()  # per session one training or experiment, one Units pass; the last finished runs
UPLOADS = SessionUploads()  # each session's last zip or folder, from any tab: "your zip"/"your folder", Units' "my zip"
UNIT_RESULTS = UnitResults()  # finished Units passes, bounded in bytes; a user's own data keyed by session
KERNELS = LastKernels()  # each session's last kernel in the lab, to publish to a class
CANVAS_BLOBS = CanvasBlobs()  # the Explain editor's pictures until their event uses them


def session_of(request: gr.Request | None) -> str:
    """The browser session (or API client) a request belongs to; "" for none."""
    return getattr(request, "session_hash", None) or ""


def forget(session: str) -> None:
    """The session ended: stop its jobs, and free its models, runs (with their files) and remembered upload."""
    if not session:
        return
    JOBS.forget(session)
    STORE.drop_session(session)
    UPLOADS.forget(session)
    KERNELS.forget(session)


@user_errors
def forget_session(request: gr.Request) -> None:
    """The browser tab closed (app.py registers this once, for every tab)."""
    forget(session_of(request))
