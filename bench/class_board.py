"""The class board with a class of forty: forty publishes at once, then what a live board costs per tick.

Forty learners each publish one ReLU-vs-tanh experiment (two runs, three seeds, ten epochs of history), one
training and one kernel. Timed: the forty experiment publishes started in the same instant (threads), the
board's version check (what every watching page asks every 5 s), the board as JSON (``/board``), and the
tab's drawing of it (pooled table, overlaid curves, kernels on the cup), which happens once per change.
SQLite in a temporary folder; PostgreSQL too when ``PLAYGROUND_BENCH_DATABASE_URL`` names an empty database.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
import threading
import time

from bench.common import median_ms, report
from playground.config import get_limits
from playground.sharing.board import Board
from playground.training.experiments import PRESETS
from playground.training.report import RunOutcome, Target, summarise

LEARNERS = 40


def _experiment(rng: random.Random) -> dict:
    outcomes = []
    for label in ("ReLU", "tanh"):
        for seed in range(3):
            history = [{"epoch": e, "loss": 1 / e, "accuracy": min(1, 0.3 + 0.07 * e), "seconds": 2.0,
                        "val_accuracy": min(1, 0.3 + 0.06 * e + rng.uniform(-0.05, 0.05))} for e in range(1, 11)]  # fmt: skip
            outcomes.append(RunOutcome(label=label, settings={"activation": label.lower()}, seed=seed,
                                       val_accuracy=history[-1]["val_accuracy"], top5_error=None,
                                       train_accuracy=history[-1]["accuracy"], epochs=10, epochs_to_target=None,
                                       seconds_to_target=None, seconds=20.0, parameters=2_500_000, history=history,
                                       classes=5))  # fmt: skip
    return summarise(PRESETS["relu-vs-tanh"], ["ReLU", "tanh"], outcomes, Target(0.3), dataset_name="five-flowers",
                     planned=6, capped=False, seconds=120.0).to_json()  # fmt: skip


def _training(rng: random.Random) -> dict:
    from playground.sharing.project import training_summary

    accuracy = rng.uniform(0.7, 0.9)
    history = [
        {"epoch": e, "loss": 1 / e, "accuracy": accuracy, "val_accuracy": accuracy, "seconds": 1.0} for e in (1, 2)
    ]
    return training_summary(dataset="five-flowers", variant="alexnet", mode="head", classes=list("abcde"),
                            history=history, val_accuracy=accuracy, per_class_accuracy=[accuracy] * 5,
                            confusion=[[10 if i == j else 0 for j in range(5)] for i in range(5)],
                            images_per_second=100.0, seconds=2.0)  # fmt: skip


def _one(url: str, name: str) -> None:
    from ui.tabs import class_board as tab

    board = Board(url, limits=dataclasses.replace(get_limits(), board_publishes_per_minute=100))
    made = board.create_class("bench")
    rng = random.Random(0)
    names = [f"learner {i}" for i in range(LEARNERS)]
    for learner in names:
        board.join(made.code, learner)
    experiments = [_experiment(rng) for _ in names]
    start, failures = threading.Barrier(LEARNERS), []

    def publish(learner, result):
        start.wait()
        try:
            board.publish(made.code, learner, "experiment", result)
        except Exception as error:  # noqa: BLE001 (counted, reported)
            failures.append(error)

    threads = [threading.Thread(target=publish, args=pair) for pair in zip(names, experiments, strict=True)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(f"{name}: 40 experiment publishes at once, all of them ({len(failures)} lost)",
           (time.perf_counter() - began) * 1000)  # fmt: skip
    kernel = {"name": "laplacian", "kernel": [[0, 1, 0], [1, -4, 1], [0, 1, 0]]}
    for learner in names:
        board.publish(made.code, learner, "training", _training(rng))
        board.publish(made.code, learner, "kernel", kernel)
    report(f"{name}: version check (each watching page, every 5 s)", median_ms(lambda: board.version(made.code)))
    report(f"{name}: /board as JSON, 120 entries, 240 runs pooled", median_ms(lambda: board.board(made.code), repeat=5))

    from ui import class_board

    class_board.board.cache_clear()
    os.environ["PLAYGROUND_DATABASE_URL"] = url
    try:

        def drawn():
            tab._drawn.cache_clear()
            tab._kernel_picture.cache_clear()
            return tab.show(made.code)

        report(f"{name}: the tab draws the board (once per change)", median_ms(drawn, repeat=3, warmup=1))
        import gradio as gr

        shown = tab.show(made.code)
        kernels, curves = gr.Gallery(format="png"), gr.Gallery(format="png")

        def sent():  # what Gradio does for each page the change reaches: the pictures' files into its cache
            kernels.postprocess(shown["kernels"]["value"])
            curves.postprocess(shown["curves"]["value"])

        report(f"{name}: each watching page's share of a change (pictures handed over)", median_ms(sent))
    finally:
        os.environ.pop("PLAYGROUND_DATABASE_URL")
        class_board.board().engine.dispose()
        class_board.board.cache_clear()
    board.engine.dispose()


def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        _one(f"sqlite:///{folder}/board.sqlite", "SQLite")
    if os.environ.get("PLAYGROUND_BENCH_DATABASE_URL"):
        _one(os.environ["PLAYGROUND_BENCH_DATABASE_URL"], "PostgreSQL")


if __name__ == "__main__":
    run()
