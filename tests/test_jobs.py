"""A training job from start to downloads, what it plans, and the bookkeeping of jobs per session."""

from __future__ import annotations

import os

import pytest

from playground import jobs
from playground.finetune import FinetuneConfig, Progress
from playground.jobs import DatasetReady, Jobs, TrainingOutcome, TrainingRequest, planned_images, training_job
from tests.test_app_train import make_zip


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def test_a_job_reads_trains_and_writes_its_downloads(tmp_path):
    config = FinetuneConfig(model="alexnet_compact", mode="head", pretrained=False, image_size=64, epochs=2)
    request = TrainingRequest(
        config, "zip", str(tmp_path / "run"), zip_path=str(make_zip(tmp_path / "c.zip")), zip_name="c"
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
    monkeypatch.setattr(jobs.time, "monotonic", lambda: next(clock))
    config = FinetuneConfig(
        model="alexnet_compact", mode="full", pretrained=False, image_size=64, epochs=1, max_seconds=150
    )
    outcome = list(training_job(TrainingRequest(config, "synthetic", str(tmp_path), limit=50)))[-1]
    assert outcome.result.config.max_seconds == 50  # 150 s minus the 100 s the data took (the engine stops there)


def test_planned_images_come_from_the_zip_directory_or_the_catalogue(tmp_path):
    config = FinetuneConfig()
    zipped = TrainingRequest(config, "zip", str(tmp_path), zip_path=str(make_zip(tmp_path / "c.zip", per_class=4)))
    assert planned_images(zipped) == 12
    assert planned_images(TrainingRequest(config, "fashion-mnist", str(tmp_path), limit=2000)) == 2000
    assert planned_images(TrainingRequest(config, "synthetic", str(tmp_path))) == 300


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
