"""The app's input components, hardened against what an API call can send instead of what the page sends.

Gradio turns a value it cannot preprocess (a list where a number belongs, ``null`` for a slider) into an
"Error" with no message, and its own messages repeat whatever was sent, a megabyte of it if that is what
came. These subclasses check each value's type first and answer with a sentence that names the input
and quotes at most a short prefix of the value. Use them instead of ``gr.Slider`` and friends.
"""

from __future__ import annotations

import numbers

import gradio as gr

MAX_TEXT = 20_000  # characters in a text box (a kernel of 11 x 11 numbers takes a few hundred)


def short(value, limit: int = 40) -> str:
    """A value as a message may quote it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Checked:
    """Check a payload's type before Gradio preprocesses it; any failure becomes a sentence naming the input."""

    expected = ""  # what a value must be, in words

    def _accepts(self, payload) -> bool:
        return True

    def preprocess(self, payload):
        name = self.label or self.elem_id or type(self).__name__.lower()
        if not self._accepts(payload):
            raise gr.Error(f"{name}: expected {self.expected}, got {short(payload)}.")
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001  (Gradio's messages quote the whole value; ours do not)
            raise gr.Error(f"{name}: {short(payload)} is not a value this input accepts.") from None


def _number(payload) -> bool:
    return isinstance(payload, numbers.Real) and not isinstance(payload, bool)


class Slider(_Checked, gr.Slider):
    is_template = True
    expected = "a number"

    def _accepts(self, payload) -> bool:
        return _number(payload)


class Number(_Checked, gr.Number):
    is_template = True
    expected = "a number"

    def _accepts(self, payload) -> bool:
        return _number(payload) or (payload is None and self.value is None)  # empty only where it starts empty


class Checkbox(_Checked, gr.Checkbox):
    is_template = True
    expected = "true or false"

    def _accepts(self, payload) -> bool:
        return isinstance(payload, bool)


class Textbox(_Checked, gr.Textbox):
    is_template = True
    expected = f"text of at most {MAX_TEXT:,} characters"

    def _accepts(self, payload) -> bool:
        return payload is None or (isinstance(payload, str) and len(payload) <= MAX_TEXT)


class Radio(_Checked, gr.Radio):
    is_template = True
    expected = "one of its choices"

    def _accepts(self, payload) -> bool:
        return payload is None or isinstance(payload, (str, numbers.Real))


class Dropdown(_Checked, gr.Dropdown):
    is_template = True
    expected = "one of its choices"

    def _accepts(self, payload) -> bool:
        if isinstance(payload, list):
            return bool(self.multiselect) and all(isinstance(item, (str, numbers.Real)) for item in payload)
        return payload is None or (isinstance(payload, (str, numbers.Real)) and len(str(payload)) <= MAX_TEXT)


class File(_Checked, gr.File):
    is_template = True
    expected = "an uploaded file"

    def _accepts(self, payload) -> bool:
        return payload is None or hasattr(payload, "path") or isinstance(payload, (list, dict))
