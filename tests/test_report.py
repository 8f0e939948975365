"""The experiment report's numbers at their edges: an exact hit of the target, and seeds that never got there."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from playground.training.finetune import FinetuneConfig, FinetuneResult
from playground.training.report import Overlay, RunOutcome, Target, outcome, stayed_at_chance, summarise

TARGETS = (0.05, 0.1, 0.2, 0.25, 0.29, 0.3, 0.333, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _finished(val_accuracies: list[float], *, training: list[float] | None = None) -> FinetuneResult:
    """A finished compact-AlexNet run with these validation (and training) accuracies, one per epoch."""
    training = training or val_accuracies
    history = [
        {"epoch": epoch, "loss": 1.0, "accuracy": train, "val_accuracy": val, "seconds": 10.0 * epoch}
        for epoch, (val, train) in enumerate(zip(val_accuracies, training), start=1)
    ]
    return FinetuneResult(
        state_dict={}, variant="alexnet_compact", input_shape=(3, 64, 64), classes=("a", "b", "c"),
        config=FinetuneConfig(model="alexnet_compact"), history=history, val_accuracy=val_accuracies[-1],
        confusion=np.zeros((3, 3), dtype=np.int64), per_class_accuracy=[0.0] * 3, misclassified=[], seconds=60.0,
        images_per_second=1.0,
    )  # fmt: skip


@pytest.mark.parametrize("on", ["validation", "training"])
def test_an_exact_hit_of_the_target_reaches_it(on):
    # 7 of 10 right is exactly 30 % error, although 1 - 0.7 is 0.30000000000000004.
    run = outcome("run", {}, 0, _finished([0.5, 7 / 10, 0.9]), Target(0.3, on))
    assert run.epochs_to_target == 2 and run.seconds_to_target == 10.0 + 20.0


def test_reaching_a_target_is_exact_arithmetic_on_fractions():
    # Every accuracy k / n a run of up to 120 images can have, against exact fractions.
    for images in range(1, 121):
        for right in range(images + 1):
            for error in TARGETS:
                expected = Fraction(images - right, images) <= Fraction(str(error))
                assert Target(error).reached(right / images) is expected, (right, images, error)


def _outcome(seed: int, epochs_to_target: int | None, seconds_to_target: float | None) -> RunOutcome:
    return RunOutcome(
        label="run", settings={}, seed=seed, val_accuracy=0.8, top5_error=None, train_accuracy=0.9, epochs=5,
        epochs_to_target=epochs_to_target, seconds_to_target=seconds_to_target, seconds=50.0, parameters=1,
        history=[],
    )  # fmt: skip


def _table(outcomes: list[RunOutcome]) -> dict:
    result = summarise(None, ["run"], outcomes, Target(0.3), dataset_name="d", planned=len(outcomes), capped=False,
                       seconds=1.0)  # fmt: skip
    return result.table()[0]


def test_seconds_to_target_say_how_many_seeds_got_there():
    cells = _table([_outcome(0, 2, 20.0), _outcome(1, None, None), _outcome(2, 4, 40.0)])
    assert cells["epochs to target"] == "3 (2 of 3 seeds)"
    assert cells["s to target"] == "30 (2 of 3 seeds)"  # the mean over the two seeds that reached it


def test_seconds_to_target_when_every_seed_or_none_got_there():
    assert _table([_outcome(0, 2, 20.0), _outcome(1, 4, 41.0)])["s to target"] == "30"
    assert _table([_outcome(0, None, None), _outcome(1, None, None)])["s to target"] == "—"


def test_a_row_keeps_its_numbers_for_the_files():
    result = summarise(None, ["run"], [_outcome(0, 2, 20.0), _outcome(1, None, None)], Target(0.3), dataset_name="d",
                       planned=2, capped=False, seconds=1.0)  # fmt: skip
    row = result.rows[0]
    assert row.seconds_to_target == 20.0 and dataclasses.asdict(row)["seconds_to_target"] == 20.0


def _guessing(
    confusion, *, loss: float, classes=("daisy", "dandelion", "rose", "sunflower", "tulip")
) -> FinetuneResult:
    """A finished full from-scratch run whose validation predictions are ``confusion`` (rows: true classes)."""
    confusion = np.array(confusion, dtype=np.int64)
    accuracy = float(np.trace(confusion) / confusion.sum())
    history = [{"epoch": 1, "loss": loss, "accuracy": 0.2, "val_accuracy": accuracy, "seconds": 1.0}]
    return FinetuneResult(
        state_dict={}, variant="alexnet_compact", input_shape=(3, 64, 64), classes=classes,
        config=FinetuneConfig(model="alexnet_compact", mode="full", lr=1e-3), history=history, val_accuracy=accuracy,
        confusion=confusion, per_class_accuracy=[0.0] * len(classes), misclassified=[], seconds=1.0,
        images_per_second=1.0,
    )  # fmt: skip


ONE_CLASS = [[0, 0, 8, 0, 0]] * 5  # 40 validation images, every one taken for a rose: 20 %, as guessing


def test_a_run_that_guessed_one_class_says_it_stayed_at_chance_and_what_to_change():
    sentence = stayed_at_chance(_guessing(ONE_CLASS, loss=1.61))
    assert sentence.startswith("This run stayed at chance")
    assert "20.0% against 20% for guessing among 5 classes" in sentence
    assert "ln 5 = 1.61" in sentence and "it predicted rose for every validation image" in sentence
    assert "lower the learning rate (it was 0.001; try 0.0001)" in sentence and "batch norm" in sentence


def test_a_run_clearly_above_chance_says_nothing_and_one_just_above_does():
    # Guessing among five classes on 40 images scores 20 % ± 6.3 points: 13 of 40 (32.5 %) is still inside two of
    # them, 14 of 40 (35 %) is clearly above.
    def right(n):
        rows = [[8, 0, 0, 0, 0], [0, 8, 0, 0, 0], [0, 0, 0, 8, 0], [0, 0, 0, 0, 8], [8, 0, 0, 0, 0]]
        rows = [row[:] for row in rows]
        taken = 16 - n  # of the 16 right answers in rows 0 and 1, move this many off the diagonal
        rows[0][0], rows[0][2] = 8 - min(taken, 8), min(taken, 8)
        rows[1][1], rows[1][2] = 8 - max(taken - 8, 0), max(taken - 8, 0)
        return rows

    assert stayed_at_chance(_guessing(right(13), loss=1.2)).startswith("This run stayed at chance")
    assert stayed_at_chance(_guessing(right(14), loss=1.2)) == ""
    # Above chance on validation, but the training loss never left ln 5: still said, with the loss.
    assert "training loss 1.60 against ln 5 = 1.61" in stayed_at_chance(_guessing(right(16), loss=1.60))


def test_the_table_names_chance_and_the_notes_carry_the_sentence():
    stuck = outcome("compact AlexNet, from scratch", {}, 0, _guessing(ONE_CLASS, loss=1.61), Target(0.5))
    result = summarise(None, [stuck.label], [stuck], Target(0.5), dataset_name="flowers", planned=1, capped=False,
                       seconds=1.0)  # fmt: skip
    assert result.table()[0]["chance"] == "20.0% (1/5)"
    assert f"compact AlexNet, from scratch: {stuck.at_chance}" in result.notes
    assert stuck.at_chance.startswith("This run stayed at chance")


def test_the_overlay_draws_chance_on_both_panels():
    stuck = outcome("run", {}, 0, _guessing(ONE_CLASS, loss=1.61), Target(0.5))
    plot = Overlay(["run"], Target(0.5))
    plot.settle(stuck)
    for axes in plot.figure().axes:
        chance = [line for line in axes.get_lines() if line.get_label().startswith("chance")]
        assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.8, 0.8]  # the error of guessing
        assert "chance: 80% error (1/5 right)" in [text.get_text() for text in axes.get_legend().get_texts()]


def _saved_experiment():
    from playground.training.experiments import PRESETS

    recipe = PRESETS["relu-vs-tanh"]
    runs = [
        outcome(label, {"activation": label.lower()}, seed, _finished(accuracies), Target(0.3))
        for label, seed, accuracies in (
            ("ReLU", 0, [0.5, 0.75, 0.8]), ("ReLU", 1, [0.4, 0.6, 0.7]),
            ("tanh", 0, [0.3, 0.5, 0.6]), ("tanh", 1, [0.35, 0.45, 0.72]),
        )
    ]  # fmt: skip
    return summarise(recipe, ["ReLU", "tanh"], runs, Target(0.3), dataset_name="synthetic", planned=5, capped=True,
                     seconds=12.0)  # fmt: skip


def test_a_saved_experiment_reads_back_to_the_same_table_notes_and_curves():
    import json

    from playground.training.report import overlay_of, result_of

    result = _saved_experiment()
    from playground.training.experiments import PRESETS

    back = result_of(json.loads(json.dumps(result.to_json())), PRESETS.values())
    assert back.table() == result.table() and back.notes == result.notes and back.title == result.title
    assert back.outcomes == result.outcomes and back.theirs == result.theirs
    assert np.array_equal(np.asarray(overlay_of(back).image()), np.asarray(overlay_of(result).image()))


def test_a_saved_table_is_recomputed_from_its_runs_not_read():
    from playground.training.report import result_of

    saved = _saved_experiment().to_json()
    saved["summary"][0]["val. accuracy"] = "99.9%"  # a forged cell
    saved["notes"] = ["ReLU beat the paper"]
    back = result_of(saved)
    assert back.table()[0]["val. accuracy"] == _saved_experiment().table()[0]["val. accuracy"]
    assert "ReLU beat the paper" not in back.notes


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: d.update(runs="all of them"), "no list of runs"),
        (lambda d: d.update(runs=[]), "1 to 500 are accepted"),
        (lambda d: d["runs"][0].update(val_accuracy=1.5), "validation accuracy is not a number from 0 to 1"),
        (lambda d: d["runs"][0].update(val_accuracy=float("nan")), "validation accuracy is not a number from 0 to 1"),
        (lambda d: d["runs"][0].update(seed="0; DROP TABLE"), "seed is not a whole number"),
        (lambda d: d["runs"][0].pop("history"), "a run has no history"),
        (lambda d: d["runs"][0].update(epochs=2), "epochs do not match its history"),
        (lambda d: d["runs"][0]["history"][1].update(epoch=7), "not numbered 1, 2, 3"),
        (lambda d: d["runs"][0].update(label="x" * 101), "a run's name is not a text"),
        (lambda d: d["runs"][0].update(settings={"a": [1, 2]}), "settings are not a few named values"),
        (lambda d: d.update(target={"error": 3, "on": "validation"}), "target is not an error between 0 and 1"),
        (lambda d: d.update(runs=d["runs"] * 200), "holds 800 runs"),
    ],
)
def test_a_damaged_saved_experiment_is_refused_with_a_sentence(damage, says):
    from playground.training.report import result_of

    saved = _saved_experiment().to_json()
    damage(saved)
    with pytest.raises(ValueError, match="The saved experiment is damaged") as caught:
        result_of(saved)
    assert says in str(caught.value)
