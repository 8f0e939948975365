"""What an experiment found: each run's numbers, the table over seeds with a plain word on noise, the notes,
the overlaid curves, and the files (results.json, results.csv, summary.csv, curves.png).

Whether a difference between two runs is more than the noise is Welch's t-test (scipy) on their validation
accuracies over seeds; with one seed the table says that the noise is unknown.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import statistics
import warnings
from pathlib import Path

import torch
from PIL import Image
from scipy import stats

from playground import models, render
from playground.training import curves  # noqa: F401  (chooses matplotlib's server backend before pyplot loads)
from playground.training.finetune import SCRATCH_RECIPE, FinetuneResult, Progress

NOISE_P = 0.05  # a difference whose Welch p-value is at least this is "inside the noise"
# 1 - 0.7 is 0.30000000000000004: an error is compared with its target with this slack, far below the
# 1 / n between two error rates of n images for any n under a billion, so an exact hit counts and a miss never does.
ERROR_SLACK = 1e-9


@dataclasses.dataclass(frozen=True)
class Target:
    """An error rate a run should reach; "epochs to target" counts the epochs it took."""

    error: float  # 0-1, top-1
    on: str = "validation"  # or "training" (the paper's Figure 1 counted training error)

    def check(self) -> None:
        if not 0 < self.error < 1 or self.on not in ("training", "validation"):
            raise ValueError(
                f"The target is an error between 0 and 1 on 'training' or 'validation' images, not {self.error!r} "
                f"on {self.on!r}."
            )

    def describe(self) -> str:
        return f"{self.error:.0%} {self.on} error"

    def reached(self, accuracy: float) -> bool:
        """Whether a top-1 ``accuracy`` (0-1) is at or below this error: 7 of 10 right reaches 30 %."""
        return 1 - accuracy <= self.error + ERROR_SLACK


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """One run with one seed, as the table, the files and the plot need it."""

    label: str
    settings: dict  # what this run changes
    seed: int
    val_accuracy: float
    top5_error: float | None  # None with five classes or fewer (it would always be 0)
    train_accuracy: float  # the last epoch's running training accuracy
    epochs: int  # trained
    epochs_to_target: int | None  # None: never reached
    seconds_to_target: float | None
    seconds: float
    parameters: int
    history: list
    notice: str = ""
    stopped_at_cap: bool = False
    classes: int = 0  # the data's classes: chance is 1 / classes (0: not known)
    at_chance: str = ""  # the sentence of stayed_at_chance, when the run never left chance

    @property
    def chance(self) -> float | None:
        return 1 / self.classes if self.classes else None

    @property
    def top1_error(self) -> float:
        return 1 - self.val_accuracy

    def line(self) -> str:
        reached = f"target after {self.epochs_to_target} epoch(s)" if self.epochs_to_target else "target not reached"
        return (
            f"{self.label} (seed {self.seed}): validation accuracy {self.val_accuracy:.1%}, training "
            f"{self.train_accuracy:.1%}, {reached}, {self.seconds:.0f} s"
        )

    def record(self) -> dict:
        return {**dataclasses.asdict(self), "top1_error": self.top1_error}


def outcome(label: str, settings: dict, seed: int, result: FinetuneResult, target: Target) -> RunOutcome:
    """A finished run's numbers, with the epochs (and seconds, validation passes included) it took to reach
    ``target``."""
    key = "accuracy" if target.on == "training" else "val_accuracy"
    reached = next((h["epoch"] for h in result.history if target.reached(h[key])), None)
    with torch.device("meta"):  # counted from the architecture; nothing is allocated
        network = models.build(
            result.variant,
            num_classes=len(result.classes),
            input_shape=result.input_shape,
            **result.config.model_options(),
        )
    return RunOutcome(
        label=label,
        settings=settings,
        seed=seed,
        val_accuracy=result.val_accuracy,
        top5_error=None if result.top5_accuracy is None else 1 - result.top5_accuracy,
        train_accuracy=result.history[-1]["accuracy"],
        epochs=len(result.history),
        epochs_to_target=reached,
        seconds_to_target=None if reached is None else sum(h["seconds"] for h in result.history[:reached]),
        seconds=result.seconds,
        parameters=sum(p.numel() for p in network.parameters()),
        history=result.history,
        notice=result.notice,
        stopped_at_cap=result.stopped_early,
        classes=len(result.classes),
        at_chance=stayed_at_chance(result),
    )


def stayed_at_chance(result: FinetuneResult) -> str:
    """One sentence, with what to change, when a run learned nothing: its validation accuracy is not clearly
    above chance (1 / classes) or its training loss stayed flat near ln(classes), the loss of a uniform guess.
    "" when it learned.

    "Clearly above" is two standard deviations above chance of a guess on this many validation images (a
    guesser scores 20 % ± 6 points on 40 images of five classes, so 32.6 % is needed there).
    """
    classes, images = len(result.classes), int(result.confusion.sum())
    if classes < 2 or not result.history or not images:
        return ""
    chance, uniform, loss = 1 / classes, math.log(classes), result.history[-1]["loss"]
    clearly = chance + 2 * math.sqrt(chance * (1 - chance) / images)
    flat = loss >= CHANCE_LOSS * uniform
    if result.val_accuracy > clearly and not flat:
        return ""
    said = f"validation accuracy {result.val_accuracy:.1%} against {chance:.0%} for guessing among {classes} classes"
    if flat:
        said += f", training loss {loss:.2f} against ln {classes} = {uniform:.2f} for a uniform guess"
    predicted = [int(i) for i in result.confusion.sum(axis=0).nonzero()[0]]
    if len(predicted) == 1:
        said += f"; it predicted {result.classes[predicted[0]]} for every validation image"
    return f"This run stayed at chance ({said}): {_what_to_change(result)}."


CHANCE_LOSS = 0.95  # a last-epoch training loss above this fraction of ln(classes) has barely left a uniform guess


def _what_to_change(result: FinetuneResult) -> str:
    config, record = result.config, models.spec(result.variant)
    if record.convolutional and config.mode == "head" and not result.imagenet_start:
        return (
            "head only trained one layer on an untrained network's random features; train in full, or start "
            "from ImageNet weights"
        )
    lower = SCRATCH_RECIPE["lr"] if config.lr > SCRATCH_RECIPE["lr"] else config.lr / 3
    change = f"lower the learning rate (it was {config.lr:g}; try {lower:g})"
    if record.convolutional and not config.batch_norm:
        change += ", turn on batch norm"
    return f"{change}, or train for more epochs (it trained {len(result.history)})"


# --- the table over seeds -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    settings: str
    seeds: int
    val_accuracy: float  # mean over seeds
    spread: float | None  # standard deviation over seeds (None with one seed)
    top1_error: float
    top5_error: float | None
    train_accuracy: float
    epochs_to_target: str  # "3", "3.5 (2 of 3 seeds)" or "not reached"
    seconds_to_target: float | None  # mean over the seeds that reached the target
    parameters: int
    seconds: float
    verdict: str  # against the first run: "reference", "+2.1 points: inside the noise (p = 0.40)", ...
    reached: int  # seeds that reached the target: the to-target cells average only these, and say so
    classes: int = 0  # the data's classes: the table names chance, 1 / classes, beside each accuracy

    def cells(self) -> dict:
        """The row as the table shows it (and summary.csv holds it)."""

        def percent(value):
            return "—" if value is None else f"{value:.1%}"

        return {
            "run": self.label,
            "differs in": self.settings,
            "seeds": self.seeds,
            "val. accuracy": percent(self.val_accuracy) + ("" if self.spread is None else f" ± {self.spread:.1%}"),
            "chance": f"{1 / self.classes:.1%} (1/{self.classes})" if self.classes else "—",
            "top-1 error": percent(self.top1_error),
            "top-5 error": percent(self.top5_error),
            "train accuracy": percent(self.train_accuracy),
            "epochs to target": self.epochs_to_target,
            "s to target": "—"
            if self.seconds_to_target is None
            else f"{self.seconds_to_target:.0f}" + _of_seeds(self.reached, self.seeds),
            "parameters": f"{self.parameters:,}",
            "seconds": f"{self.seconds:.0f}",
            "against the first run": self.verdict,
        }


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    title: str
    question: str
    theirs: str  # the paper's or the lecture's number ("" for composed runs)
    dataset: str
    target: Target
    outcomes: tuple[RunOutcome, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]  # noise, targets not reached, the time cap, notices (untrained weights)
    planned: int  # runs (times seeds) that were planned
    seconds: float

    def table(self) -> list[dict]:
        return [row.cells() for row in self.rows]

    def text(self) -> str:
        """The table and notes as plain text, for the command line."""
        lines = [f"{self.title} on {self.dataset} (target: {self.target.describe()})"]
        for cells in self.table():
            lines.append(" | ".join(f"{key}: {value}" for key, value in cells.items()))
        if self.theirs:
            lines.append(f"Theirs: {self.theirs}")
        return "\n".join(lines + list(self.notes))

    def to_json(self) -> dict:
        return {
            "experiment": self.title,
            "question": self.question,
            "theirs": self.theirs,
            "dataset": self.dataset,
            "target": dataclasses.asdict(self.target),
            "seeds": sorted({o.seed for o in self.outcomes}),
            "runs": [o.record() for o in self.outcomes],
            "summary": self.table(),
            "notes": list(self.notes),
            "planned_runs": self.planned,
            "seconds": self.seconds,
        }


# --- reading a saved result back (a project file: untrusted) ---------------------------------------------

MAX_RUNS = 500  # runs (times seeds) a saved result may hold
MAX_EPOCHS = 1000
_TEXT = 2000  # characters of one saved sentence (a notice)


def _bad(what: str) -> ValueError:
    return ValueError(f"The saved experiment is damaged: {what}.")


def _fraction(value, what: str, *, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _bad(f"{what} is not a number from 0 to 1")
    return float(value)


def _count(value, what: str, low: int, high: int, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{what} is not a whole number from {low:,} to {high:,}")
    return value


def _seconds(value, what: str, *, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise _bad(f"{what} is not a number of seconds")
    return float(value)


def _text(value, what: str, most: int = _TEXT) -> str:
    if not isinstance(value, str) or len(value) > most:
        raise _bad(f"{what} is not a text of at most {most:,} characters")
    return value


def _history(value) -> list[dict]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EPOCHS:
        raise _bad(f"a run's history is not a list of 1 to {MAX_EPOCHS:,} epochs")
    epochs = []
    for number, entry in enumerate(value, start=1):
        if not isinstance(entry, dict) or len(entry) > 20:
            raise _bad("an epoch of a run's history is not a record")
        for key, item in entry.items():
            if not isinstance(key, str) or len(key) > 40:
                raise _bad("an epoch of a run's history has a strange name")
            if item is not None and (
                isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item)
            ):
                raise _bad(f"an epoch's {key[:40]} is not a number")
        if entry.get("epoch") != number:
            raise _bad("a run's epochs are not numbered 1, 2, 3, ...")
        _fraction(entry.get("accuracy"), "an epoch's training accuracy")
        _fraction(entry.get("val_accuracy"), "an epoch's validation accuracy")
        epochs.append(dict(entry))
    return epochs


def outcome_of(record) -> RunOutcome:
    """A run as :meth:`RunOutcome.record` wrote it, every field checked (a saved file is untrusted).

    Raises:
        ValueError: a sentence naming the first field that is missing or out of range.
    """
    if not isinstance(record, dict):
        raise _bad("a run is not a record")
    names = {field.name for field in dataclasses.fields(RunOutcome)}
    missing = sorted(names - set(record) - {"notice", "stopped_at_cap", "classes", "at_chance"})
    if missing:
        raise _bad(f"a run has no {missing[0]}")
    settings = record["settings"]
    if (
        not isinstance(settings, dict)
        or len(settings) > 40
        or not all(
            isinstance(k, str) and len(k) <= 40 and (v is None or isinstance(v, str | int | float | bool))
            for k, v in settings.items()
        )
    ):
        raise _bad("a run's settings are not a few named values")
    if any(isinstance(v, str) and len(v) > 200 for v in settings.values()):
        raise _bad("a run's setting is too long")
    history = _history(record["history"])
    epochs = _count(record["epochs"], "a run's epochs", 1, MAX_EPOCHS)
    if epochs != len(history):
        raise _bad("a run's epochs do not match its history")
    return RunOutcome(
        label=_text(record["label"], "a run's name", 100) or "run",
        settings=dict(settings),
        seed=_count(record["seed"], "a run's seed", 0, 2**63 - 1),
        val_accuracy=_fraction(record["val_accuracy"], "a run's validation accuracy"),
        top5_error=_fraction(record["top5_error"], "a run's top-5 error", optional=True),
        train_accuracy=_fraction(record["train_accuracy"], "a run's training accuracy"),
        epochs=epochs,
        epochs_to_target=_count(record["epochs_to_target"], "a run's epochs to target", 1, epochs, optional=True),
        seconds_to_target=_seconds(record["seconds_to_target"], "a run's seconds to target", optional=True),
        seconds=_seconds(record["seconds"], "a run's seconds"),
        parameters=_count(record["parameters"], "a run's parameters", 0, 10**11),
        history=history,
        notice=_text(record.get("notice", ""), "a run's notice"),
        stopped_at_cap=bool(record.get("stopped_at_cap", False)),
        classes=_count(record.get("classes", 0), "a run's classes", 0, 100_000),
        at_chance=_text(record.get("at_chance", ""), "a run's note"),
    )


def result_of(data, presets=()) -> ExperimentResult:
    """An experiment as :meth:`ExperimentResult.to_json` saved it. Only the runs are read from the file: the
    table, the verdicts and the notes are computed from them again (as :func:`summarise` computed them when
    the experiment ran), so a saved file cannot show a table its own runs do not give. ``presets``: the
    experiments' presets (:data:`playground.training.experiments.PRESETS`' values), so a preset's result keeps
    its question and the paper's numbers.

    Raises:
        ValueError: a sentence naming what is missing or out of range.
    """
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise _bad("it has no list of runs")
    if not 1 <= len(data["runs"]) <= MAX_RUNS:
        raise _bad(f"it holds {len(data['runs']):,} runs; 1 to {MAX_RUNS:,} are accepted")
    outcomes = [outcome_of(record) for record in data["runs"]]
    target = data.get("target")
    if not isinstance(target, dict) or set(target) != {"error", "on"}:
        raise _bad("its target is not an error and what it is measured on")
    try:
        goal = Target(float(target["error"]), str(target["on"]))
        goal.check()
    except (TypeError, ValueError):
        raise _bad("its target is not an error between 0 and 1 on training or validation images") from None
    title = _text(data.get("experiment", ""), "its title", 200)
    preset = next((recipe for recipe in presets if recipe.title == title), None)
    labels = list(dict.fromkeys(o.label for o in outcomes))  # the order they ran in
    planned = _count(data.get("planned_runs", len(outcomes)), "its planned runs", 1, MAX_RUNS)
    return summarise(preset, labels, outcomes, goal, dataset_name=_text(data.get("dataset", ""), "its dataset", 200),
                     planned=max(planned, len(outcomes)), capped=planned > len(outcomes),
                     seconds=_seconds(data.get("seconds", 0.0), "its seconds"))  # fmt: skip


def summarise(
    preset, labels: list[str], outcomes: list[RunOutcome], target: Target, *, dataset_name, planned, capped, seconds
) -> ExperimentResult:
    """The table over seeds, in the runs' order, and the notes a learner should read beside it."""
    by_label = {label: [o for o in outcomes if o.label == label] for label in labels}
    by_label = {label: found for label, found in by_label.items() if found}
    reference = next(iter(by_label.values()), [])
    rows = [_row(found, reference) for found in by_label.values()]
    notes = []
    if capped:
        notes.append(
            f"The time cap was reached: {len(outcomes)} of {planned} runs finished (the last one may have stopped "
            "early). Use fewer seeds, epochs or images to see them all."
        )
    unreached = [label for label, found in by_label.items() if all(o.epochs_to_target is None for o in found)]
    if by_label and len(unreached) == len(by_label):
        most = max(o.epochs for o in outcomes)
        notes.append(
            f"No run reached the target ({target.describe()}) within {most} epoch(s), so no run can be said to get "
            "there faster: set a larger target error, or train for more epochs."
        )
    elif unreached:
        notes.append(f"{', '.join(unreached)} never reached the target ({target.describe()}).")
    first, first_found = next(iter(by_label.items()), (None, []))
    for label, found in list(by_label.items())[1:]:
        mine, theirs = _mean_epochs(found), _mean_epochs(first_found)
        if mine and theirs:
            notes.append(
                f"{label} needed {mine / theirs:.1f}× the epochs of {first} to reach {target.describe()} "
                f"({mine:g} against {theirs:g})."
            )
    if outcomes and all(o.top5_error is None for o in outcomes):
        notes.append(
            "Top-5 error needs more than five classes: with five or fewer the true class is always in the top five."
        )
    for label, found in by_label.items():
        for notice in sorted({o.notice for o in found if o.notice and not o.stopped_at_cap}):
            notes.append(f"{label}: {notice}")
        for stuck in (o for o in found if o.at_chance):  # each seed's own numbers
            notes.append(f"{label}{f' (seed {stuck.seed})' if len(found) > 1 else ''}: {stuck.at_chance}")
    return ExperimentResult(
        title=preset.title if preset else "Your experiment",
        question=preset.question if preset else "",
        theirs=preset.theirs if preset else "",
        dataset=dataset_name,
        target=target,
        outcomes=tuple(outcomes),
        rows=tuple(rows),
        notes=tuple(notes),
        planned=planned,
        seconds=seconds,
    )


def _mean_epochs(found: list[RunOutcome]) -> float | None:
    reached = [o.epochs_to_target for o in found if o.epochs_to_target is not None]
    return statistics.mean(reached) if len(reached) == len(found) else None  # only when every seed got there


def _row(found: list[RunOutcome], reference: list[RunOutcome]) -> Row:
    accuracies = [o.val_accuracy for o in found]
    reached = [o.epochs_to_target for o in found if o.epochs_to_target is not None]
    if not reached:
        epochs = "not reached"
    else:
        epochs = f"{statistics.mean(reached):g}" + _of_seeds(len(reached), len(found))
    to_target = [o.seconds_to_target for o in found if o.seconds_to_target is not None]
    top5 = [o.top5_error for o in found if o.top5_error is not None]
    return Row(
        label=found[0].label,
        settings=", ".join(f"{key}={value}" for key, value in found[0].settings.items()) or "—",
        seeds=len(found),
        val_accuracy=statistics.mean(accuracies),
        spread=statistics.stdev(accuracies) if len(found) > 1 else None,
        top1_error=1 - statistics.mean(accuracies),
        top5_error=statistics.mean(top5) if top5 else None,
        train_accuracy=statistics.mean(o.train_accuracy for o in found),
        epochs_to_target=epochs,
        seconds_to_target=statistics.mean(to_target) if to_target else None,
        parameters=found[0].parameters,
        seconds=statistics.mean(o.seconds for o in found),
        verdict="reference" if found is reference else verdict(accuracies, [o.val_accuracy for o in reference]),
        reached=len(to_target),
        classes=found[0].classes,
    )


def _of_seeds(reached: int, seeds: int) -> str:
    return "" if reached == seeds else f" ({reached} of {seeds} seeds)"


def verdict(mine: list[float], reference: list[float]) -> str:
    """The difference in validation accuracy (points) against the reference run, and whether it is noise."""
    difference = 100 * (statistics.mean(mine) - statistics.mean(reference))
    said = f"{difference:+.1f} points"
    if len(mine) < 2 or len(reference) < 2:
        return f"{said}; one seed, so the noise is unknown (repeat with 2 or more seeds)"
    if statistics.stdev(mine) == 0 and statistics.stdev(reference) == 0:
        return f"{said} on every seed alike" if difference else "no difference on any seed"
    with warnings.catch_warnings():  # near-identical seeds: scipy warns about precision, the answer stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(mine, reference, equal_var=False).pvalue)
    if math.isnan(p) or p >= NOISE_P:
        return f"{said}: inside the noise (p = {p:.2f}), so no difference can be claimed"
    return f"{said}: beyond the noise (p = {p:.3f})"


# --- the overlaid curves --------------------------------------------------------------------------------


class Overlay:
    """Every run's training and validation error against epochs on one figure: one colour per run, its
    seeds in the same colour, the target as a dashed line, chance (the error of guessing) dotted. Fed live from progress records, and settled from
    each finished run's history."""

    def __init__(self, labels: list[str], target: Target, title: str = ""):
        self.labels, self.target, self.title = list(labels), target, title
        self.training: dict[tuple[str, int], list] = {}  # (label, seed) -> [(epoch, error)] of finished epochs
        self.validation: dict[tuple[str, int], list] = {}
        self.live: dict[tuple[str, int], tuple[float, float]] = {}  # the epoch in progress
        self.classes = 0  # the data's classes, from the first record that tells them: chance is 1 / classes

    def add(self, label: str, seed: int, progress: Progress) -> None:
        self.classes = progress.classes or self.classes
        if not progress.total_steps:  # head only: computing features, no error yet
            return
        key, per_epoch = (label, seed), progress.total_steps / progress.epochs
        within = progress.step - (progress.epoch - 1) * per_epoch
        if progress.val_accuracy is not None and len(self.validation.get(key, [])) < progress.epoch - 1:
            self.validation.setdefault(key, []).append((progress.epoch - 1, 1 - progress.val_accuracy))
        if within >= per_epoch - 1e-9:  # the epoch's last step: its running accuracy is the epoch's
            self.training.setdefault(key, []).append((progress.epoch, 1 - progress.accuracy))
            self.live.pop(key, None)
        else:
            self.live[key] = (progress.epoch - 1 + within / per_epoch, 1 - progress.accuracy)

    def settle(self, run: RunOutcome) -> None:
        key = (run.label, run.seed)
        self.classes = run.classes or self.classes
        self.training[key] = [(h["epoch"], 1 - h["accuracy"]) for h in run.history]
        self.validation[key] = [(h["epoch"], 1 - h["val_accuracy"]) for h in run.history]
        self.live.pop(key, None)

    def figure(self):
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        figure = Figure(figsize=(10, 3.6), dpi=100)
        panels = figure.subplots(1, 2, sharey=True)
        colours = {label: f"C{i % 10}" for i, label in enumerate(self.labels)}
        for axes, name, series in ((panels[0], "training", self.training), (panels[1], "validation", self.validation)):
            shown = set()
            for (label, seed), points in sorted(series.items(), key=lambda item: item[0][1]):
                points = points + (
                    [self.live[(label, seed)]] if name == "training" and (label, seed) in self.live else []
                )
                if not points:
                    continue
                xs, ys = zip(*points)
                first = label not in shown
                shown.add(label)
                axes.plot(xs, ys, "o-" if len(points) <= 30 else "-", color=colours.get(label, "gray"),
                          linewidth=1.6 if first else 0.9, alpha=1.0 if first else 0.55, markersize=3,
                          label=label if first else None)  # fmt: skip
            if self.target.on == name:
                axes.axhline(self.target.error, color="0.4", linestyle="--", linewidth=1)
                axes.annotate(f"target {self.target.error:.0%}", (0.01, self.target.error), xycoords=("axes fraction", "data"),
                              va="bottom", fontsize=8, color="0.3")  # fmt: skip
            if self.classes:
                axes.axhline(1 - 1 / self.classes, color="0.45", linestyle=":", linewidth=1.4,
                             label=f"chance: {1 - 1 / self.classes:.0%} error (1/{self.classes} right)")  # fmt: skip
                shown.add("chance")
            axes.set_title(f"{name} error" + (" (top-1)" if name == "validation" else ""), fontsize=10)
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_ylim(0, 1)
            axes.grid(alpha=0.3)
            if shown:
                axes.legend(fontsize=8, loc="upper right")
        seeds = any(seed for _, seed in [*self.training, *self.validation])
        title = " ".join(part for part in (self.title, "(thin lines: further seeds)" if seeds else "") if part)
        if title:
            figure.suptitle(title, fontsize=11)
        render.fixed_margins(figure, top=0.6 if title else 0.3, between=0.25)  # the panels share the y axis
        return figure

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png")
        return buffer.getvalue()

    def image(self) -> Image.Image:
        return render.figure_image(self.figure())


def overlay_of(result: ExperimentResult) -> Overlay:
    """The finished experiment's curves, from every run's history."""
    plot = Overlay([row.label for row in result.rows], result.target, f"{result.title} on {result.dataset}")
    for run in result.outcomes:
        plot.settle(run)
    return plot


# --- files ----------------------------------------------------------------------------------------------

CSV_FIELDS = ["label", "settings", "seed", "val_accuracy", "top1_error", "top5_error", "train_accuracy", "epochs",
              "epochs_to_target", "seconds_to_target", "seconds", "parameters", "notice"]  # fmt: skip


def write_results(result: ExperimentResult, folder: Path) -> list[Path]:
    """results.json (every run with its history), results.csv (a row per run and seed), summary.csv (the
    table as shown) and curves.png, in ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in ("results.json", "results.csv", "summary.csv", "curves.png")]
    paths[0].write_text(json.dumps(result.to_json(), indent=2))
    with paths[1].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for run in result.outcomes:
            writer.writerow({**run.record(), "settings": "; ".join(f"{k}={v}" for k, v in run.settings.items())})
    with paths[2].open("w", newline="") as handle:
        table = result.table()
        writer = csv.DictWriter(handle, fieldnames=list(table[0]) if table else ["run"])
        writer.writeheader()
        writer.writerows(table)
    paths[3].write_bytes(overlay_of(result).png())
    return paths
