"""What every event handler goes through: the one path from the core's errors to the user's messages
(:func:`user_errors`, :func:`bounded`), outputs by name (:func:`keyed`), and the one wording of how long the
learner waited (:class:`Clock`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time

import gradio as gr

from playground.config import get_limits
from ui.queueing import arrival


def bounded(message: str) -> str:
    """A message as the user may see it: at most ``Limits.max_message_chars`` characters."""
    most = get_limits().max_message_chars
    return message if len(message) <= most else message[: most - 1] + "…"


def user_errors(fn):
    """The one path from the core's errors to the user: a ``ValueError`` becomes a ``gr.Error`` with the
    same sentence, shown on the page (or returned to an API client), and the server keeps serving.

    Every event handler of the app is wrapped in it (a test checks). Works for plain functions and for
    generators (streamed results), which Gradio must still see as generator functions.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as error:  # already a message for the user (gr.Error is itself a ValueError)
                raise gr.Error(bounded(error.message)) from None
            except ValueError as error:
                raise gr.Error(bounded(str(error))) from None

    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error as error:
                raise gr.Error(bounded(error.message)) from None
            except ValueError as error:
                raise gr.Error(bounded(str(error))) from None

    wrapper.user_errors = True
    return wrapper


def keyed(fn, outputs: dict):
    """Wire a handler that returns (or yields) dicts keyed by output *name* to Gradio's components.

    Handlers stay plain functions of plain values that tests can call, and a message that leaves an
    output out leaves it as it is, instead of padding tuples with ``gr.skip()``.
    """

    first = next(iter(outputs.values()))

    def by_component(values: dict) -> dict:
        # An empty message (a heartbeat while a worker is quiet) still reaches the page, changing nothing:
        # Gradio refuses a dict that names no output.
        return {outputs[name]: value for name, value in values.items()} or {first: gr.skip()}

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for values in fn(*args, **kwargs):
                yield by_component(values)

    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return by_component(fn(*args, **kwargs))

    return wrapper


def duration(seconds: float) -> str:
    """A time as a learner reads it: "50 ms", "1.2 s", "97.9 s", "1,234 s"."""
    if round(seconds * 1000) < 1000:
        return f"{max(0.0, seconds) * 1000:.0f} ms"
    return f"{seconds:.1f} s" if round(seconds, 1) < 100 else f"{seconds:,.0f} s"


@dataclasses.dataclass(frozen=True)
class Clock:
    """One event's time, from the click to its result.

    ``clicked`` is when the click reached the server: the browser's request that put the event in Gradio's
    queue (:func:`ui.queueing.arrival`), so the time an event waits there behind others' counts; None outside a
    queued event (a test calling the handler), where only the handler's own time is known. ``began`` is when
    the handler began. Both are ``time.monotonic()``.
    """

    clicked: float | None
    began: float

    @classmethod
    def start(cls) -> Clock:
        """The clock of the event this handler runs for (call it in the handler's own thread)."""
        return cls(arrival(), time.monotonic())

    def since_click(self) -> float:
        return time.monotonic() - (self.began if self.clicked is None else self.clicked)

    def took(self, *parts: tuple[str, float], rest: str = "preparing and drawing") -> str:
        """How long the learner has waited for this result, and where the time went, in one wording:
        "98.0 s from your click to this result (97.9 s waiting for the server, 50 ms computing)".

        ``parts``: (what, seconds) the handler measured itself, e.g. ("computing", 0.05); ``rest`` names the
        handler's time outside them. Parts under a millisecond are left out. What is measured ends now, when the
        result is ready: sending it to the browser is not included.
        """
        now = time.monotonic()
        clicked = self.began if self.clicked is None else min(self.clicked, self.began)
        rest_seconds = now - self.began - sum(seconds for _, seconds in parts)
        spent = [("waiting for the server", self.began - clicked), *parts, (rest, rest_seconds)]
        shown = ", ".join(f"{duration(seconds)} {what}" for what, seconds in spent if round(seconds * 1000) >= 1)
        where = "from your click to this result" if self.clicked is not None else "on the server"
        return f"{duration(now - clicked)} {where}" + (f" ({shown})" if shown else "")
