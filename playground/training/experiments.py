"""Experiments: the lecture's ladder and the paper's ablations, run side by side on your data.

An experiment is a few runs that differ in one setting (:class:`Arm`), trained one after another on one
train/validation split with the same seeds, each repeated over several seeds when asked. The presets
(:data:`PRESETS`) carry the paper's or the lecture's number beside them, labelled as theirs; :func:`vary`
makes runs of your own. :func:`run_experiment` is a generator of progress records over the whole experiment
(closing it stops the run in progress), ending with an :class:`~playground.training.report.ExperimentResult`:
the table, the notes (noise, targets, time cap) and every run's history.

``python -m playground.training.experiments --preset relu-vs-tanh --data fashion-mnist --seeds 3 --out DIR`` writes
``results.json``, ``results.csv``, ``summary.csv`` and ``curves.png``; under ``torchrun`` every run trains
with DistributedDataParallel, as ``python -m playground.training.train`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from playground import models
from playground.config import get_limits
from playground.data import datasets as data
from playground.data.datasets import ImageDataset
from playground.data.sources import DatasetSource
from playground.training.finetune import FinetuneConfig, FinetuneResult, Progress, finetune, imagenet_weights_at_hand
from playground.training.report import ExperimentResult, RunOutcome, Target, outcome, summarise, write_results
from playground.training.train import add_config_options, config_values, distributed


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of an experiment (a "run" on screen): a label and the settings (FinetuneConfig fields) that make
    it different. Each arm trains once per seed."""

    label: str
    settings: dict
    without_imagenet: str = ""  # its label where ImageNet weights are not at hand ("": the label, so marked)

    def as_run_here(self, base: dict) -> Arm:
        """This arm as it will really train, on top of ``base``: one that asks for ImageNet weights where they
        are not at hand starts from random weights, says so in its label, and never waits for a download."""
        config = {**base, **self.settings}
        model = config.get("model", FinetuneConfig.model)
        if not config.get("pretrained", FinetuneConfig.pretrained) or models.spec(model).weights is None:
            return self
        if imagenet_weights_at_hand():
            return self
        label = self.without_imagenet or f"{self.label} (random features: no ImageNet weights here)"
        return Arm(label, {**self.settings, "pretrained": False})


@dataclasses.dataclass(frozen=True)
class Preset:
    title: str
    question: str  # what the runs compare, in a sentence
    theirs: str  # the paper's or the lecture's number, in their words: shown labelled as theirs
    runs: tuple[Arm, ...]  # the first is the reference every other run is compared with
    target: Target  # "epochs to target" counts epochs until this error
    base: dict  # settings every run shares, sized for a 2-core CPU (a few minutes)
    gpu: dict = dataclasses.field(default_factory=dict)  # what changes on a GPU: full-size images, longer
    limit: int | None = 2000  # images of a built-in dataset on a CPU
    gpu_limit: int | None = 20_000


# Trained from scratch on the whole network: the paper's ablations change the network or its training.
SCRATCH = dict(model="alexnet_compact", pretrained=False, mode="full", image_size=64, batch_size=32, epochs=10)
FULL_SIZE = dict(image_size=224, batch_size=128, epochs=30)

PRESETS: dict[str, Preset] = {
    "ladder": Preset(
        "The lecture's ladder",
        "How far does each step up the ladder go: pixels into a linear classifier, a hidden layer, a small "
        "CNN trained here, then a CNN pretrained on ImageNet?",
        "The lecture (five flowers): a linear classifier about 40-45 % validation accuracy, an MLP 50-55 %, "
        "transfer from a pretrained CNN about 80-90 %.",
        (
            Arm("linear", dict(model="linear", mode="full", image_size=64)),
            Arm("MLP", dict(model="mlp", mode="full", image_size=64)),
            # Batch norm and the from-scratch learning rate (the base leaves it to finetune.recipe): on 200 flower
            # photos at 64 px, Adam at 1e-3 without batch norm sat at chance for five epochs and ended at 32.5 %
            # (below the MLP); with batch norm at 1e-4, 55 %.
            Arm(
                "compact AlexNet, from scratch",
                dict(model="alexnet_compact", mode="full", pretrained=False, batch_norm=True),
            ),
            Arm(
                "AlexNet, ImageNet transfer",
                dict(model="alexnet", mode="head", pretrained=True, image_size=224),
                without_imagenet="AlexNet, random features (no ImageNet weights here)",
            ),
        ),
        Target(0.5, "validation"),
        dict(image_size=64, batch_size=32, epochs=12),  # each run's learning rate: its start's (finetune.recipe)
        gpu=dict(epochs=30),
        limit=1000,
        gpu_limit=None,
    ),
    "relu-vs-tanh": Preset(
        "ReLU vs tanh",
        "How many epochs does each activation need to reach the target training error? Both runs use batch "
        "normalisation and no regularisation: without batch norm, torch's default initialisation starves a deep "
        "ReLU net of signal at first, and on small data tanh can win the race.",
        "The paper (Figure 1, a four-layer CNN on CIFAR-10, no regularisation): ReLU reached 25 % training "
        "error six times faster than tanh.",
        (Arm("ReLU", dict(activation="relu")), Arm("tanh", dict(activation="tanh"))),
        Target(0.25, "training"),
        {
            **SCRATCH,
            "optimizer": "sgd",
            "lr": 0.01,
            "crop": False,
            "flip": False,
            "dropout": 0.0,
            "batch_norm": True,
            "epochs": 8,
        },  # fmt: skip
        gpu=FULL_SIZE,
    ),
    "lrn": Preset(
        "Local response normalisation",
        "Does normalising each conv1/conv2 response by its neighbours' lower the error?",
        "The paper (ImageNet): response normalisation reduced top-1 and top-5 error by 1.4 and 1.2 points.",
        (Arm("with LRN", dict(lrn=True)), Arm("without LRN", dict(lrn=False))),
        Target(0.3, "validation"),
        SCRATCH,
        gpu=FULL_SIZE,
    ),
    "overlapping-pooling": Preset(
        "Overlapping pooling",
        "Do pooling windows that overlap (3 x 3 at stride 2) beat windows that tile (2 x 2 at stride 2)?",
        "The paper (ImageNet): overlapping pooling reduced top-1 and top-5 error by 0.4 and 0.3 points, and "
        "the net overfitted slightly less.",
        (Arm("overlapping 3x3/2", dict(pooling="overlapping")), Arm("plain 2x2/2", dict(pooling="plain"))),
        Target(0.3, "validation"),
        SCRATCH,
        gpu=FULL_SIZE,
    ),
    "dropout": Preset(
        "Dropout",
        "Without dropout, does the gap between training and validation accuracy grow?",
        "The paper (ImageNet): without dropout the network overfits substantially; dropout roughly doubles "
        "the number of iterations needed to converge.",
        (Arm("dropout 0.5", dict(dropout=0.5)), Arm("no dropout", dict(dropout=0.0))),
        Target(0.3, "validation"),
        {**SCRATCH, "crop": False, "flip": False},  # no augmentation: dropout is the only regulariser left
        gpu=FULL_SIZE,
    ),
    "pca-colour": Preset(
        "PCA colour augmentation",
        "Does shifting each training image's colours along the data's principal colour axes lower the error?",
        "The paper (ImageNet): this 'fancy PCA' colour noise reduced top-1 error by over 1 point.",
        (Arm("with PCA colour", dict(pca_colour=True)), Arm("without", dict(pca_colour=False))),
        Target(0.3, "validation"),
        SCRATCH,
        gpu=FULL_SIZE,
    ),
    "drop-conv": Preset(
        "Remove a conv layer",
        "How much does the network lose without one of its middle convolutional layers?",
        "The paper (ImageNet): removing any of the middle convolutional layers cost about 2 points of top-1 error.",
        (
            Arm("all five convs", dict(drop_conv=None)),
            Arm("without conv2", dict(drop_conv=2)),
            Arm("without conv3", dict(drop_conv=3)),
            Arm("without conv4", dict(drop_conv=4)),
        ),
        Target(0.3, "validation"),
        SCRATCH,
        gpu=FULL_SIZE,
    ),
}

# The settings a composed experiment may vary, each with how to read it from text (the UI, the command line).
_BOOL = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
SETTINGS = {
    "activation": str, "lrn": lambda t: None if t.lower() == "none" else _BOOL[t.lower()], "pooling": str,
    "dropout": float, "batch_norm": lambda t: _BOOL[t.lower()], "init": str,
    "drop_conv": lambda t: None if t.lower() == "none" else int(t), "pca_colour": lambda t: _BOOL[t.lower()],
    "optimizer": str, "lr": float, "weight_decay": float, "schedule": str, "batch_size": int, "epochs": int,
    "image_size": int, "crop": lambda t: _BOOL[t.lower()], "flip": lambda t: _BOOL[t.lower()],
    "color_jitter": lambda t: _BOOL[t.lower()], "model": str, "mode": str,
}  # fmt: skip


def vary(setting: str, values) -> tuple[Arm, ...]:
    """Arms that differ in ``setting`` only, one per value (text is read as the setting's type).

    Raises:
        ValueError: an unknown setting, fewer than two values, or a value the setting cannot take.
    """
    if setting not in SETTINGS:
        raise ValueError(f"{setting!r} is not a setting an experiment can vary; choose one of: {', '.join(SETTINGS)}.")
    values = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    values = [v for v in values if v != ""]
    if len(values) < 2 or len(set(map(str, values))) != len(values):
        raise ValueError(f"Give two or more different values of {setting} to compare, separated by commas.")
    runs = []
    for value in values:
        try:
            parsed = SETTINGS[setting](value) if isinstance(value, str) else value
        except (ValueError, KeyError):
            raise ValueError(f"{value!r} is not a value {setting} can take.") from None
        runs.append(Arm(f"{setting}={value}", {setting: parsed}))
    return tuple(runs)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    preset: str = "relu-vs-tanh"  # a name of PRESETS: its runs, base settings, target and number
    runs: tuple[Arm, ...] = ()  # your own arms instead of the preset's (see vary); the preset's base stays
    base: dict = dataclasses.field(default_factory=dict)  # settings that override the preset's for every run
    seeds: int = 1  # each run is trained with seeds 0 .. seeds-1 (mean and spread from 2 or more)
    target: Target | None = None  # None: the preset's
    scale: str = "auto"  # "cpu" (minutes on two cores), "gpu" (full size), "auto" (gpu when CUDA is present)
    device: str = "auto"
    max_seconds: float | None = None  # wall-clock cap for the whole experiment
    split_seed: int = 0  # the one train/validation split every run and seed shares

    @property
    def recipe(self) -> Preset:
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown experiment {self.preset!r}; choose one of: {', '.join(PRESETS)}.")
        return PRESETS[self.preset]

    def base_settings(self) -> dict:
        """The settings every run shares: the preset's, its GPU scale's when full size, then yours."""
        recipe = self.recipe
        return {**recipe.base, **(recipe.gpu if self.full_size() else {}), **self.base}

    def arms(self) -> tuple[Arm, ...]:
        """The runs, yours or the preset's, as they will really train here (see :meth:`Arm.as_run_here`)."""
        base = self.base_settings()
        return tuple(arm.as_run_here(base) for arm in (self.runs or self.recipe.runs))

    def full_size(self) -> bool:
        return self.scale == "gpu" or (self.scale == "auto" and torch.cuda.is_available())

    def limit(self) -> int | None:
        """How many images of a built-in dataset the experiment reads."""
        return self.recipe.gpu_limit if self.full_size() else self.recipe.limit


@dataclasses.dataclass(frozen=True)
class Planned:
    index: int
    run: Arm
    seed: int
    config: FinetuneConfig


def plan(config: ExperimentConfig) -> list[Planned]:
    """Every (run, seed) in the order they train: all runs with seed 0 first, so one full comparison comes
    early, then the repeats.

    Raises:
        ValueError: a bad experiment or a run whose settings cannot be trained (the sentence names the run).
    """
    if not isinstance(config.seeds, int) or not 1 <= config.seeds <= 10:
        raise ValueError(f"Seeds must be a whole number from 1 to 10, got {config.seeds!r}.")
    if config.scale not in ("auto", "cpu", "gpu"):
        raise ValueError("scale is 'auto', 'cpu' or 'gpu'.")
    runs = config.arms()
    if len(runs) < 2 or len({run.label for run in runs}) != len(runs):
        raise ValueError("An experiment compares two or more runs, each with its own label.")
    most = get_limits().experiment_runs
    if len(runs) * config.seeds > most:
        raise ValueError(
            f"{len(runs)} runs with {config.seeds} seeds make {len(runs) * config.seeds} trainings; the limit is {most}. "
            "Use fewer seeds or values."
        )
    base = config.base_settings()
    planned = []
    for seed in range(config.seeds):
        # A run is checked as asked (with ImageNet weights or not, the same combinations are refused), then
        # planned as it will train here.
        for asked, run in zip(config.runs or config.recipe.runs, runs, strict=True):
            for arm in (asked, run):
                settings = {**base, **arm.settings, "seed": seed, "split_seed": config.split_seed}
                try:
                    finetune_config = FinetuneConfig(**{**settings, "device": config.device})
                    finetune_config.validate()
                except TypeError as error:
                    raise ValueError(f"Run {asked.label!r}: {error}.") from None
                except ValueError as error:
                    raise ValueError(f"Run {asked.label!r}: {error}") from None
            planned.append(Planned(len(planned), run, seed, finetune_config))
    return planned


# --- the experiment, as a generator of progress records -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Queued:
    """The experiment's queue, before anything trains: (label, seed) in order."""

    runs: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class Step:
    index: int  # which planned run
    label: str
    seed: int
    progress: Progress


@dataclasses.dataclass(frozen=True)
class RunDone:
    index: int
    outcome: RunOutcome
    result: FinetuneResult  # with its weights, to keep or open in the other tabs


def run_experiment(
    config: ExperimentConfig, dataset: ImageDataset
) -> Iterator[Queued | Step | RunDone | ExperimentResult]:
    """Train every planned run in turn on ``dataset``, yielding progress, each finished run, and the result.

    The time cap covers the whole experiment: each run gets what is left, and runs that never started are
    named in the result's notes. Closing the generator stops the run in progress within one step.

    Raises:
        ValueError: a bad experiment, a run that cannot be trained, or too little data.
    """
    planned = plan(config)
    target = config.target or config.recipe.target
    target.check()
    started = time.monotonic()
    yield Queued(tuple((p.run.label, p.seed) for p in planned))
    outcomes, capped = [], False
    for item in planned:
        left = None if config.max_seconds is None else config.max_seconds - (time.monotonic() - started)
        if left is not None and left <= 0:
            capped = True
            break
        result = None
        with contextlib.closing(finetune(dataclasses.replace(item.config, max_seconds=left), dataset)) as records:
            for record in records:
                if isinstance(record, FinetuneResult):
                    result = record
                else:
                    yield Step(item.index, item.run.label, item.seed, record)
        done = outcome(item.run.label, item.run.settings, item.seed, result, target)
        outcomes.append(done)
        yield RunDone(item.index, done, result)
        if result.stopped_early:  # it reached the time cap
            capped = True
            break
    runs = config.arms()
    yield summarise(
        config.recipe if not config.runs else None,
        [run.label for run in runs],
        outcomes,
        target,
        dataset_name=dataset.name,
        planned=len(planned),
        capped=capped,
        seconds=time.monotonic() - started,
    )


# --- the command line -----------------------------------------------------------------------------------


# FinetuneConfig fields an experiment sets itself (its own --device and --max-seconds; seeds 0 .. N-1, one split).
EXPERIMENT_SETS = ("device", "max_seconds", "seed", "split_seed")


def experiment_parser(config_type: type = FinetuneConfig) -> argparse.ArgumentParser:
    """This command line: the experiment, the data, where to write, and a flag for every field of
    ``config_type`` but :data:`EXPERIMENT_SETS`, overriding the preset for every run."""
    line = argparse.ArgumentParser(
        prog="python -m playground.training.experiments", description=__doc__.splitlines()[0]
    )
    line.add_argument("--preset", default="relu-vs-tanh", choices=list(PRESETS))
    line.add_argument(
        "--data",
        required=True,
        help=f"a dataset name ({', '.join(data.DATASETS)}), a .zip of class folders, or a folder of them",
    )
    line.add_argument("--seeds", type=int, default=1, help="repeat every run with seeds 0 .. N-1")
    line.add_argument("--vary", choices=list(SETTINGS), help="compose your own runs: the setting they differ in")
    line.add_argument("--values", help="with --vary: the values to compare, separated by commas")
    line.add_argument("--limit", type=int, help="images of a built-in dataset (default: the preset's)")
    line.add_argument("--target", type=float, help="the error (0-1) whose epochs to count (default: the preset's)")
    line.add_argument("--target-on", choices=["training", "validation"], help="which error the target is on")
    line.add_argument("--scale", default="auto", choices=["auto", "cpu", "gpu"], help="gpu: full-size presets")
    line.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    line.add_argument("--max-seconds", type=float, help="wall-clock cap for the whole experiment")
    line.add_argument("--out", required=True, help="folder for results.json, results.csv, summary.csv, curves.png")
    title = "training settings, each overriding the preset's for every run (FinetuneConfig's fields)"
    add_config_options(line, config_type, defaults=False, leave_out=EXPERIMENT_SETS, title=title)
    return line


def parse_args(argv=None) -> argparse.Namespace:
    return experiment_parser().parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment a command line asks for.

    Raises:
        ValueError: --vary without --values (or the reverse), or values the setting cannot take.
    """
    if bool(args.vary) != bool(args.values):
        raise ValueError("--vary and --values go together: the setting to vary and the values to compare.")
    given = config_values(args, leave_out=EXPERIMENT_SETS)
    base = {name: value for name, value in given.items() if value is not None}
    recipe = PRESETS[args.preset]
    target = None
    if args.target is not None or args.target_on:
        target = Target(recipe.target.error if args.target is None else args.target, args.target_on or recipe.target.on)
    return ExperimentConfig(
        preset=args.preset,
        runs=vary(args.vary, args.values) if args.vary else (),
        base=base,
        seeds=args.seeds,
        target=target,
        scale=args.scale,
        device=args.device,
        max_seconds=args.max_seconds,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    with distributed(args.device) as rank:
        try:
            config = config_from_args(args)
            plan(config)  # a bad combination is refused before any data is read
            dataset = DatasetSource.parse(args.data, limit=args.limit or config.limit()).open()
            result, shown = None, 0.0
            for record in run_experiment(config, dataset):
                if rank != 0:
                    continue
                if isinstance(record, Step) and time.monotonic() - shown > 0.5:
                    shown, progress = time.monotonic(), record.progress
                    where = progress.message or f"epoch {progress.epoch}/{progress.epochs}, step {progress.step}"
                    print(f"\r{record.label} (seed {record.seed}): {where}    ", end="", file=sys.stderr, flush=True)
                elif isinstance(record, RunDone):
                    print(f"\r{record.outcome.line()}", file=sys.stderr, flush=True)
                elif isinstance(record, ExperimentResult):
                    result = record
            if rank == 0 and result is not None:
                files = write_results(result, Path(args.out))
                print("\n" + result.text(), file=sys.stderr)
                print(f"Wrote {', '.join(str(f) for f in files)}.", file=sys.stderr)
            return 0
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
