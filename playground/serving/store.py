"""Which models a user can choose: the shared variants, plus the ones their own session loaded or trained.

The shared variants are loaded once per process and only ever read. A session's own models live here
under that session's id, invisible to every other session, until :meth:`ModelStore.drop_session`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TypeAlias

from torch import nn

from playground import models
from playground.config import get_limits
from playground.weights import checkpoints
from playground.weights.checkpoints import ModelInfo

SESSION_PREFIX = "mine:"
# Makes a model, calling the admit function it is handed with the weights' bytes as soon as it knows them.
Loader: TypeAlias = Callable[[Callable[[int], None]], tuple[nn.Module, ModelInfo]]


def trained_description(
    variant: str, dataset: str, classes: int, mode: str, epochs: int, accuracy: float, at: float | None = None
) -> str:
    """The chooser's words for a model trained here: on what, which variant, how, how long, how well, when.

    Two runs on the same data then differ in the chooser by whatever differs between them; the time is in UTC
    (the server's clock is no learner's), to the minute. ``mode`` is "head" or "full"; ``at`` a Unix time.
    """
    how = "head only" if mode == "head" else mode
    when = time.strftime("%H:%M UTC", time.gmtime(at))
    return (
        f"trained here on {dataset} ({classes} classes) · {variant} · {how} · {epochs} epoch{'s' * (epochs != 1)} · "
        f"{accuracy:.0%} val. · {when}"
    )


def _load_shared(name: str) -> tuple[nn.Module, ModelInfo]:
    if models.MODELS[name].weights is not None:
        return checkpoints.load(name, "imagenet")
    model, info = checkpoints.load(name, None)
    notice = (
        f"No trained weights are published for {name}, so this one is untrained: its filters are random and "
        "its predictions are guesses. Train it in the Train tab, or load a checkpoint of your own."
    )
    return model, ModelInfo(name, "untrained", info.description, info.classes, notice)


@dataclasses.dataclass
class _Kept:
    model: nn.Module
    info: ModelInfo
    visitor: str  # who added it (a network address), for fair eviction
    bytes: int  # what it is charged: its weights and the private copy an explanation may make of them
    order: int  # which arrived first


def charge(model: nn.Module) -> int:
    """The bytes a kept model may take: its parameters and buffers, twice (attributions run on a copy)."""
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return 2 * weights


class ModelStore:
    def __init__(
        self,
        loader: Callable[[str], tuple[nn.Module, ModelInfo]] = _load_shared,
        *,
        per_session: int | None = None,
        session_bytes: int | None = None,
        total_bytes: int | None = None,
    ):
        limits = get_limits()
        self._loader = loader
        self._per_session = per_session or limits.models_per_session
        self._session_bytes = session_bytes or limits.models_session_bytes
        self._total_bytes = total_bytes or limits.models_total_bytes  # users' models, all sessions together
        self._shared: dict[str, tuple[nn.Module, ModelInfo]] = {}
        self._sessions: dict[str, dict[str, _Kept]] = {}
        self._reserved: dict[object, tuple[str, int]] = {}  # loads in progress: token -> (session, bytes)
        self._lock = threading.Lock()
        self._added = 0
        self._load_locks = {name: threading.Lock() for name in models.MODELS}

    def choices(self, session: str | None) -> list[tuple[str, str]]:
        """(label, key) for the model chooser: the variants, then this session's own models.

        Every label is distinct: a model described like an earlier one (the same file loaded twice, say) is
        numbered, "(2)", "(3)", in the order they arrived.
        """
        shared = [(f"{name}: {record.description}", name) for name, record in models.MODELS.items()]
        with self._lock:
            own = list(self._sessions.get(session or "", {}).items())
        seen: dict[str, int] = {}
        labels = []
        for _, kept in own:
            label = f"yours: {kept.info.description}"
            seen[label] = seen.get(label, 0) + 1
            labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
        return shared + list(zip(labels, [key for key, _ in own], strict=True))

    def get(self, key: str, session: str | None) -> tuple[nn.Module, ModelInfo]:
        """The model behind a chooser key.

        Raises:
            ValueError: the key names no variant, or a model that is not this session's.
        """
        if key in models.MODELS:
            return self._shared_model(key)
        with self._lock:
            kept = self._sessions.get(session or "", {}).get(key)
        if kept is None:
            raise ValueError("That model is not available in this session (it may have been closed). Choose another.")
        return kept.model, kept.info

    def _shared_model(self, name: str) -> tuple[nn.Module, ModelInfo]:
        with self._load_locks[name]:  # one load per variant, even when many users arrive at once
            if name not in self._shared:
                model, info = self._loader(name)
                for parameter in model.parameters():
                    parameter.requires_grad_(False)  # shared means read-only
                self._shared[name] = (model.eval(), info)
            return self._shared[name]

    def add(self, session: str, model: nn.Module, info: ModelInfo, *, visitor: str = "") -> str:
        """Keep ``model`` for ``session`` only; returns its chooser key.

        Memory is bounded in bytes (see :func:`charge`): a session keeps its latest few models within its
        own budget, its oldest giving way first. When all sessions together reach the server's budget,
        room is made by the visitor who holds the most, oldest first; so one visitor, however many
        sessions it opens, only ever evicts models of its own while it holds more than anyone else.

        Raises:
            ValueError: no session, a model larger than a session may keep, a model the tabs cannot look
                inside (a baseline without convolutions), or no room while other models are being loaded.
        """
        self._check(session, info.name)
        size = charge(model)
        with self._lock:
            self._make_room(session, size)
            key = f"{SESSION_PREFIX}{self._added}:{info.description}"
            self._added += 1
            self._sessions.setdefault(session, {})[key] = _Kept(
                model.eval(), info, visitor or session, size, self._added
            )
            return key

    def load(self, session: str, loader: Loader, *, visitor: str = "") -> str:
        """Keep the model ``loader`` makes for ``session``, charged before it is made; returns its key.

        ``loader`` is handed an ``admit(weight_bytes)`` to call as soon as it knows the size of the weights
        (a checkpoint's headers say it before any value is read): room is made then, as :meth:`add` makes it,
        and held for this load, so a model that cannot be kept is refused before it is built, and loads in
        progress together never exceed the server's budget.

        Raises:
            ValueError: as :meth:`add`, and whatever ``loader`` raises.
        """
        token = object()

        def admit(weight_bytes: int) -> None:
            size = 2 * weight_bytes
            with self._lock:
                self._reserved.pop(token, None)
                self._make_room(session, size)
                self._reserved[token] = (session, size)

        self._check(session, None)
        try:
            model, info = loader(admit)
            with self._lock:
                self._reserved.pop(token, None)
            return self.add(session, model, info, visitor=visitor)
        finally:
            with self._lock:
                self._reserved.pop(token, None)

    def _check(self, session: str, name: str | None) -> None:
        if not session:
            raise ValueError("A session is needed to keep a model of your own.")
        if name is not None and name not in models.MODELS:
            raise ValueError(
                f"This is a {name} baseline: it has no convolutional layers, so the tabs that look inside a "
                "network (filters, activations, explanations) have nothing to show for it. Load an AlexNet checkpoint."
            )

    def _make_room(self, session: str, size: int) -> None:
        """Evict until a new model of ``size`` fits the session's and the server's budgets (lock held)."""
        if size > self._session_bytes:
            raise ValueError(
                f"This model is too large to keep here ({size / 2**20:,.0f} MB with the copy explanations use; "
                f"a session may keep {self._session_bytes / 2**20:,.0f} MB)."
            )
        own = self._sessions.get(session, {})
        loading = sum(size for owner, size in self._reserved.values() if owner == session)
        while own and (
            len(own) >= self._per_session or sum(k.bytes for k in own.values()) + loading + size > self._session_bytes
        ):
            own.pop(min(own, key=lambda key: own[key].order))
        if loading + size > self._session_bytes:
            raise ValueError("Another model of yours is being loaded; please wait for it to finish.")
        while self._held() + size > self._total_bytes:
            if not any(self._sessions.values()):
                raise ValueError("The server is busy loading other models; please try again in a minute.")
            self._evict_from_the_heaviest_visitor()

    def _held(self) -> int:
        kept = sum(kept.bytes for held in self._sessions.values() for kept in held.values())
        return kept + sum(size for _, size in self._reserved.values())

    def _evict_from_the_heaviest_visitor(self) -> None:
        by_visitor: dict[str, int] = {}
        for held in self._sessions.values():
            for kept in held.values():
                by_visitor[kept.visitor] = by_visitor.get(kept.visitor, 0) + kept.bytes
        heaviest = max(by_visitor, key=by_visitor.get)
        session, key = min(
            (
                (name, key)
                for name, held in self._sessions.items()
                for key, kept in held.items()
                if kept.visitor == heaviest
            ),
            key=lambda item: self._sessions[item[0]][item[1]].order,
        )
        del self._sessions[session][key]
        if not self._sessions[session]:
            del self._sessions[session]

    def own(self, session: str) -> list[tuple[str, nn.Module, ModelInfo]]:
        """The session's own models, (key, model, info), in the order they arrived (what "Save my work" saves)."""
        with self._lock:
            kept = list(self._sessions.get(session or "", {}).items())
        return [(key, k.model, k.info) for key, k in sorted(kept, key=lambda item: item[1].order)]

    def drop_session(self, session: str) -> None:
        """Forget every model of a session that has ended."""
        with self._lock:
            self._sessions.pop(session, None)

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def held_bytes(self) -> int:
        """What users' models are charged in all (see :func:`charge`)."""
        with self._lock:
            return self._held()
