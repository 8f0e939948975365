"""Training jobs per session: at most one running, and the last finished run kept for browsing.

Like :class:`playground.store.ModelStore`, this is per-session state that lives on the server; a
session's entries go when it ends (:meth:`Jobs.forget`), and finished runs are bounded across sessions
because API callers never close a tab.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading

from PIL import Image

from playground.config import get_limits
from playground.data import ImageDataset
from playground.finetune import FinetuneResult

THUMBNAIL_PX = 112


@dataclasses.dataclass
class Run:
    """What a session keeps of its last finished run (freed when the session ends)."""

    result: FinetuneResult  # without its weights: those live in the files and in the model store
    thumbnails: dict[int, Image.Image]  # dataset index -> small picture, for misclassified validation images
    folder: str  # where the downloads were written

    def mistakes(self, true_class: str, predicted_class: str) -> tuple[list[tuple[Image.Image, float]], int]:
        """The validation images of ``true_class`` taken for ``predicted_class``, most confident first, as
        (thumbnail, confidence), and how many such images there were in all.

        Raises:
            ValueError: a class that is not in this run's dataset.
        """
        classes = list(self.result.classes)
        if true_class not in classes or predicted_class not in classes:
            raise ValueError("Choose a true and a predicted class from your dataset.")
        t, p = classes.index(true_class), classes.index(predicted_class)
        cell = [
            (i, confidence) for i, truth, guess, confidence in self.result.misclassified if truth == t and guess == p
        ]
        return [(self.thumbnails[i], confidence) for i, confidence in cell if i in self.thumbnails], len(cell)


def thumbnails(dataset: ImageDataset, result: FinetuneResult) -> dict[int, Image.Image]:
    """Small pictures of the most confidently misclassified validation images (at most the limit)."""
    pictures = {}
    for index, *_ in result.misclassified[: get_limits().misclassified_thumbnails]:
        pixels = dataset.images[index]
        pixels = pixels.expand(3, -1, -1) if pixels.shape[0] == 1 else pixels
        pictures[index] = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((THUMBNAIL_PX, THUMBNAIL_PX))
    return pictures


class Jobs:
    """One training job per session; the last finished run per session."""

    def __init__(self, *, runs_kept: int | None = None):
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}  # session -> its stop flag
        self._runs: dict[str, Run] = {}  # oldest first
        self._runs_kept = runs_kept or get_limits().runs_kept

    def claim(self, session: str) -> threading.Event:
        """Start a job for ``session``; returns the flag that :meth:`stop` sets.

        Raises:
            ValueError: the session already has a job running.
        """
        with self._lock:
            if session in self._running:
                raise ValueError("You already have a training job running; stop it or wait for it to finish.")
            flag = self._running[session] = threading.Event()
            return flag

    def release(self, session: str) -> None:
        with self._lock:
            self._running.pop(session, None)

    def stop(self, session: str) -> None:
        with self._lock:
            flag = self._running.get(session)
        if flag:
            flag.set()

    def keep(self, session: str, run: Run) -> None:
        """Keep ``run`` as the session's last; the oldest run of any session goes past the bound."""
        with self._lock:
            dropped = [self._runs.pop(session)] if session in self._runs else []
            self._runs[session] = run
            while len(self._runs) > self._runs_kept:
                dropped.append(self._runs.pop(next(iter(self._runs))))
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)

    def last_run(self, session: str) -> Run | None:
        with self._lock:
            return self._runs.get(session)

    def forget(self, session: str) -> None:
        """The session ended: stop its job and delete its run's files."""
        self.stop(session)
        with self._lock:
            run = self._runs.pop(session, None)
        if run:
            shutil.rmtree(run.folder, ignore_errors=True)
