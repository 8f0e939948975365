"""Timing and machine description shared by every benchmark."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch


def machine() -> str:
    """One line: CPU model and cores, memory, torch version, accelerator."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/proc/meminfo") as handle:
            memory = f"{int(handle.readline().split()[1]) / 1024**2:.0f} GiB RAM"
    except OSError:
        memory = "unknown RAM"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {cores} cores, {memory}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"{device}; Python {platform.python_version()}"
    )


def median_ms(fn, *, repeat: int = 30, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def report(name: str, ms: float, budget_ms: float | None = None) -> str:
    verdict = "" if budget_ms is None else f"  (budget {budget_ms:g} ms: {'OK' if ms < budget_ms else 'OVER'})"
    line = f"{name:<64} {ms:8.1f} ms{verdict}"
    print(line, flush=True)
    return line
