"""ui.editor, driven directly: the image editor's pictures are bounded in bytes and in time, and every byte
kept is charged."""

from __future__ import annotations

import contextlib
import io
import types

import gradio as gr
import numpy as np
import pytest
from fastapi import HTTPException
from gradio.components.image_editor import EditorData
from PIL import Image

from playground.config import Limits
from ui import canvas_blobs, state
from ui import editor as E
from ui.canvas_blobs import CanvasBlobs

MB = 1024 * 1024


def _png(side: int, seed: int = 0) -> bytes:
    """An RGBA picture of noise, stored uncompressed: about 4 bytes per pixel."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def _send(editor, blob_id: str, content: bytes, kind: str = "layer", index="0"):
    editor.accept_blobs(
        types.SimpleNamespace(data={"type": kind, "index": index, "id": blob_id}, files=[("b", content)])
    )


def _kept_bytes(editor) -> int:
    """Every byte of every picture kept for the editors, in our store and in Gradio's."""
    sets = [blobs for _, _, blobs in state.CANVAS_BLOBS.sets.values()] + list(editor.blob_storage.values())
    return sum(len(part) for blobs in sets for part in [blobs.background, blobs.composite, *blobs.layers] if part)


@pytest.fixture
def limits(monkeypatch):
    chosen = Limits(editor_blob_bytes=2 * MB, editor_blobs_bytes=3 * MB, editor_blob_seconds=600)
    monkeypatch.setattr(E, "get_limits", lambda: chosen)
    monkeypatch.setattr(canvas_blobs, "get_limits", lambda: chosen)
    monkeypatch.setattr(state, "CANVAS_BLOBS", CanvasBlobs())
    return chosen


@pytest.fixture
def editor(limits):
    with gr.Blocks():
        return E.SafeImageEditor()


def test_pictures_never_exceed_their_budget_however_they_are_sent(editor):
    big = _png(700)  # ~1.9 MB: one picture fits the 3 MB budget, two of one set do not
    assert 1.5 * MB < len(big) < 2 * MB
    for round_ in range(20):  # sets that alone would exceed the budget, round after round
        for index in range(3):
            with contextlib.suppress(HTTPException):
                _send(editor, f"set{round_}", big, index=str(index))
        assert _kept_bytes(editor) <= 3 * MB, f"round {round_}: {_kept_bytes(editor) / MB:.1f} MB kept"
        assert state.CANVAS_BLOBS.held() <= 3 * MB and state.CANVAS_BLOBS.held() >= _kept_bytes(
            editor
        )  # charged, never less


def test_a_set_too_large_alone_is_refused_and_keeps_what_it_had(editor):
    big = _png(700)
    _send(editor, "one", big, index="0")
    with pytest.raises(HTTPException, match="too large together"):
        _send(editor, "one", big, index="1")
    ((_, _, blobs),) = state.CANVAS_BLOBS.sets.values()
    assert blobs.layers == [big]


def test_the_oldest_sets_make_room_and_the_charge_follows_what_is_stored(editor):
    small = _png(300)  # ~0.35 MB
    for i in range(12):
        _send(editor, f"s{i}", small)
    assert 3 * MB - 2 * len(small) < state.CANVAS_BLOBS.held() <= 3 * MB
    assert "s11" in {blob_id for _, blob_id in state.CANVAS_BLOBS.sets} and "s0" not in {
        b for _, b in state.CANVAS_BLOBS.sets
    }
    _send(editor, "s11", _png(100), index="0")  # the same layer sent again replaces it: charged once
    assert state.CANVAS_BLOBS.held() == CanvasBlobs.OVERHEAD * (2 * len(state.CANVAS_BLOBS.sets)) + _kept_bytes(editor)


def test_pictures_live_until_their_event_or_their_lifetime(editor, limits, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(canvas_blobs.time, "monotonic", lambda: clock[0])
    photo = _png(64)
    _send(editor, "used", photo, kind="background", index="null")
    _send(editor, "left", photo, kind="background", index="null")
    value = editor.preprocess(EditorData(id="used"))  # the event takes its set ...
    assert value["background"] is not None
    assert "used" not in {b for _, b in state.CANVAS_BLOBS.sets} and editor.blob_storage == {}  # ... and nothing stays
    clock[0] += limits.editor_blob_seconds + 1
    assert state.CANVAS_BLOBS.take(editor._id, "left") is None  # past its lifetime: gone
    assert state.CANVAS_BLOBS.held() == 0


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"type": "layer", "index": "999999999", "id": "a"}, "at most 4 layers"),
        ({"type": "layer", "index": "-1", "id": "a"}, "at most 4 layers"),
        ({"type": "other", "index": "0", "id": "a"}, "should not have"),
        ({"type": "layer", "index": "0", "id": "x" * 65}, "should not have"),
    ],
)
def test_odd_blob_calls_are_refused_with_a_sentence(editor, fields, sentence):
    with pytest.raises(HTTPException, match=sentence):
        editor.accept_blobs(types.SimpleNamespace(data=fields, files=[("b", _png(8))]))
    assert state.CANVAS_BLOBS.held() == 0
