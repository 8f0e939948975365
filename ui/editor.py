"""The Explain tab's image editor (paint to cover), hardened: every picture it is sent is bounded before
Gradio decodes or keeps it."""

from __future__ import annotations

import gradio as gr
from gradio.components.base import server

from playground.config import get_limits
from playground.images import check_header
from ui import state
from ui.canvas_blobs import refused
from ui.photos import uploaded_path


class SafeImageEditor(gr.ImageEditor):
    """``gr.ImageEditor`` whose every input is bounded before Gradio decodes or stores it.

    Gradio's editor takes its pictures two ways: as files named in the event's payload, and as blobs sent
    one by one to its ``accept_blobs`` server function and kept until the event uses them. Here a payload
    may name only uploads, a few layers, each checked from its header against a canvas-sized pixel limit;
    blobs are checked the same way on arrival, their index is bounded, and they are kept in one store for
    every editor and session (:class:`ui.canvas_blobs.CanvasBlobs`, in :mod:`ui.state`), bounded in bytes and in time; Gradio's own store is only
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
                blobs = state.CANVAS_BLOBS.take(self._id, payload.id)
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
            raise refused("The editor sent something it should not have; please reload the page.")
        if index is not None and not (str(index).isdigit() and int(index) < limits.editor_max_layers):
            raise refused(f"The editor accepts at most {limits.editor_max_layers} layers.")
        content = files[0][1]
        if len(content) > limits.editor_blob_bytes:
            raise refused(f"That layer is too large ({len(content) / 1e6:.0f} MB); please use a smaller photo.")
        try:
            _checked_canvas(content)
        except gr.Error as error:
            raise refused(error.message) from None
        state.CANVAS_BLOBS.put(self._id, blob_id, kind, None if index is None else int(index), content)


def _checked_canvas(source) -> None:
    """Refuse an editor picture whose header declares more pixels than a canvas may have (nothing decoded)."""
    try:
        check_header(source, max_pixels=get_limits().editor_max_pixels)
    except ValueError as error:
        raise gr.Error(f"The editor's picture cannot be used: {error}") from None
