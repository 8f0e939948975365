"""The app's process-wide state, in one module: what the server keeps for every visitor, and the one function
that forgets a session when its browser tab closes.

Everything here is either shared read-only (the pretrained models) or keyed by session, so no visitor ever
reads another's models, runs, uploads or results; each store is bounded, because API callers never close a tab.
"""

from __future__ import annotations

import collections
import threading

import gradio as gr

from playground.config import get_limits
from playground.data.sources import DatasetSource
from playground.serving.jobs import Jobs
from playground.serving.store import ModelStore
from playground.units.probes import UnitResults
from ui.canvas_blobs import CanvasBlobs
from ui.handlers import user_errors


class SessionUploads:
    """The last zip or folder each session uploaded, in any tab, or trained on: the one upload that Train,
    Experiments and Units all read. Bounded in sessions, because API callers never close a tab."""

    def __init__(self, sessions: int | None = None):
        self._sessions = sessions or get_limits().zips_remembered
        self._uploads: collections.OrderedDict[str, DatasetSource] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, session: str, upload: DatasetSource) -> None:
        """``upload`` is now the session's (a built-in dataset is nobody's upload, and is not kept)."""
        if not session or not upload.own():
            return
        with self._lock:
            self._uploads.pop(session, None)
            self._uploads[session] = upload
            while len(self._uploads) > self._sessions:
                self._uploads.popitem(last=False)

    def last(self, session: str) -> DatasetSource | None:
        with self._lock:
            return self._uploads.get(session or "")

    def forget(self, session: str) -> None:
        with self._lock:
            self._uploads.pop(session, None)


class LastKernels:
    """Each session's last kernel applied in the Convolution lab (its name and numbers): what "publish a kernel"
    publishes. Bounded in sessions, because API callers never close a tab."""

    def __init__(self, sessions: int = 1_000):
        self._sessions = sessions
        self._kernels: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, session: str, name: str, rows: list[list[float]]) -> None:
        if not session:
            return
        with self._lock:
            self._kernels.pop(session, None)
            self._kernels[session] = {"name": name, "kernel": rows}
            while len(self._kernels) > self._sessions:
                self._kernels.popitem(last=False)

    def last(self, session: str) -> dict | None:
        with self._lock:
            return self._kernels.get(session or "")

    def forget(self, session: str) -> None:
        with self._lock:
            self._kernels.pop(session, None)


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
