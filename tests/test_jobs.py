"""A training job from start to downloads, what it plans, and the bookkeeping of jobs per session."""

from __future__ import annotations

import os
import types

import pytest
import torch

from playground.data.sources import DatasetSource
from playground.serving import jobs
from playground.serving.jobs import DatasetReady, Jobs, TrainingOutcome, TrainingRequest, training_job
from playground.training.finetune import FinetuneConfig, Progress
from tests.test_app_train import make_zip


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def test_a_job_reads_trains_and_writes_its_downloads(tmp_path):
    config = FinetuneConfig(model="alexnet_compact", mode="head", pretrained=False, image_size=64, epochs=2)
    request = TrainingRequest(
        config, DatasetSource.zip(str(make_zip(tmp_path / "c.zip")), name="c"), str(tmp_path / "run")
    )
    records = list(training_job(request))
    assert isinstance(records[0], DatasetReady) and records[0].report.startswith("3 classes, 18 images")
    assert all(isinstance(r, Progress) for r in records[1:-1])
    outcome = records[-1]
    assert isinstance(outcome, TrainingOutcome) and outcome.dataset_name == "c"
    assert sorted(os.path.splitext(f)[1] for f in outcome.files) == [".json", ".onnx", ".safetensors"]
    assert all(os.path.dirname(f) == request.folder for f in outcome.files)
    assert set(outcome.thumbnails) == {index for index, *_ in outcome.result.misclassified}


def test_the_cap_covers_reading_the_data(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 100))  # every look at the clock is 100 s later
    # The job's own clock only: patching time.monotonic itself would hand this clock's ticks to every other thread
    # of the test process too (and take theirs), which made the test depend on what else was running.
    monkeypatch.setattr(jobs, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    config = FinetuneConfig(
        model="alexnet_compact", mode="full", pretrained=False, image_size=64, epochs=1, max_seconds=150
    )
    outcome = list(training_job(TrainingRequest(config, DatasetSource.built_in("synthetic", limit=50), str(tmp_path))))[
        -1
    ]
    assert outcome.result.config.max_seconds == 50  # 150 s minus the 100 s the data took (the engine stops there)


def test_planned_gpu_time_comes_from_the_zip_directory_or_the_catalogue(tmp_path):
    from playground.serving.jobs import ExperimentRequest, planned_experiment_gpu_seconds, planned_gpu_seconds
    from playground.training.experiments import ExperimentConfig, plan
    from playground.training.finetune import gpu_seconds

    config = FinetuneConfig()
    zipped = TrainingRequest(config, DatasetSource.zip(str(make_zip(tmp_path / "c.zip", per_class=4))), str(tmp_path))
    assert planned_gpu_seconds(zipped) == gpu_seconds(config, 12)
    assert planned_gpu_seconds(TrainingRequest(config, DatasetSource.built_in("synthetic"), "")) == gpu_seconds(
        config, 300
    )
    experiment = ExperimentConfig(preset="relu-vs-tanh", scale="cpu")  # a built-in set at the preset's 2,000 images
    request = ExperimentRequest(experiment, DatasetSource.built_in("fashion-mnist"), str(tmp_path))
    assert request.sized_source().limit == 2000 and request.sized_source().planned_images() == 2000
    assert planned_experiment_gpu_seconds(request) == sum(gpu_seconds(p.config, 2000) for p in plan(experiment))
    assert ExperimentRequest(experiment, zipped.source, "").sized_source() == zipped.source  # a zip is read whole


class _DeadWorker:
    def alive(self):
        return False


def test_a_sessions_job_slot_frees_when_its_worker_is_gone_even_if_nobody_released_it():
    book = Jobs(runs_kept=2)
    book.claim("s")
    with pytest.raises(ValueError, match="already have a training job"):
        book.claim("s")
    book.attach("s", _DeadWorker())  # its handler was abandoned when the browser left
    assert not book.busy("s")
    book.claim("s")  # a new job may start


def test_an_experiment_job_reads_runs_keeps_each_runs_weights_and_writes_the_results(tmp_path):
    from playground.serving.jobs import ExperimentOutcome, ExperimentRequest, RunFinished, experiment_job
    from playground.training.experiments import ExperimentConfig, Queued, Step
    from playground.weights import checkpoints

    config = ExperimentConfig(preset="relu-vs-tanh", base=dict(epochs=1, image_size=64), seeds=1)
    request = ExperimentRequest(
        config, DatasetSource.zip(str(make_zip(tmp_path / "c.zip")), name="c"), str(tmp_path / "run")
    )
    records = list(experiment_job(request))
    assert isinstance(records[0], DatasetReady) and isinstance(records[1], Queued)
    finished = [r for r in records if isinstance(r, RunFinished)]
    assert [r.outcome.label for r in finished] == ["ReLU", "tanh"] and isinstance(records[2], Step)
    model, info = checkpoints.load_user_checkpoint(finished[1].checkpoint)  # the tanh run, rebuilt as tanh
    assert any(isinstance(m, torch.nn.Tanh) for m in model.modules()) and info.classes == ("blue", "green", "red")
    assert finished[1].description == "tanh (seed 0) on c, " + f"{finished[1].outcome.val_accuracy:.0%} val."
    outcome = records[-1]
    assert isinstance(outcome, ExperimentOutcome) and outcome.checkpoints == {
        0: finished[0].checkpoint,
        1: finished[1].checkpoint,
    }
    assert sorted(os.path.basename(f) for f in outcome.files) == [
        "curves.png",
        "results.csv",
        "results.json",
        "summary.csv",
    ]


def test_an_experiment_keeps_weights_within_its_disk_budget_and_never_a_baselines(tmp_path, monkeypatch):
    from playground.config import Limits
    from playground.serving.jobs import ExperimentRequest, RunFinished, experiment_job
    from playground.training.experiments import ExperimentConfig, vary

    monkeypatch.setattr(jobs, "get_limits", lambda: Limits(experiment_weights_bytes=80_000_000))  # one compact net
    config = ExperimentConfig(preset="lrn", base=dict(epochs=1), seeds=2)  # four compact nets of ~59 MB
    request = ExperimentRequest(config, DatasetSource.built_in("synthetic", limit=50), str(tmp_path / "run"))
    finished = [r for r in experiment_job(request) if isinstance(r, RunFinished)]
    assert [r.checkpoint is not None for r in finished] == [True, False, False, False]
    baselines = ExperimentConfig(preset="ladder", runs=vary("model", "linear, mlp"), base=dict(epochs=1))
    finished = [
        r
        for r in experiment_job(
            ExperimentRequest(baselines, DatasetSource.built_in("synthetic", limit=50), str(tmp_path / "b"))
        )
        if isinstance(r, RunFinished)
    ]
    assert [r.checkpoint for r in finished] == [None, None]  # no convolutions: nothing the other tabs could show


def test_both_kinds_of_run_are_kept_per_session_and_forgotten_together(tmp_path):
    from playground.serving.jobs import ExperimentRun

    book = Jobs(runs_kept=4)
    trained, experimented = tmp_path / "t", tmp_path / "e"
    trained.mkdir()
    experimented.mkdir()
    book.keep("s", jobs.TrainingRun(None, {}, str(trained)))
    book.keep("s", ExperimentRun(None, {}, {}, str(experimented)), "experiment")
    assert book.last_run("s").folder == str(trained) and book.last_run("s", "experiment").folder == str(experimented)
    with pytest.raises(ValueError, match="training job or an experiment"):
        book.claim("s") and book.claim("s")
    book.forget("s")
    assert book.last_run("s") is None and book.last_run("s", "experiment") is None
    assert not trained.exists() and not experimented.exists()
