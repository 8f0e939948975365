"""What every event handler goes through: the one path from the core's errors to the user's messages
(:func:`user_errors`, :func:`bounded`) and outputs by name (:func:`keyed`)."""

from __future__ import annotations

import functools
import inspect

import gradio as gr

from playground.config import get_limits


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
