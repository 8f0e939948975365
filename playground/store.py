"""Which models a user can choose: the shared variants, plus the ones their own session loaded or trained.

The shared variants are loaded once per process and only ever read. A session's own models live here
under that session's id, invisible to every other session, until :meth:`ModelStore.drop_session`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from torch import nn

from playground import checkpoints, models
from playground.checkpoints import ModelInfo
from playground.config import get_limits

SESSION_PREFIX = "mine:"


def _load_shared(name: str) -> tuple[nn.Module, ModelInfo]:
    if models.MODELS[name].weights is not None:
        return checkpoints.load(name, "imagenet")
    model, info = checkpoints.load(name, None)
    notice = (
        f"No trained weights are published for {name}, so this one is untrained: its filters are random and "
        "its predictions are guesses. Train it in the Train tab, or load a checkpoint of your own."
    )
    return model, ModelInfo(name, "untrained", info.description, info.classes, notice)


class ModelStore:
    def __init__(
        self,
        loader: Callable[[str], tuple[nn.Module, ModelInfo]] = _load_shared,
        *,
        per_session: int | None = None,
        total: int | None = None,
    ):
        limits = get_limits()
        self._loader = loader
        self._per_session = per_session or limits.models_per_session
        self._total = total or limits.models_total  # all sessions together: bounds the memory users' models take
        self._shared: dict[str, tuple[nn.Module, ModelInfo]] = {}
        self._sessions: dict[str, dict[str, tuple[nn.Module, ModelInfo]]] = {}
        self._lock = threading.Lock()
        self._added = 0  # a counter: which model arrived first
        self._load_locks = {name: threading.Lock() for name in models.MODELS}

    def choices(self, session: str | None) -> list[tuple[str, str]]:
        """(label, key) for the model chooser: the variants, then this session's own models."""
        shared = [(f"{name}: {record.description}", name) for name, record in models.MODELS.items()]
        with self._lock:
            own = list(self._sessions.get(session or "", {}).items())
        return shared + [(f"yours: {info.description}", key) for key, (_, info, _) in own]

    def get(self, key: str, session: str | None) -> tuple[nn.Module, ModelInfo]:
        """The model behind a chooser key.

        Raises:
            ValueError: the key names no variant, or a model that is not this session's.
        """
        if key in models.MODELS:
            return self._shared_model(key)
        with self._lock:
            entry = self._sessions.get(session or "", {}).get(key)
        if entry is None:
            raise ValueError("That model is not available in this session (it may have been closed). Choose another.")
        return entry[:2]

    def _shared_model(self, name: str) -> tuple[nn.Module, ModelInfo]:
        with self._load_locks[name]:  # one load per variant, even when many users arrive at once
            if name not in self._shared:
                model, info = self._loader(name)
                for parameter in model.parameters():
                    parameter.requires_grad_(False)  # shared means read-only
                self._shared[name] = (model.eval(), info)
            return self._shared[name]

    def add(self, session: str, model: nn.Module, info: ModelInfo) -> str:
        """Keep ``model`` for ``session`` only; returns its chooser key. The oldest is dropped past the limit.

        Raises:
            ValueError: no session, or a model the tabs cannot look inside (a baseline without convolutions).
        """
        if not session:
            raise ValueError("A session is needed to keep a model of your own.")
        if info.name not in models.MODELS:
            raise ValueError(
                f"This is a {info.name} baseline: it has no convolutional layers, so the tabs that look inside a "
                "network (filters, activations, explanations) have nothing to show for it. Load an AlexNet checkpoint."
            )
        with self._lock:
            own = self._sessions.setdefault(session, {})
            # Sessions without a browser (API calls) never end, so the total is bounded by evicting the
            # oldest model of any session rather than by refusing everyone once it is reached.
            while sum(len(m) for m in self._sessions.values()) >= self._total and len(own) < self._per_session:
                self._evict_oldest()
            key = f"{SESSION_PREFIX}{len(own)}:{info.description}"
            while key in own:
                key += "+"
            self._added += 1
            own[key] = (model.eval(), info, self._added)
            while len(own) > self._per_session:
                own.pop(next(iter(own)))
            return key

    def _evict_oldest(self) -> None:
        oldest = min(
            ((added, name, key) for name, held in self._sessions.items() for key, (_, _, added) in held.items()),
            default=None,
        )
        if oldest is not None:
            _, name, key = oldest
            del self._sessions[name][key]
            if not self._sessions[name]:
                del self._sessions[name]

    def drop_session(self, session: str) -> None:
        """Forget every model of a session that has ended."""
        with self._lock:
            self._sessions.pop(session, None)

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)
