"""Where long jobs run: a worker process here, a ZeroGPU slot booked through ``spaces.GPU`` on such a Space."""

from __future__ import annotations

import math
import sys
import types

import pytest

from playground.data.sources import DatasetSource
from playground.serving.jobs import TrainingRequest, planned_gpu_seconds
from playground.serving.workers import Worker
from playground.training.finetune import FinetuneConfig, gpu_seconds
from ui import runner


def counting(request):
    yield from range(3)


@pytest.fixture
def fake_spaces(monkeypatch):
    """A stand-in for Hugging Face's ``spaces`` package: records what each decorated call books."""
    booked = []

    def GPU(task=None, *, duration=None):  # noqa: N802  (the package's own name)
        def decorate(function):
            def wrapper(*args):
                booked.append(duration(*args) if callable(duration) else duration)
                return function(*args)

            return wrapper

        return decorate if task is None else decorate(task)

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(runner.GpuSlotJob, "_decorated", {})
    return booked


def test_without_spaces_installed_jobs_run_in_a_worker(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # as if the package were not installed
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    job = runner.start(counting, TrainingRequest(FinetuneConfig(), DatasetSource.built_in("synthetic"), "/tmp"))
    assert isinstance(job, Worker)
    assert [r for r in job.records(poll=0.1) if r is not None] == [0, 1, 2]


def test_on_zero_gpu_the_job_books_its_planned_time(fake_spaces):
    request = TrainingRequest(
        FinetuneConfig(model="alexnet_compact", epochs=3), DatasetSource.built_in("synthetic"), "/tmp"
    )
    request = TrainingRequest(**{**request.__dict__, "gpu_seconds": planned_gpu_seconds(request)})
    job = runner.start(counting, request)
    assert isinstance(job, runner.GpuSlotJob)
    assert list(job.records()) == [0, 1, 2]
    assert fake_spaces == [math.ceil(request.gpu_seconds)] and request.gpu_seconds > 20
    assert not job.alive()


def test_a_run_longer_than_a_gpu_slot_is_refused_with_a_sentence(fake_spaces):
    huge = FinetuneConfig(model="alexnet", mode="full", epochs=500)
    request = TrainingRequest(huge, DatasetSource.built_in("fashion-mnist"), "/tmp")
    request = TrainingRequest(**{**request.__dict__, "gpu_seconds": planned_gpu_seconds(request)})
    with pytest.raises(ValueError, match=r"would need about [\d,]+ s of GPU time.*fewer epochs"):
        runner.start(counting, request)
    assert fake_spaces == []  # nothing was booked


def test_planned_gpu_time_follows_the_planned_steps():
    base = FinetuneConfig(model="alexnet", mode="full", epochs=10, compile="no")
    assert (
        gpu_seconds(base, 2000)
        > gpu_seconds(base, 1000)
        > gpu_seconds(FinetuneConfig(**{**base.__dict__, "epochs": 5}), 1000)
    )
    assert gpu_seconds(FinetuneConfig(**{**base.__dict__, "mode": "head"}), 1000) < gpu_seconds(base, 1000)
    assert gpu_seconds(FinetuneConfig(**{**base.__dict__, "compile": "yes"}), 1000) > gpu_seconds(base, 1000)
