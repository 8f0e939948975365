"""Forward hooks that are always removed, a lock so two users never share one model's hooks, and a token
that says which weights a model holds (for caches of what it computed)."""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator

from torch import nn


class SharedLock:
    """Many holders at once (``shared``), or one alone (``exclusive``); both re-entrant for their thread.

    A model's users hold it shared while their forward passes must see nobody else's hooks (our own hooks
    fire only for the thread that set them, so such users can run side by side), and exclusively while they
    put hooks on the model that would fire for everyone (Captum's) or switch its train/eval mode. Waiting
    exclusive holders go first, so a stream of shared ones cannot starve them.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._shared: dict[int, int] = {}  # thread -> how many times it holds the lock shared
        self._owner: int | None = None  # the exclusive holder
        self._depth = 0  # how many times the exclusive holder holds it
        self._queued = 0  # threads waiting to hold it exclusively

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._changed:
            if self._owner != me and me not in self._shared:
                while self._owner is not None or self._queued:
                    self._changed.wait()
            self._shared[me] = self._shared.get(me, 0) + 1
        try:
            yield
        finally:
            with self._changed:
                self._shared[me] -= 1
                if not self._shared[me]:
                    del self._shared[me]
                self._changed.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._changed:
            if self._owner != me:
                if me in self._shared:
                    raise RuntimeError("A thread holding a model's lock shared cannot take it exclusively.")
                self._queued += 1
                while self._owner is not None or self._shared:
                    self._changed.wait()
                self._queued -= 1
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._changed:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                self._changed.notify_all()

    def held(self) -> bool:
        """Whether the calling thread holds the lock, shared or exclusively."""
        me = threading.get_ident()
        with self._changed:
            return self._owner == me or me in self._shared


_locks: weakref.WeakKeyDictionary[nn.Module, SharedLock] = weakref.WeakKeyDictionary()
_serials: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()
_next_serial = itertools.count()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> SharedLock:
    """The one lock of ``model`` (see :class:`SharedLock`)."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = SharedLock()
        return lock


def weights_token(model: nn.Module) -> tuple:
    """Which model this is and which weights it holds now: equal tokens, equal outputs.

    A serial number per model object (never reused, unlike ``id``), and for each tensor of its state its
    identity and how often it was written in place: ``load_state_dict`` and optimisers write in place, which
    bumps a tensor's version counter, and assigning a new Parameter changes the tensor itself. Hashing the
    values (61 M for AlexNet) would cost more than most uses. Blind spot: writes through ``.data``.
    """
    with _locks_guard:
        serial = _serials.get(model)
        if serial is None:
            serial = _serials[model] = next(_next_serial)
    state = model.state_dict(keep_vars=True)
    return (serial, *((name, id(t), t.data_ptr(), t._version) for name, t in state.items()))


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) for every module without children, in registration order."""
    return [(name, module) for name, module in model.named_modules() if name and not any(module.children())]


@contextlib.contextmanager
def temporary_hooks(model: nn.Module, hooks: dict[str, Callable]) -> Iterator[nn.Module]:
    """Register forward hooks by layer name for the duration of the block, in eval mode.

    The hooks are removed and the train/eval mode restored however the block exits. They fire only for
    forward passes made by the thread that registered them: another user's forward pass through the
    same shared model, at the same moment, must not land in this caller's records.
    """
    modules = dict(model.named_modules())
    unknown = sorted(set(hooks) - set(modules))
    if unknown:
        raise ValueError(f"Unknown layer(s) {', '.join(unknown)}.")
    # Our hooks fire only for this thread, so passes through a model already in eval mode (every shared
    # model) may run side by side; switching a model's mode would change everyone's passes.
    lock = model_lock(model)
    with lock.exclusive() if model.training else lock.shared():
        was_training = model.training
        handles = []
        try:
            model.eval()
            owner = threading.get_ident()
            for name, fn in hooks.items():
                handles.append(modules[name].register_forward_hook(_only_in_thread(fn, owner)))
            yield model
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)


def _only_in_thread(fn: Callable, owner: int) -> Callable:
    def hook(module, inputs, output):
        if threading.get_ident() == owner:
            return fn(module, inputs, output)
        return None

    return hook
