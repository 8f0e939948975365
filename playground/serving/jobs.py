"""Long jobs, training and experiments: the jobs themselves (what a worker process runs), and per session at
most one running and the last finished run of each kind kept for browsing.

Like :class:`playground.serving.store.ModelStore`, the bookkeeping is per-session state that lives on the
server; a session's entries go when it ends (:meth:`Jobs.forget`), and finished runs are bounded across
sessions because API callers never close a tab.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from playground import models
from playground.config import get_limits
from playground.data.datasets import ImageDataset
from playground.data.sources import BUILT_IN, DatasetSource
from playground.training.experiments import ExperimentConfig, Queued, RunDone, Step, plan, run_experiment
from playground.training.export import write_bundle
from playground.training.finetune import FinetuneConfig, FinetuneResult, Progress, finetune, gpu_seconds
from playground.training.report import ExperimentResult, RunOutcome, write_results

THUMBNAIL_PX = 112
LONG = "long-jobs"  # the group of jobs that run for minutes (training, experiments): one per session
UNITS = "unit-jobs"  # the Units tab's passes (seconds to minutes): one per session, apart from LONG
UNITS_QUICK = "unit-quick-jobs"  # ... and the queue of one channel's visualisation, which never waits behind them


@dataclasses.dataclass
class TrainingRun:
    """What a session keeps of its last finished training (freed when the session ends)."""

    result: FinetuneResult | None  # without its weights (those live in the files and the model store); None:
    # opened from a project file, which keeps the numbers (``summary``) but not the validation images
    thumbnails: dict[int, Image.Image]  # dataset index -> small picture, for misclassified validation images
    folder: str  # where the downloads were written
    summary: dict | None = None  # the numbers a project file keeps (playground.sharing.project.training_summary)

    def mistakes(self, true_class: str, predicted_class: str) -> tuple[list[tuple[Image.Image, float]], int]:
        """The validation images of ``true_class`` taken for ``predicted_class``, most confident first, as
        (thumbnail, confidence), and how many such images there were in all.

        Raises:
            ValueError: a class that is not in this run's dataset.
        """
        if self.result is None:
            raise ValueError("A project file keeps a training's numbers, not its images: train again to browse "
                             "the misclassified ones.")  # fmt: skip
        classes = list(self.result.classes)
        if true_class not in classes or predicted_class not in classes:
            raise ValueError("Choose a true and a predicted class from your dataset.")
        t, p = classes.index(true_class), classes.index(predicted_class)
        cell = [
            (i, confidence) for i, truth, guess, confidence in self.result.misclassified if truth == t and guess == p
        ]
        return [(self.thumbnails[i], confidence) for i, confidence in cell if i in self.thumbnails], len(cell)


# --- the job (runs in a worker process: its arguments and records are plain, picklable values) ---------


@dataclasses.dataclass(frozen=True)
class TrainingRequest:
    config: FinetuneConfig  # its max_seconds is the cap for the whole job, reading the data included
    source: DatasetSource  # the data to train on
    folder: str  # where the downloads are written
    gpu_seconds: float = 0.0  # GPU time to book where a job must (ZeroGPU); see planned_gpu_seconds


@dataclasses.dataclass(frozen=True)
class DatasetReady:
    """The data is read: what it holds (classes, counts, skipped files)."""

    report: str


@dataclasses.dataclass(frozen=True)
class TrainingOutcome:
    result: FinetuneResult
    thumbnails: dict[int, Image.Image]
    files: list[str]  # weights (safetensors), description (JSON), ONNX
    dataset_name: str


def training_job(request: TrainingRequest) -> Iterator[DatasetReady | Progress | TrainingOutcome]:
    """Read the data, fine-tune, write the downloads: everything a Train-tab job does, in order.

    Raises:
        ValueError: bad data or settings (the sentence says which).
    """
    started = time.monotonic()
    dataset = request.source.open()
    yield DatasetReady(_report(dataset))
    cap = request.config.max_seconds
    config = (
        request.config
        if cap is None
        else dataclasses.replace(request.config, max_seconds=max(0.0, cap - (time.monotonic() - started)))
    )
    result = None
    for record in finetune(config, dataset):
        if isinstance(record, FinetuneResult):
            result = record
        else:
            yield record
    stem = f"{result.variant}-{dataset.name}".replace(" ", "_").replace("/", "_")
    files = [str(path) for path in write_bundle(result, request.folder, stem=stem)]
    yield TrainingOutcome(result, mistake_thumbnails(dataset, result), files, dataset.name)


def planned_gpu_seconds(request: TrainingRequest) -> float:
    """The GPU time the job will need, estimated from its planned steps (see finetune.gpu_seconds)."""
    return gpu_seconds(request.config, request.source.planned_images())


# --- the experiment job ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExperimentRequest:
    config: ExperimentConfig  # its max_seconds caps the whole job, reading the data included
    source: DatasetSource  # a built-in one without a limit reads the experiment's own number of images
    folder: str  # where the results and the runs' weights are written
    gpu_seconds: float = 0.0

    def sized_source(self) -> DatasetSource:
        """The source as the experiment reads it: a built-in dataset, unless limited, at the preset's size."""
        if self.source.kind != BUILT_IN or self.source.limit:
            return self.source
        return dataclasses.replace(self.source, limit=self.config.limit())


@dataclasses.dataclass(frozen=True)
class RunFinished:
    """One run of the experiment is done; its weights are on disk (``checkpoint``), unless they could not be
    kept (a baseline, or the experiment's disk budget was spent)."""

    index: int
    outcome: RunOutcome
    checkpoint: str | None
    description: str  # how the model chooser names it


@dataclasses.dataclass(frozen=True)
class ExperimentOutcome:
    result: ExperimentResult
    files: list[str]  # results.json, results.csv, summary.csv, curves.png
    checkpoints: dict[int, str]  # planned run -> its weights
    descriptions: dict[int, str]


def experiment_job(
    request: ExperimentRequest,
) -> Iterator[DatasetReady | Queued | Step | RunFinished | ExperimentOutcome]:
    """Read the data, run every (run, seed), keep each run's weights to open later, write the results.

    Raises:
        ValueError: bad data, a bad experiment, or a run that cannot be trained (the sentence says which).
    """
    started = time.monotonic()
    plan(request.config)  # a bad combination is refused before any data is read
    dataset = request.sized_source().open()
    yield DatasetReady(_report(dataset))
    cap = request.config.max_seconds
    config = (
        request.config
        if cap is None
        else dataclasses.replace(request.config, max_seconds=max(0.0, cap - (time.monotonic() - started)))
    )
    kept, checkpoints, descriptions = 0, {}, {}
    budget = get_limits().experiment_weights_bytes
    Path(request.folder).mkdir(parents=True, exist_ok=True)
    for record in run_experiment(config, dataset):
        if isinstance(record, RunDone):
            result, path = record.result, None
            size = sum(t.numel() * t.element_size() for t in result.state_dict.values())
            description = (
                f"{record.outcome.label} (seed {record.outcome.seed}) on {dataset.name}, {result.val_accuracy:.0%} val."
            )
            if models.spec(result.variant).convolutional and kept + size <= budget:
                path = str(Path(request.folder) / f"run-{record.index}.safetensors")
                result.save(path)
                kept, checkpoints[record.index], descriptions[record.index] = kept + size, path, description
            yield RunFinished(record.index, record.outcome, path, description)  # the weights stay here
        elif isinstance(record, ExperimentResult):
            files = [str(path) for path in write_results(record, request.folder)]
            yield ExperimentOutcome(record, files, checkpoints, descriptions)
        else:
            yield record


def _report(dataset: ImageDataset) -> str:
    if dataset.report:
        return dataset.report.summary()
    return f"{dataset.name}: {len(dataset)} images, {len(dataset.classes)} classes."


def planned_experiment_gpu_seconds(request: ExperimentRequest) -> float:
    """The GPU time every planned run needs together (see finetune.gpu_seconds)."""
    images = request.sized_source().planned_images()
    return sum(gpu_seconds(item.config, images) for item in plan(request.config))


def runs_root() -> Path:
    """Where every run's folder lives (its downloads, results and weights): one folder, so the disk budget
    can measure them all (``PLAYGROUND_RUNS_DIR``, else a folder in the system's temporary folder)."""
    import os
    import tempfile

    return Path(os.environ.get("PLAYGROUND_RUNS_DIR") or Path(tempfile.gettempdir()) / "alexnet-playground-runs")


def new_run_folder() -> str:
    """A private folder for one run's downloads, under :func:`runs_root`."""
    import tempfile

    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="run-", dir=root)


# --- bookkeeping per session ----------------------------------------------------------------------------


def mistake_thumbnails(dataset: ImageDataset, result: FinetuneResult) -> dict[int, Image.Image]:
    """Small pictures of the most confidently misclassified validation images (at most the limit)."""
    pictures = {}
    for index, *_ in result.misclassified[: get_limits().misclassified_thumbnails]:
        pixels = dataset.images[index]
        pixels = pixels.expand(3, -1, -1) if pixels.shape[0] == 1 else pixels
        pictures[index] = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((THUMBNAIL_PX, THUMBNAIL_PX))
    return pictures


@dataclasses.dataclass
class _Claim:
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    worker: object | None = None  # a playground.serving.workers.Worker once started


@dataclasses.dataclass
class ExperimentRun:
    """What a session keeps of its last finished experiment (freed when the session ends)."""

    result: ExperimentResult
    checkpoints: dict[int, str]  # planned run -> its weights, to open in the other tabs
    descriptions: dict[int, str]
    folder: str  # the results files and the weights


class Jobs:
    """Per session at most one running job of each group (a training or an experiment; a Units pass), and the
    last finished run of each kind."""

    def __init__(self, *, runs_kept: int | None = None):
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Claim] = {}  # (session, group) -> its job
        self._runs: dict[tuple[str, str], TrainingRun | ExperimentRun] = {}  # (session, kind) -> its last; oldest first
        self._runs_kept = runs_kept or get_limits().runs_kept

    def claim(
        self, session: str, group: str = LONG, *, what: str = "a training job or an experiment"
    ) -> threading.Event:
        """Start a job of ``group`` for ``session``; returns the flag that :meth:`stop` sets.

        A claim whose worker has ended without its handler noticing (the handler was abandoned when its
        listener left) no longer counts.

        Raises:
            ValueError: the session already has a job of that group running (``what``: how the sentence names it).
        """
        with self._lock:
            if self._busy(session, group):
                raise ValueError(f"You already have {what} running; stop it or wait for it to finish.")
            claim = self._running[(session, group)] = _Claim()
            return claim.stop

    def busy(self, session: str, group: str = LONG) -> bool:
        """Whether ``session`` has a job of ``group`` running (or starting)."""
        with self._lock:
            return self._busy(session, group)

    def _busy(self, session: str, group: str) -> bool:
        claim = self._running.get((session, group))
        return claim is not None and (claim.worker is None or claim.worker.alive())

    def attach(self, session: str, worker, group: str = LONG) -> None:
        """Record the worker process that runs ``session``'s job."""
        with self._lock:
            if (session, group) in self._running:
                self._running[(session, group)].worker = worker

    def worker(self, session: str, group: str = LONG):
        """The worker running ``session``'s job of ``group``, if one has started."""
        with self._lock:
            claim = self._running.get((session, group))
        return claim and claim.worker

    def release(self, session: str, group: str = LONG) -> None:
        with self._lock:
            self._running.pop((session, group), None)

    def stop(self, session: str, group: str | None = LONG) -> None:
        """Ask ``session``'s job of ``group`` (None: every group) to stop: its handler stops the worker."""
        with self._lock:
            claims = [c for (s, g), c in self._running.items() if s == session and group in (None, g)]
        for claim in claims:
            claim.stop.set()

    def keep(self, session: str, run: TrainingRun | ExperimentRun, kind: str = "train") -> None:
        """Keep ``run`` as the session's last of its ``kind`` ("train" or "experiment"); past the bound, the
        oldest run of any session goes, with its files."""
        with self._lock:
            dropped = [self._runs.pop((session, kind))] if (session, kind) in self._runs else []
            self._runs[(session, kind)] = run
            while len(self._runs) > self._runs_kept:
                dropped.append(self._runs.pop(next(iter(self._runs))))
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)

    def drop_oldest_run(self) -> bool:
        """Free the oldest kept run of any session, with its files (the disk budget needs room); False if none."""
        with self._lock:
            if not self._runs:
                return False
            old = self._runs.pop(next(iter(self._runs)))
        shutil.rmtree(old.folder, ignore_errors=True)
        return True

    def last_run(self, session: str, kind: str = "train") -> TrainingRun | ExperimentRun | None:
        with self._lock:
            return self._runs.get((session, kind))

    def forget(self, session: str) -> None:
        """The session ended: stop its jobs and delete its runs' files."""
        self.stop(session, None)
        with self._lock:
            runs = [self._runs.pop(key) for key in list(self._runs) if key[0] == session]
        for run in runs:
            shutil.rmtree(run.folder, ignore_errors=True)
