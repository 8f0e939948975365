"""The app's input components, hardened against what an API call can send instead of what the page sends.

Gradio turns a value it cannot preprocess (a list where a number belongs, ``null`` for a slider) into an
"Error" with no message, and its own messages repeat whatever was sent, a megabyte of it if that is what
came. These subclasses check each value's type first and answer with a sentence that names the input
and quotes at most a short prefix of the value. Use them instead of ``gr.Slider`` and friends.
"""

from __future__ import annotations

import numbers

import gradio as gr
from gradio.data_classes import ListFiles

from playground.config import get_limits


def short(value, limit: int = 40) -> str:
    """A value as a message may quote it: its repr, cut to ``limit`` characters; an uploaded file by the name it
    came with, never by where the server keeps it."""
    text = repr(_as_sent(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_sent(value):
    if isinstance(value, ListFiles):
        value = value.root
    if isinstance(value, list) and any(hasattr(item, "path") for item in value):
        return [_as_sent(item) for item in value]
    if hasattr(value, "path") and hasattr(value, "orig_name"):
        return value.orig_name or "a file"
    return value


def preprocess_checked(component, payload, accepted: bool, expected: str, preprocess):
    """``preprocess(payload)`` once the payload's type check (``accepted``) has passed; any failure becomes a
    sentence naming the input. Every hardened input (these, and :class:`ui.folders.Paths`) goes through it."""
    name = component.label or component.elem_id or type(component).__name__.lower()
    if not accepted:
        raise gr.Error(f"{name}: expected {expected}, got {short(payload)}.")
    try:
        return preprocess(payload)
    except Exception:  # noqa: BLE001  (Gradio's messages quote the whole value; ours do not)
        raise gr.Error(f"{name}: {short(payload)} is not a value this input accepts.") from None


def _number(payload) -> bool:
    return isinstance(payload, numbers.Real) and not isinstance(payload, bool)


def _choice(payload) -> bool:
    return isinstance(payload, (str, numbers.Real)) and len(str(payload)) <= get_limits().max_text_chars


# Each keeps its Gradio class first among its bases: the page draws a subclass with its base's code.


class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload):
        return preprocess_checked(self, payload, _number(payload), "a number", super().preprocess)


class Number(gr.Number):
    is_template = True

    def preprocess(self, payload):
        empty_allowed = payload is None and self.value is None  # empty only where it starts empty
        return preprocess_checked(self, payload, _number(payload) or empty_allowed, "a number", super().preprocess)


class Checkbox(gr.Checkbox):
    is_template = True

    def preprocess(self, payload):
        return preprocess_checked(self, payload, isinstance(payload, bool), "true or false", super().preprocess)


class Textbox(gr.Textbox):
    is_template = True

    def preprocess(self, payload):
        most = get_limits().max_text_chars
        accepted = payload is None or (isinstance(payload, str) and len(payload) <= most)
        return preprocess_checked(self, payload, accepted, f"text of at most {most:,} characters", super().preprocess)


class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload):
        return preprocess_checked(
            self, payload, payload is None or _choice(payload), "one of its choices", super().preprocess
        )


class Dropdown(gr.Dropdown):
    is_template = True

    def preprocess(self, payload):
        if isinstance(payload, list):
            accepted = bool(self.multiselect) and all(_choice(item) for item in payload)
        else:
            accepted = payload is None or _choice(payload)
        return preprocess_checked(self, payload, accepted, "one of its choices", super().preprocess)


class File(gr.File):
    is_template = True

    def preprocess(self, payload):
        accepted = payload is None or hasattr(payload, "path") or isinstance(payload, (list, ListFiles))
        return preprocess_checked(self, payload, accepted, "an uploaded file", super().preprocess)
