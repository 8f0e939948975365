"""Forward hooks that are always removed, and a lock so two users never share one model's hooks."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator

from torch import nn

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """One lock per model: hooks are registered on the module itself, so two threads capturing from the
    same shared model at once would see each other's activations."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


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
    with model_lock(model):
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
