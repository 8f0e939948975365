"""Long work that stays in the server (compare-all, the sanity check) runs on low-priority threads.

Such work takes seconds of a core, and everyone's clicks share the same cores. Training goes to a worker
process (:mod:`playground.serving.workers`); work that needs the server's own models and caches runs here instead,
step by step on a few threads niced once, when each thread starts: when a click needs a core, the kernel
gives it most of that core.

Niced, not put in the idle scheduling class as training's processes are: these threads share the server's
interpreter lock, and an idle-class thread that holds it while the cores are busy waits (with the lock) until
nothing else wants a core, stalling every click behind it. A niced thread still gets a tenth of a core, so it
hands the lock back within milliseconds.

Linux applies ``setpriority`` to a single thread when given its thread id. Going down needs no privilege;
coming back up would, so these threads stay low for their life and never serve a click.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import Iterator

from playground.config import get_limits

_END = object()


def _lower_own_priority() -> None:
    me = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: plain threads then
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + get_limits().worker_nice))


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=get_limits().long_jobs_running, thread_name_prefix="background", initializer=_lower_own_priority
    )


def in_background(items: Iterator) -> Iterator:
    """Iterate ``items`` (a generator), each step computed on a low-priority thread.

    The caller's thread only waits. Closing this iterator (a Stop, a closed tab) closes ``items`` between
    steps, so its ``finally`` runs as usual.
    """
    try:
        while True:
            item = _pool().submit(next, items, _END).result()
            if item is _END:
                return
            yield item
    finally:
        items.close()
