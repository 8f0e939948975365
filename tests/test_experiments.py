"""Experiments: presets, composed runs, the plan, a tiny experiment end to end, its table, files and CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from scipy import stats

from playground import models
from playground.config import Limits
from playground.data import datasets as data
from playground.training import experiments
from playground.training import finetune as engine
from playground.training.experiments import (
    PRESETS,
    ExperimentConfig,
    Queued,
    RunDone,
    Step,
    plan,
    run_experiment,
    vary,
)
from playground.training.finetune import FinetuneConfig
from playground.training.report import ExperimentResult, Overlay, Target, verdict, write_results

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(image_size=64, epochs=2, batch_size=16)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(scope="module")
def stripes():
    return data.synthetic(per_class=8, size=64)


def test_the_presets_are_the_issues_seven_each_with_their_number():
    assert list(PRESETS) == [
        "ladder",
        "relu-vs-tanh",
        "lrn",
        "overlapping-pooling",
        "dropout",
        "pca-colour",
        "drop-conv",
    ]
    for name, recipe in PRESETS.items():
        assert recipe.theirs.startswith(("The paper", "The lecture")) and recipe.question and len(recipe.runs) >= 2
        if name != "ladder":  # an ablation: every run changes the same one setting, to a different value
            keys = {tuple(run.settings) for run in recipe.runs}
            assert len(keys) == 1 and len(next(iter(keys))) == 1
            assert len({str(run.settings) for run in recipe.runs}) == len(recipe.runs)
        for scale in ("cpu", "gpu"):  # every preset can be trained as it stands, at both sizes
            planned = plan(ExperimentConfig(preset=name, scale=scale))
            assert [p.run for p in planned] == list(ExperimentConfig(preset=name, scale=scale).arms())
    full = plan(ExperimentConfig(preset="lrn", scale="gpu"))[0].config
    assert full.image_size == 224 and plan(ExperimentConfig(preset="lrn", scale="cpu"))[0].config.image_size == 64
    assert ExperimentConfig(preset="relu-vs-tanh", scale="cpu").limit() == 2000
    assert ExperimentConfig(preset="ladder", scale="cpu").limit() == 1000


def test_composed_runs_differ_in_one_setting():
    runs = vary("activation", "relu, tanh , sigmoid")
    assert [r.label for r in runs] == ["activation=relu", "activation=tanh", "activation=sigmoid"]
    assert [r.settings for r in runs] == [{"activation": "relu"}, {"activation": "tanh"}, {"activation": "sigmoid"}]
    assert [r.settings["drop_conv"] for r in vary("drop_conv", "none,2,4")] == [None, 2, 4]
    assert [r.settings["pca_colour"] for r in vary("pca_colour", "on,off")] == [True, False]
    assert [r.settings["lr"] for r in vary("lr", [0.1, 0.01])] == [0.1, 0.01]
    for setting, values, message in (
        ("colour", "a,b", "not a setting an experiment can vary"),
        ("activation", "relu", "two or more different values"),
        ("activation", "relu,relu", "two or more different values"),
        ("dropout", "0.5,lots", "'lots' is not a value dropout can take"),
        ("batch_norm", "yes,maybe", "'maybe' is not a value batch_norm can take"),
    ):
        with pytest.raises(ValueError, match=message):
            vary(setting, values)


def test_the_plan_shares_one_split_and_the_seeds():
    planned = plan(ExperimentConfig(preset="lrn", seeds=3, scale="cpu", split_seed=4))
    assert [(p.run.label, p.seed) for p in planned] == [
        (label, seed) for seed in range(3) for label in ("with LRN", "without LRN")
    ]  # every run with seed 0 first, then the repeats
    assert {p.config.split_seed for p in planned} == {4} and [p.config.seed for p in planned] == [0, 0, 1, 1, 2, 2]
    assert [p.config.lrn for p in planned[:2]] == [True, False]
    assert all(p.config.model == "alexnet_compact" and p.config.mode == "full" for p in planned)


def test_bad_combinations_get_a_sentence_naming_the_run():
    with pytest.raises(ValueError, match=r"Run 'drop_conv=3': Removing conv3 from a pretrained AlexNet"):
        plan(ExperimentConfig(preset="ladder", runs=vary("drop_conv", "none, 3"), scale="cpu"))
    with pytest.raises(ValueError, match="Run 'linear': The linear baseline has no convolutional layers"):
        plan(ExperimentConfig(preset="ladder", base={"lrn": True}, scale="cpu"))
    with pytest.raises(ValueError, match="Run 'activation=relu': .*unexpected keyword argument 'colour'"):
        plan(ExperimentConfig(preset="lrn", runs=vary("activation", "relu,tanh"), base={"colour": 1}))
    with pytest.raises(ValueError, match="Seeds must be a whole number from 1 to 10"):
        plan(ExperimentConfig(seeds=0))
    with pytest.raises(ValueError, match="Unknown experiment 'vgg'"):
        plan(ExperimentConfig(preset="vgg"))
    with pytest.raises(ValueError, match="4 runs with 7 seeds make 28 trainings; the limit is 24"):
        plan(ExperimentConfig(preset="drop-conv", seeds=7))
    with pytest.raises(ValueError, match="The target is an error between 0 and 1"):
        Target(1.5).check()


def _records(config, dataset):
    return list(run_experiment(config, dataset))


def test_a_tiny_experiment_end_to_end(stripes, tmp_path):
    config = ExperimentConfig(preset="relu-vs-tanh", base=TINY, seeds=2, target=Target(0.99, "training"))
    records = _records(config, stripes)
    assert isinstance(records[0], Queued) and records[0].runs == (("ReLU", 0), ("tanh", 0), ("ReLU", 1), ("tanh", 1))
    done = [r for r in records if isinstance(r, RunDone)]
    assert [(d.outcome.label, d.outcome.seed) for d in done] == list(records[0].runs)
    assert all(isinstance(r, Step) for r in records[1:-1] if not isinstance(r, RunDone))
    result = records[-1]
    assert isinstance(result, ExperimentResult) and result.planned == 4 and len(result.outcomes) == 4
    for item in done:  # each number is what its own finished run says
        run, result_of_run = item.outcome, item.result
        assert run.val_accuracy == result_of_run.val_accuracy and run.epochs == 2
        expected = next(h["epoch"] for h in result_of_run.history if 1 - h["accuracy"] <= 0.99)
        assert run.epochs_to_target == expected
        assert run.parameters == sum(p.numel() for p in result_of_run.model().parameters())
        activation = torch.nn.Tanh if run.label == "tanh" else torch.nn.ReLU
        assert any(isinstance(m, activation) for m in result_of_run.model().modules())
    relu, tanh = result.rows
    accuracies = [o.val_accuracy for o in result.outcomes if o.label == "tanh"]
    assert tanh.val_accuracy == pytest.approx(statistics.mean(accuracies))
    assert tanh.spread == pytest.approx(statistics.stdev(accuracies))
    assert relu.verdict == "reference" and "points" in tanh.verdict
    assert tanh.settings == "activation=tanh" and relu.cells()["seeds"] == 2
    assert any("Top-5 error needs more than five classes" in note for note in result.notes)


def test_the_results_files(stripes, tmp_path):
    config = ExperimentConfig(preset="lrn", base={**TINY, "epochs": 1}, seeds=1)
    result = _records(config, stripes)[-1]
    paths = write_results(result, tmp_path / "out")
    assert [p.name for p in paths] == ["results.json", "results.csv", "summary.csv", "curves.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["theirs"].startswith("The paper") and saved["target"] == {"error": 0.3, "on": "validation"}
    first = saved["runs"][0]
    assert {"label", "settings", "seed", "val_accuracy", "top5_error", "epochs_to_target", "seconds", "history"} <= set(
        first
    )
    assert first["settings"] == {"lrn": True} and first["top5_error"] is None and len(first["history"]) == 1
    rows = list(csv.DictReader(paths[1].open()))
    assert [r["label"] for r in rows] == ["with LRN", "without LRN"] and rows[1]["settings"] == "lrn=False"
    assert float(rows[0]["val_accuracy"]) == pytest.approx(result.outcomes[0].val_accuracy)
    summary = list(csv.DictReader(paths[2].open()))
    assert summary[0]["run"] == "with LRN" and "one seed" in summary[1]["against the first run"]
    picture = Image.open(paths[3])
    assert picture.size == (1000, 360)


def test_a_target_no_run_reaches_gets_a_sentence(stripes):
    config = ExperimentConfig(preset="lrn", base={**TINY, "epochs": 1}, target=Target(0.001))
    result = _records(config, stripes)[-1]
    assert any(
        note.startswith("No run reached the target (0% validation error) within 1 epoch(s)") for note in result.notes
    )
    assert all(row.epochs_to_target == "not reached" and row.seconds_to_target is None for row in result.rows)


def test_closing_the_experiment_stops_the_run_in_progress(stripes, monkeypatch):
    closed = []
    original = engine.finetune

    def watched(config, dataset):
        generator = original(config, dataset)
        try:
            yield from generator
        except GeneratorExit:
            closed.append(config.activation)
            raise

    monkeypatch.setattr(experiments, "finetune", watched)
    run = run_experiment(ExperimentConfig(preset="relu-vs-tanh", base={**TINY, "epochs": 20}), stripes)
    assert isinstance(next(run), Queued) and isinstance(next(run), Step)
    run.close()  # what Stop does
    assert closed == ["relu"]
    with pytest.raises(StopIteration):
        next(run)


def test_the_time_cap_covers_the_whole_experiment(stripes, monkeypatch):
    config = ExperimentConfig(preset="drop-conv", base={**TINY, "epochs": 1}, max_seconds=50)
    clock = iter([0, 0, 100, 100])  # the start, before run 1 (50 s left), before run 2: past the cap
    monkeypatch.setattr(experiments.time, "monotonic", lambda: next(clock, 100))
    result = _records(config, stripes)[-1]
    assert [o.label for o in result.outcomes] == ["all five convs"] and not result.outcomes[0].stopped_at_cap
    assert result.notes[0].startswith("The time cap was reached: 1 of 4 runs finished")
    monkeypatch.setattr(experiments.time, "monotonic", lambda: 0.0)  # the run starts with a hair of time left
    inside = _records(ExperimentConfig(preset="drop-conv", base={**TINY, "epochs": 3}, max_seconds=1e-9), stripes)[-1]
    assert len(inside.outcomes) == 1 and inside.outcomes[0].stopped_at_cap  # it stopped at the cap itself
    assert inside.outcomes[0].epochs == 1 and "1 of 4 runs finished" in inside.notes[0]


def test_the_noise_verdict_is_welchs_test():
    near = verdict([0.50, 0.53, 0.51], [0.52, 0.50, 0.51])
    a, b = [0.80, 0.82, 0.81], [0.50, 0.52, 0.51]
    # Welch's t by hand: the difference over the combined standard error, Welch-Satterthwaite degrees of freedom.
    va, vb = statistics.variance(a) / 3, statistics.variance(b) / 3
    t = (statistics.mean(a) - statistics.mean(b)) / (va + vb) ** 0.5
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    p = 2 * stats.t.sf(abs(t), df)
    assert near.startswith("+0.3 points: inside the noise") and "no difference can be claimed" in near
    assert verdict(a, b) == f"+30.0 points: beyond the noise (p = {p:.3f})"
    assert "one seed, so the noise is unknown" in verdict([0.6], [0.5])
    assert verdict([0.5, 0.5], [0.5, 0.5]) == "no difference on any seed"


def test_the_overlay_follows_progress_and_settles_on_history(stripes):
    config = ExperimentConfig(preset="relu-vs-tanh", base={**TINY, "epochs": 2})
    records = _records(config, stripes)
    overlay = Overlay(["ReLU", "tanh"], Target(0.25, "training"))
    for record in records:
        if isinstance(record, Step):
            overlay.add(record.label, record.seed, record.progress)
    assert [x for x, _ in overlay.training[("ReLU", 0)]] == [1, 2] and ("tanh", 0) not in overlay.live
    assert [x for x, _ in overlay.validation[("ReLU", 0)]] == [1]  # epoch 2's arrives with the result
    for record in records:
        if isinstance(record, RunDone):
            overlay.settle(record.outcome)
    history = records[-1].outcomes[0].history
    assert overlay.validation[("ReLU", 0)] == [(h["epoch"], 1 - h["val_accuracy"]) for h in history]
    assert overlay.image().size == (1000, 360)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path):
    return dict(os.environ, PLAYGROUND_OFFLINE="1", TORCH_HOME=str(tmp_path / "torch-home"), PYTHONPATH=str(ROOT))


def test_the_command_line(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "playground.training.experiments", "--preset", "relu-vs-tanh", "--data", "synthetic",
               "--seeds", "2", "--epochs", "1", "--limit", "60", "--scale", "cpu", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    assert [(r["label"], r["seed"]) for r in saved["runs"]] == [("ReLU", 0), ("tanh", 0), ("ReLU", 1), ("tanh", 1)]
    assert {r["settings"]["activation"] for r in saved["runs"]} == {"relu", "tanh"}
    assert (out / "results.csv").is_file() and (out / "curves.png").is_file()
    assert "Theirs: The paper" in done.stderr and "ReLU (seed 1): validation accuracy" in done.stderr
    for extra, message in (
        (["--vary", "activation"], "--vary and --values go together"),
        (["--vary", "dropout", "--values", "0.5,x"], "'x' is not a value dropout can take"),
        (["--data", str(tmp_path / "missing.zip")], "neither a dataset name"),
    ):
        bad = [*command[:3], "--data", "synthetic", "--out", str(out), *extra]
        failed = subprocess.run(bad, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert failed.returncode == 2 and message in failed.stderr, failed.stderr[-2000:]


def test_the_command_line_under_torchrun(tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               "-m", "playground.training.experiments", "--preset", "dropout", "--data", "synthetic", "--epochs", "1",
               "--limit", "60", "--device", "cpu", "--scale", "cpu", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in saved["runs"]] == ["dropout 0.5", "no dropout"]
    assert saved["summary"][1]["run"] == "no dropout"


README_LINES = (  # the README's examples of python -m playground.training.experiments
    "--preset relu-vs-tanh --data fashion-mnist --seeds 3 --out runs/relu",
    "--preset ladder --data flowers/ --out runs/ladder",
    "--preset lrn --data photos.zip --vary dropout --values 0.5,0.2,0 --out runs/mine",
    "--preset dropout --data synthetic --device cpu --out runs/ddp",
)


def test_the_readme_command_lines_ask_for_their_experiments():
    relu, ladder, mine, ddp = (
        experiments.config_from_args(experiments.parse_args(line.split())) for line in README_LINES
    )
    assert (relu.preset, relu.seeds, relu.base, relu.runs) == ("relu-vs-tanh", 3, {}, ())
    assert ladder.preset == "ladder" and ddp.device == "cpu" and ddp.base == {}
    assert [arm.settings for arm in mine.runs] == [{"dropout": 0.5}, {"dropout": 0.2}, {"dropout": 0.0}]
    line = "--data synthetic --out o --epochs 3 --image-size 96 --no-pretrained --no-augment --max-seconds 60"
    overriding = experiments.config_from_args(experiments.parse_args(line.split()))
    assert overriding.base == dict(epochs=3, image_size=96, pretrained=False, crop=False, flip=False)
    assert overriding.max_seconds == 60  # the whole experiment's cap, not each run's


@dataclasses.dataclass(frozen=True)
class _Wider(FinetuneConfig):
    warmup_epochs: int = 0  # a field added after the command lines were written
    label_smoothing: bool = False


def test_a_new_config_field_appears_on_both_command_lines():
    from playground.training import train

    args = train.training_parser(_Wider).parse_args(
        ["--data", "d", "--out", "o", "--warmup-epochs", "3", "--label-smoothing"]
    )
    assert _Wider(**train.config_values(args, _Wider)) == _Wider(warmup_epochs=3, label_smoothing=True)
    args = experiments.experiment_parser(_Wider).parse_args(["--data", "d", "--out", "o", "--warmup-epochs", "2"])
    given = train.config_values(args, _Wider, leave_out=experiments.EXPERIMENT_SETS)
    assert given["warmup_epochs"] == 2 and given["label_smoothing"] is None  # not given: the preset's
    assert "seed" not in given and "device" not in given  # the experiment sets those itself


def test_the_run_limit_is_a_limit(monkeypatch):
    monkeypatch.setattr(experiments, "get_limits", lambda: Limits(experiment_runs=3))
    with pytest.raises(ValueError, match="the limit is 3"):
        plan(ExperimentConfig(preset="lrn", seeds=2))
    assert models.spec("alexnet_compact")  # (the registry the presets name)


def test_offline_the_ladder_names_its_transfer_run_for_what_it_is(tmp_path):
    config = ExperimentConfig(preset="ladder", scale="cpu")
    transfer = plan(config)[-1]
    assert transfer.run.label == "AlexNet, random features (no ImageNet weights here)"
    assert not transfer.config.pretrained  # it never waits for a download it cannot get
    assert [label for label, _ in _queued(config)] == [arm.label for arm in config.arms()]
    # With the weights at hand, the same run is the transfer the lecture means.
    path = engine.checkpoints.imagenet_weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    transfer = plan(config)[-1]
    assert transfer.run.label == "AlexNet, ImageNet transfer" and transfer.config.pretrained


def _queued(config):
    return next(iter(run_experiment(config, data.synthetic(per_class=2, size=64)))).runs


def test_the_ladders_scratch_run_learns_with_the_from_scratch_recipe():
    by_label = {p.run.label: p.config for p in plan(ExperimentConfig(preset="ladder", scale="cpu"))}
    scratch = by_label["compact AlexNet, from scratch"]
    assert scratch.lr == engine.SCRATCH_RECIPE["lr"] < by_label["linear"].lr and scratch.batch_norm
