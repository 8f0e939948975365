"""The app's process-wide state, in one module: what the server keeps for every visitor, and the one function
that forgets a session when its browser tab closes.

Everything here is either shared read-only (the pretrained models) or keyed by session, so no visitor ever
reads another's models, runs, uploads or results; each store is bounded, because API callers never close a tab.
"""

from __future__ import annotations

import gradio as gr

from playground.serving.jobs import Jobs
from playground.serving.store import ModelStore
from playground.units.jobs import SessionZips
from playground.units.probes import UnitResults
from ui.canvas_blobs import CanvasBlobs
from ui.handlers import user_errors

STORE = ModelStore()  # the shared variants (read-only) and each session's own models
JOBS = Jobs()  # per session one training or experiment, one Units pass; the last finished runs
ZIPS = SessionZips()  # each session's last zip (trained on or not), which the Units tab reads as "my zip"
UNIT_RESULTS = UnitResults()  # finished Units passes, bounded in bytes; a user's own data keyed by session
CANVAS_BLOBS = CanvasBlobs()  # the Explain editor's pictures until their event uses them


def session_of(request: gr.Request | None) -> str:
    """The browser session (or API client) a request belongs to; "" for none."""
    return getattr(request, "session_hash", None) or ""


def forget(session: str) -> None:
    """The session ended: stop its jobs, and free its models, runs (with their files) and remembered zip."""
    if not session:
        return
    JOBS.forget(session)
    STORE.drop_session(session)
    ZIPS.forget(session)


@user_errors
def forget_session(request: gr.Request) -> None:
    """The browser tab closed (app.py registers this once, for every tab)."""
    forget(session_of(request))
