import os
import threading

from ui.background import in_background


def _steps(log):
    try:
        for i in range(3):
            me = threading.get_native_id()
            log.append((me, os.getpriority(os.PRIO_PROCESS, me), os.sched_getscheduler(me)))
            yield i
    finally:
        log.append("closed")


def test_long_work_runs_step_by_step_on_threads_of_lower_priority():
    me = threading.get_native_id()
    mine = os.getpriority(os.PRIO_PROCESS, me)
    log = []
    assert list(in_background(_steps(log))) == [0, 1, 2]
    assert log[-1] == "closed"
    # niced, never idle-class: an idle-class thread holding the interpreter lock would stall every click behind it
    assert all(thread != me and nice > mine and policy == os.SCHED_OTHER for thread, nice, policy in log[:-1])
    assert os.getpriority(os.PRIO_PROCESS, me) == mine  # the caller (a thread that serves clicks) is untouched


def test_stopping_between_steps_closes_the_work():
    log = []
    steps = in_background(_steps(log))
    assert next(steps) == 0
    steps.close()  # a Stop, or a closed tab
    assert log[-1] == "closed" and len(log) == 2


def test_an_error_in_a_step_reaches_the_caller():
    def failing():
        yield 1
        raise ValueError("That photo cannot be explained.")

    steps = in_background(failing())
    assert next(steps) == 1
    try:
        next(steps)
    except ValueError as error:
        assert "cannot be explained" in str(error)
    else:
        raise AssertionError("the error was lost")
