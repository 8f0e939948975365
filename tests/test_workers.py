"""Long work in a process of its own: records in order, every way of ending it, and the limits it runs under."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from playground.serving import workers
from playground.serving.workers import Worker, WorkerSettings

QUIET = WorkerSettings(nice=5, threads=1, memory_bytes=0, stale_seconds=60.0)


# Jobs run in a fresh process, so they live at module level where the child can import them.
def counting(n: int):
    for i in range(n):
        yield {"i": i}


def describing():
    import torch

    yield {
        "niceness": os.nice(0),
        "policy": os.sched_getscheduler(0),
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }


def refusing():
    yield "first"
    raise ValueError("Every class needs at least 3 usable images.")


def crashing():
    yield "first"
    raise KeyError("a bug")


def greedy():
    import torch

    yield "allocating"
    torch.ones(512, 1024, 1024)  # 2 GiB, past the limit below


def sleeping():
    yield "started"
    time.sleep(600)
    yield "never"


def sleeping_for(seconds: float):
    yield "started"
    time.sleep(seconds)


def tensors():
    import torch

    yield {"weights": torch.arange(1_000_000, dtype=torch.float32)}  # copied through the pipe, not shared


SERVER_STATE = "as imported"  # the server may change its modules' state; a job's process must not see it


def reading_state():
    yield SERVER_STATE


def _all(worker: Worker) -> list:
    return [record for record in worker.records(poll=0.1) if record is not None]


def test_records_arrive_in_order_and_the_process_ends():
    worker = Worker(counting, 5, settings=QUIET)
    assert _all(worker) == [{"i": i} for i in range(5)]
    assert not worker.alive()


def test_the_child_runs_at_lower_priority_with_bounded_threads():
    [facts] = _all(Worker(describing, settings=QUIET))
    assert facts["niceness"] >= os.nice(0) + 5 and facts["threads"] == 1
    assert facts["policy"] == os.SCHED_IDLE  # a training runs when no click wants the core
    assert facts["pid"] != os.getpid()


def test_a_job_the_learner_watches_is_niced_but_not_idle_class():
    watched = dataclasses.replace(QUIET, idle=False)
    [facts] = _all(Worker(describing, settings=watched))
    assert facts["niceness"] >= os.nice(0) + 5 and facts["policy"] == os.SCHED_OTHER


def test_tensors_survive_the_child_exiting_at_once():
    import torch

    [record] = _all(Worker(tensors, settings=QUIET))
    assert torch.equal(record["weights"], torch.arange(1_000_000, dtype=torch.float32))


def test_a_jobs_own_sentence_reaches_the_caller():
    worker = Worker(refusing, settings=QUIET)
    records = worker.records(poll=0.1)
    assert next(r for r in records if r is not None) == "first"
    with pytest.raises(ValueError, match="at least 3 usable images"):
        list(records)


def test_a_bug_in_the_job_becomes_a_sentence():
    with pytest.raises(ValueError, match=r"training process failed \(KeyError\)"):
        _all(Worker(crashing, settings=QUIET))


def test_running_out_of_its_memory_becomes_a_sentence():
    limited = WorkerSettings(nice=5, threads=1, memory_bytes=1024**3, stale_seconds=60.0)
    with pytest.raises(ValueError, match="ran out of the memory"):
        _all(Worker(greedy, settings=limited))


def test_a_child_killed_from_outside_is_reported_and_the_caller_survives():
    worker = Worker(sleeping, settings=QUIET)
    records = worker.records(poll=0.1)
    assert next(r for r in records if r is not None) == "started"
    os.kill(worker.pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    with pytest.raises(ValueError, match="stopped by the system"):
        list(records)


def test_stop_ends_the_job_at_once():
    worker = Worker(sleeping, settings=QUIET)
    records = worker.records(poll=0.1)
    assert next(r for r in records if r is not None) == "started"
    started = time.monotonic()
    worker.stop("Stopped.")
    assert not worker.alive() and time.monotonic() - started < 5


def test_a_job_nobody_reads_is_stopped_by_the_reaper():
    impatient = WorkerSettings(nice=5, threads=1, memory_bytes=0, stale_seconds=1.0)
    worker = Worker(sleeping, settings=impatient)
    records = worker.records(poll=0.1)
    assert next(r for r in records if r is not None) == "started"
    deadline = time.monotonic() + 15  # nobody pulls from here on
    while worker.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.alive() and "nobody was listening" in worker.stopped_because
    assert worker not in set(workers._LIVE)


def test_a_jobs_process_shares_nothing_with_the_server():
    """Jobs are forked from a fork server that only imported modules, never from the server itself."""
    globals()["SERVER_STATE"] = "changed by the server"
    try:
        assert _all(Worker(reading_state, settings=QUIET)) == ["as imported"]
    finally:
        globals()["SERVER_STATE"] = "as imported"


def test_the_message_names_the_job_the_learner_started():
    units = WorkerSettings(nice=5, threads=1, memory_bytes=0, stale_seconds=60.0, kind="Units")
    with pytest.raises(ValueError, match=r"^The Units process failed \(KeyError\)"):
        _all(Worker(crashing, settings=units))


def test_a_units_job_out_of_memory_gets_advice_for_a_units_job():
    limited = dataclasses.replace(QUIET, memory_bytes=1536 * 1024**2, kind="Units")
    with pytest.raises(ValueError, match="The Units process ran out of the memory it may use. Try fewer steps"):
        _all(Worker(greedy, settings=limited))
    assert "batch" not in limited.what_to_try()  # a feature visualisation has no batch to shrink


def _state(pid: int) -> str:
    """The process's state letter ("Z" for a zombie), or "" once it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_killed_fork_server_takes_its_jobs_with_it_and_is_started_again():
    from multiprocessing import forkserver

    workers.warm_up()
    job = Worker(sleeping, settings=QUIET)
    records = job.records()
    assert next(r for r in records if r is not None) == "started"
    old_server = forkserver._forkserver._forkserver_pid
    os.kill(old_server, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _state(job.pid) not in ("", "Z") or _state(old_server) not in ("",):
        assert time.monotonic() < deadline, (_state(job.pid), _state(old_server))  # no orphan, no zombie left
        time.sleep(0.1)
    with pytest.raises(ValueError):
        next(r for r in records if r is not None)  # the job says it ended
    started = time.monotonic()
    assert _all(Worker(counting, 2, settings=QUIET)) == [{"i": 0}, {"i": 1}]
    assert time.monotonic() - started < 15  # a fresh fork server, not a wait on a dead one
    assert forkserver._forkserver._forkserver_pid != old_server
