"""The class board over HTTP: create a class, join it, publish the session's latest result, read the board, hide
an entry (:mod:`playground.sharing.board` does the work; this layer adds sessions, addresses and sentences).

``/create_class(name)``, ``/join_class(code, learner)``, ``/publish_result(code, learner, kind)``,
``/board(code)``, ``/hide_entry(code, teacher_key, entry)``, ``/close_class(code, teacher_key)``,
``/export_board(code, teacher_key, form)``. The Class board tab (:mod:`ui.tabs.class_board`) calls the same.
"""

from __future__ import annotations

import functools

import gradio as gr

from playground.config import get_limits
from playground.sharing.board import Board, PerMinute
from ui.handlers import user_errors
from ui.queueing import address
from ui.state import JOBS, KERNELS, session_of


@functools.cache
def board() -> Board:
    """The server's board: the database named by ``PLAYGROUND_DATABASE_URL``, else SQLite under the data folder."""
    return Board()


JOINS = PerMinute(
    get_limits().board_joins_per_minute, "Too many joins from this address in the last minute; please wait a moment."
)
MISSES = PerMinute(get_limits().board_misses_per_minute, "Too many class codes that name no class from this address; please wait a "
                                      "minute and check the code on the board.")  # fmt: skip


def visitor(request) -> str:
    return address(request) or session_of(request)


def looked_up(code: str, request, fn):
    """``fn()`` for a class named by ``code``; a code that names no class counts against the visitor's guesses."""
    who = visitor(request)
    MISSES.check(who)
    try:
        return fn()
    except ValueError as error:
        if str(error).startswith("There is no class with the code"):
            MISSES.count(who)
        raise


def latest(session: str, kind: str) -> dict:
    """What the session publishes as ``kind``: its last training's numbers, its last experiment's runs, or the
    last kernel it applied in the Convolution lab (its numbers; the board draws what it does to the cup).

    Raises:
        ValueError: the session has nothing of that kind yet.
    """
    if kind == "training":
        run = JOBS.last_run(session, "train")
        if run is None or run.summary is None:
            raise ValueError("Train a model first: its summary is what is published.")
        return run.summary
    if kind == "experiment":
        run = JOBS.last_run(session, "experiment")
        if run is None or run.result is None:
            raise ValueError("Run an experiment first (and let it finish): its runs are what is published.")
        return run.result.to_json()
    if kind == "kernel":
        kernel = KERNELS.last(session)
        if kernel is None:
            raise ValueError("Apply a kernel in the Convolution lab first: its numbers are what is published.")
        return kernel
    raise ValueError(f"One publishes a training, an experiment or a kernel, not {str(kind)[:20]!r}.")


@user_errors
def create_class(name: str) -> tuple[str, str]:
    """A new class: its code (for the whiteboard) and its teacher key (shown once; keep it)."""
    made = board().create_class(name)
    return made.code, made.teacher_key


@user_errors
def join_class(code: str, learner: str, request: gr.Request) -> str:
    """Join a class with its code and a display name (no account); a sentence."""
    JOINS.take(visitor(request))
    name = looked_up(code, request, lambda: board().join(code, learner))
    return f"{name} joined the class {str(code).strip().upper()}."


@user_errors
def publish_result(code: str, learner: str, kind: str, request: gr.Request) -> str:
    """Publish the calling session's latest ``training``, ``experiment`` or ``kernel`` to the class; a sentence."""
    entry = board().publish(code, learner, kind, latest(session_of(request), kind))
    return f"Published your {kind} to the class as entry {entry}."


@user_errors
def class_board(code: str, request: gr.Request) -> dict:
    """The class's board: its entries and the pooled experiment tables."""
    return looked_up(code, request, lambda: board().board(code))


@user_errors
def hide_entry(code: str, teacher_key: str, entry: int) -> str:
    """The teacher hides one entry from the board."""
    board().hide(code, teacher_key, entry)
    return f"Entry {entry} is hidden."


@user_errors
def close_class(code: str, teacher_key: str) -> str:
    """The teacher closes the class: nothing more can be joined or published, the board is no longer shown."""
    board().close_class(code, teacher_key)
    return f"The class {str(code).strip().upper()} is closed: its board stays in your download, nobody can publish."


@user_errors
def export_board(code: str, teacher_key: str, form: str = "json") -> str:
    """The whole board for its teacher: ``json`` (everything) or ``csv`` (a row per entry, and per run and seed)."""
    return board().export(code, teacher_key, str(form))


def register() -> None:
    """The endpoints, on the Blocks being built."""
    gr.api(create_class, api_name="create_class")
    gr.api(join_class, api_name="join_class")
    gr.api(publish_result, api_name="publish_result")
    gr.api(class_board, api_name="board")
    gr.api(hide_entry, api_name="hide_entry")
    gr.api(close_class, api_name="close_class")
    gr.api(export_board, api_name="export_board")
