"""The Explain tab's image editor (paint to cover), hardened: every picture it is sent is bounded before
Gradio decodes or keeps it."""

from __future__ import annotations

import threading
import time

import gradio as gr
from fastapi import HTTPException
from gradio.components.base import server
from gradio.components.image_editor import EditorDataBlobs

from playground.config import get_limits
from playground.images import check_header
from ui.common import uploaded_path


class SafeImageEditor(gr.ImageEditor):
    """``gr.ImageEditor`` whose every input is bounded before Gradio decodes or stores it.

    Gradio's editor takes its pictures two ways: as files named in the event's payload, and as blobs sent
    one by one to its ``accept_blobs`` server function and kept until the event uses them. Here a payload
    may name only uploads, a few layers, each checked from its header against a canvas-sized pixel limit;
    blobs are checked the same way on arrival, their index is bounded, and they are kept in one store for
    every editor and session (:class:`_Blobs`), bounded in bytes and in time; Gradio's own store is only
    handed the set its event is about to use.
    """

    is_template = True
    # No __init__ override: Gradio reads a component's settings from its constructor's signature.

    def preprocess(self, payload):
        if payload is not None:
            limits = get_limits()
            if len(payload.layers or []) > limits.editor_max_layers:
                raise gr.Error(
                    f"The editor sent {len(payload.layers)} layers; at most {limits.editor_max_layers} are accepted."
                )
            for item in [payload.background, payload.composite, *(payload.layers or [])]:
                if item is not None and getattr(item, "url", None) and str(item.url).startswith("data:"):
                    raise gr.Error("Please paint on the photo in the editor.")
                if item is not None and getattr(item, "path", None):
                    _checked_canvas(uploaded_path(item.path))
            if payload.id is not None:  # the pictures sent for this event, used now (Gradio drops them after)
                blobs = _BLOBS.take(self._id, payload.id)
                if blobs is not None:
                    self.blob_storage[payload.id] = blobs
        return super().preprocess(payload)

    @server
    def accept_blobs(self, data):
        limits = get_limits()
        fields, files = data.data, data.files
        kind, index, blob_id = fields.get("type"), fields.get("index"), str(fields.get("id") or "")
        index = None if index in (None, "", "null") else index
        if kind not in ("layer", "background", "composite") or not 0 < len(blob_id) <= 64 or len(files) != 1:
            raise _refused("The editor sent something it should not have; please reload the page.")
        if index is not None and not (str(index).isdigit() and int(index) < limits.editor_max_layers):
            raise _refused(f"The editor accepts at most {limits.editor_max_layers} layers.")
        content = files[0][1]
        if len(content) > limits.editor_blob_bytes:
            raise _refused(f"That layer is too large ({len(content) / 1e6:.0f} MB); please use a smaller photo.")
        try:
            _checked_canvas(content)
        except gr.Error as error:
            raise _refused(error.message) from None
        _BLOBS.put(self._id, blob_id, kind, None if index is None else int(index), content)


class _Blobs:
    """The pictures every editor was sent and its event has not used yet, for all sessions together.

    Each set (one event's pictures, under the id the browser chose) is charged what it stores plus a
    little for its bookkeeping; a set past its lifetime goes, and when all of them exceed the budget the
    oldest go first. A set that alone would exceed the budget is refused; nothing is ever kept uncharged.
    """

    OVERHEAD = 4096  # bytes charged per picture and per set on top of its content (Python objects, keys)

    def __init__(self):
        self.sets: dict[tuple[int, str], tuple[float, int, EditorDataBlobs]] = {}  # key -> (born, charge, set)
        self._lock = threading.Lock()

    def put(self, editor: int, blob_id: str, kind: str, index: int | None, content: bytes) -> None:
        limits = get_limits()
        key = (editor, blob_id)
        with self._lock:
            self._expire(limits)
            born, _, old = self.sets.get(key, (time.monotonic(), 0, None))
            layers = list(old.layers) if old else []
            background, composite = (old.background, old.composite) if old else (None, None)
            if kind == "layer" and index is not None:
                layers += [None] * (index + 1 - len(layers))
                layers[index] = content
            elif kind == "background":
                background = content
            elif kind == "composite":
                composite = content
            blobs = EditorDataBlobs(background=background, layers=layers, composite=composite)
            charge = self.OVERHEAD + sum(len(p) + self.OVERHEAD for p in [background, composite, *layers] if p)
            if charge > limits.editor_blobs_bytes:  # refused; what the set held before stays as it was
                raise _refused("The editor's pictures are too large together; please use a smaller photo.")
            self.sets[key] = (born, charge, blobs)
            for other in sorted(self.sets, key=lambda k: self.sets[k][0]):  # the oldest make room
                if self.held() <= limits.editor_blobs_bytes:
                    break
                if other != key:
                    del self.sets[other]

    def take(self, editor: int, blob_id: str) -> EditorDataBlobs | None:
        with self._lock:
            self._expire(get_limits())
            found = self.sets.pop((editor, blob_id), None)
        return found[2] if found else None

    def held(self) -> int:
        return sum(charge for _, charge, _ in self.sets.values())

    def _expire(self, limits) -> None:
        now = time.monotonic()
        for key in [k for k, (born, _, _) in self.sets.items() if now - born > limits.editor_blob_seconds]:
            del self.sets[key]


_BLOBS = _Blobs()


def _checked_canvas(source) -> None:
    """Refuse an editor picture whose header declares more pixels than a canvas may have (nothing decoded)."""
    try:
        check_header(source, max_pixels=get_limits().editor_max_pixels)
    except ValueError as error:
        raise gr.Error(f"The editor's picture cannot be used: {error}") from None


def _refused(sentence: str) -> HTTPException:
    """A refusal of an ``accept_blobs`` call: Gradio answers a server function's own errors with a bare 500,
    but passes an HTTP error on, sentence and all."""
    return HTTPException(status_code=422, detail=sentence)
