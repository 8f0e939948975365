"""The pictures the Explain tab's image editor was sent, kept until its event uses them: one store for every
editor and session, bounded in bytes and in time (the instance lives in :mod:`ui.state`)."""

from __future__ import annotations

import threading
import time

from fastapi import HTTPException
from gradio.components.image_editor import EditorDataBlobs

from playground.config import get_limits


class CanvasBlobs:
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
                raise refused("The editor's pictures are too large together; please use a smaller photo.")
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


def refused(sentence: str) -> HTTPException:
    """A refusal of an ``accept_blobs`` call: Gradio answers a server function's own errors with a bare 500,
    but passes an HTTP error on, sentence and all."""
    return HTTPException(status_code=422, detail=sentence)
