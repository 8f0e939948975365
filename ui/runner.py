"""Where a long job runs: in a worker process of its own, or, on a Hugging Face ZeroGPU Space, in a GPU slot.

On ZeroGPU the GPU exists only inside functions decorated with the ``spaces`` package's ``GPU``, for the
duration they book; ``spaces`` forks the process that gets the GPU. So there the job runs through
``spaces.GPU`` with a duration computed from its planned steps, and a job that cannot fit the longest slot
is refused with a sentence. Everywhere else (a CPU Space, a dedicated GPU, a lab server) it runs in a
:class:`playground.serving.workers.Worker`, at lower priority, where a crash cannot take the server down.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

from playground.config import get_limits
from playground.serving.workers import Worker, WorkerSettings


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (which sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


class GpuSlotJob:
    """A job running through ``spaces.GPU``: the same ``records()``/``stop()``/``alive()`` as a Worker."""

    _decorated: dict[Callable, Callable] = {}  # spaces wants each function decorated once

    def __init__(self, target: Callable[..., Iterator], argument):
        seconds, slot = argument.gpu_seconds, get_limits().gpu_slot_seconds
        if seconds > slot:
            raise ValueError(
                f"This run would need about {seconds:,.0f} s of GPU time, and a GPU slot here lasts at most "
                f"{slot:,.0f} s. Use fewer epochs or images, or head-only training."
            )
        if target not in self._decorated:
            import spaces  # present on every ZeroGPU Space

            self._decorated[target] = spaces.GPU(duration=_booked)(target)
        self._records = self._decorated[target](argument)
        self._done = False
        self.pid = None

    def records(self, poll: float = 0.5) -> Iterator:
        try:
            yield from self._records
        finally:
            self.stop()

    def alive(self) -> bool:
        return not self._done

    def stop(self, reason: str = "") -> None:
        self._done = True
        self._records.close()


def _booked(argument) -> int:
    """The duration ``spaces.GPU`` books for a job, from the job's own argument."""
    return math.ceil(argument.gpu_seconds)


def start(
    target: Callable[..., Iterator], argument, *, memory_bytes: int | None = None, kind: str = "training",
    idle: bool = True, cancelled: Callable[[], bool] | None = None, lane: str = "",
):  # fmt: skip
    """Run ``target(argument)`` where long jobs run here; iterate ``.records()`` for what it yields.

    ``argument.gpu_seconds`` is the GPU time the job plans to use: on ZeroGPU it books the slot.
    ``memory_bytes``: the worker's memory limit, when not a training worker's; ``kind``: what the learner
    knows the job as, for the messages; ``idle``: run in the idle scheduling class (a training, which can wait
    for the cores the clicks leave), else only niced (a job the learner sits and watches, such as a feature
    visualisation with a budget of seconds, which a busy class would otherwise starve); ``cancelled``: asked
    every second from another thread, True stops the worker at once (see :class:`Worker`); ``lane``: the jobs
    it takes turns with. Its memory limit is charged to the workers' pool (``Limits.workers_memory_bytes``).

    Raises:
        ValueError: on ZeroGPU, a job longer than the longest slot.
        NoRoom: its worker does not fit in the pool now (nothing was started; try again when one has ended).
    """
    if zero_gpu():
        return GpuSlotJob(target, argument)
    settings = WorkerSettings.from_limits(memory_bytes=memory_bytes, kind=kind, idle=idle, lane=lane)
    return Worker(
        target, argument, settings=settings, cancelled=cancelled, pool_bytes=get_limits().workers_memory_bytes
    )
