"""The class board over SQLite: a class, its learners, what they publish, one pooled table per experiment whose
numbers are the class's seeds recomputed here, bounds, a restart, and forty publishes in the same second."""

from __future__ import annotations

import dataclasses
import statistics
import threading

import pytest

from playground.config import get_limits
from playground.sharing.board import Board, schema_version
from playground.training.report import RunOutcome, Target, summarise

KERNEL = {"name": "laplacian", "kernel": [[0, 1, 0], [1, -4, 1], [0, 1, 0]]}


def _result(seeds: dict[str, list[float]], start_seed: int = 0) -> dict:
    """An experiment's JSON: for each run label, one seed per validation accuracy."""
    from playground.training.experiments import PRESETS

    outcomes = []
    for label, accuracies in seeds.items():
        for n, accuracy in enumerate(accuracies):
            history = [{"epoch": 1, "loss": 1.0, "accuracy": accuracy, "val_accuracy": accuracy, "seconds": 1.0}]
            outcomes.append(RunOutcome(label=label, settings={"activation": label.lower()}, seed=start_seed + n,
                                       val_accuracy=accuracy, top5_error=None, train_accuracy=accuracy, epochs=1,
                                       epochs_to_target=None, seconds_to_target=None, seconds=1.0, parameters=10,
                                       history=history, classes=3))  # fmt: skip
    preset = PRESETS["relu-vs-tanh"]
    return summarise(preset, list(seeds), outcomes, Target(0.3), dataset_name="five-flowers", planned=len(outcomes),
                     capped=False, seconds=1.0).to_json()  # fmt: skip


@pytest.fixture(scope="module")
def postgres():
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """Each test runs against SQLite and against a real PostgreSQL server (one per module, emptied per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'board.sqlite'}"
        return
    url = request.getfixturevalue("postgres")
    yield url
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS entries, learners, classes, alembic_version CASCADE"))
    engine.dispose()


@pytest.fixture
def board(url):
    board = Board(url)
    yield board
    board.engine.dispose()


def test_three_learners_publish_the_same_preset_and_the_board_pools_their_seeds(board):
    made = board.create_class("Period 3 — CNNs")
    assert len(made.code) == 6 and len(made.teacher_key) >= 32  # 24 random bytes: 192 bits
    mine = {
        "ada": {"ReLU": [0.80, 0.70], "tanh": [0.60, 0.65]},
        "bo": {"ReLU": [0.75], "tanh": [0.50]},
        "cy": {"ReLU": [0.90, 0.85, 0.60], "tanh": [0.55, 0.70, 0.40]},
    }
    for learner, seeds in mine.items():
        assert board.join(made.code.lower(), learner) == learner  # codes are read case-blind
        board.publish(made.code, learner, "experiment", _result(seeds))
    shown = board.board(made.code)
    assert shown["learners"] == 3 and [e["learner"] for e in shown["entries"]] == ["ada", "bo", "cy"]
    (table,) = shown["pooled"]
    assert table["learners"] == 3 and table["seeds"] == 12 and table["experiment"] == "ReLU vs tanh"
    for row, label in zip(table["table"], ("ReLU", "tanh"), strict=True):
        values = [a for seeds in mine.values() for a in seeds[label]]  # recomputed here from the learners' numbers
        assert row["run"] == label and row["seeds"] == len(values)
        assert row["val. accuracy"] == f"{statistics.mean(values):.1%} ± {statistics.stdev(values):.1%}"
    assert "p = " in table["table"][1]["against the first run"]  # the noise verdict over all twelve seeds


def test_different_settings_are_pooled_apart(board):
    made = board.create_class("c")
    board.join(made.code, "ada")
    board.publish(made.code, "ada", "experiment", _result({"ReLU": [0.8], "tanh": [0.6]}))
    board.publish(made.code, "ada", "experiment", _result({"ReLU": [0.7], "sigmoid": [0.4]}))
    assert sorted(t["seeds"] for t in board.board(made.code)["pooled"]) == [2, 2]


def test_the_board_survives_a_restart_and_the_schema_is_versioned(url):
    first = Board(url)
    made = first.create_class("c")
    first.join(made.code, "ada")
    first.publish(made.code, "ada", "kernel", KERNEL)
    first.engine.dispose()
    again = Board(url)  # a new process would do the same: open, migrate (nothing to do), read
    assert schema_version(again.engine) == "0001"
    assert again.board(made.code)["entries"][0]["result"]["kernel"][1] == [1, -4, 1]
    again.engine.dispose()


def test_names_are_data_and_bounds_hold(url):
    board = Board(
        url, limits=dataclasses.replace(get_limits(), board_entries_per_learner=2, board_publishes_per_minute=100)
    )
    made = board.create_class("'); DROP TABLE classes; --")
    board.join(made.code, "Robert'); DROP TABLE learners;--")
    assert board.board(made.code)["class"] == "'); DROP TABLE classes; --"
    for _ in range(2):
        board.publish(made.code, "Robert'); DROP TABLE learners;--", "kernel", KERNEL)
    with pytest.raises(ValueError, match="the most one learner may"):
        board.publish(made.code, "Robert'); DROP TABLE learners;--", "kernel", KERNEL)
    with pytest.raises(ValueError, match="has not joined this class"):
        board.publish(made.code, "mallory", "kernel", KERNEL)
    board.join(made.code, "big")
    with pytest.raises(ValueError, match="rows of finite numbers"):
        board.publish(made.code, "big", "kernel", {"kernel": [[1, float("nan")]]})
    with pytest.raises(ValueError, match="rows of finite numbers"):
        board.publish(made.code, "big", "kernel", {"kernel": [[1] * 12] * 12})
    with pytest.raises(ValueError, match="not a training's numbers"):
        board.publish(made.code, "big", "training", {"val_accuracy": 2})
    with pytest.raises(ValueError, match="not 'pickle'"):
        board.publish(made.code, "big", "pickle", {})
    with pytest.raises(ValueError, match="The saved experiment is damaged"):
        board.publish(made.code, "big", "experiment", {"runs": [{"label": "x"}]})
    with pytest.raises(ValueError, match="1 to 60 printable characters"):
        board.join(made.code, "x" * 61)
    with pytest.raises(ValueError, match="no class with the code"):
        board.join("ZZZZZZ", "ada")


def test_publishes_per_minute_are_bounded(url):
    board = Board(url, limits=dataclasses.replace(get_limits(), board_publishes_per_minute=3))
    made = board.create_class("c")
    board.join(made.code, "ada")
    for _ in range(3):
        board.publish(made.code, "ada", "kernel", KERNEL)
    with pytest.raises(ValueError, match="At most 3 results a minute"):
        board.publish(made.code, "ada", "kernel", KERNEL)


def test_the_teacher_key_hides_entries_and_closes_the_class(board):
    made = board.create_class("c")
    board.join(made.code, "ada")
    entry = board.publish(made.code, "ada", "kernel", KERNEL)
    with pytest.raises(ValueError, match="does not open this class"):
        wrong = made.teacher_key[:-1] + ("x" if made.teacher_key[-1] != "x" else "y")  # one character off
        board.hide(made.code, wrong, entry)
    board.hide(made.code, made.teacher_key, entry)
    assert board.board(made.code)["entries"] == []
    board.close_class(made.code, made.teacher_key)
    with pytest.raises(ValueError, match="has been closed by its teacher"):
        board.board(made.code)


def test_an_expired_class_says_so(board):
    import datetime as dt

    import sqlalchemy as sa

    made = board.create_class("old")
    with board.engine.begin() as connection:
        connection.execute(sa.text("UPDATE classes SET expires = :t"), {"t": dt.datetime(2020, 1, 2, tzinfo=dt.UTC)})
    with pytest.raises(ValueError, match="ended on 2020-01-02"):
        board.join(made.code, "ada")


def test_forty_learners_publishing_in_the_same_second_lose_nothing(board):
    made = board.create_class("c")
    names = [f"learner {i}" for i in range(40)]
    for name in names:
        board.join(made.code, name)
    start, failures = threading.Barrier(40), []

    def publish(name):
        start.wait()
        try:
            board.publish(made.code, name, "experiment", _result({"ReLU": [0.8], "tanh": [0.6]}))
        except Exception as error:  # noqa: BLE001 (the test counts every kind of failure)
            failures.append(error)

    threads = [threading.Thread(target=publish, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    shown = board.board(made.code)
    assert len(shown["entries"]) == 40 and shown["pooled"][0]["seeds"] == 80


def test_two_servers_on_one_postgresql_show_the_same_board(postgres):
    """Two app servers behind a load balancer each open their own Board on the same database."""
    one, two = Board(postgres), Board(postgres)
    try:
        made = one.create_class("shared")
        two.join(made.code, "ada")
        one.join(made.code, "bo")
        two.publish(made.code, "ada", "experiment", _result({"ReLU": [0.8], "tanh": [0.6]}))
        one.publish(made.code, "bo", "experiment", _result({"ReLU": [0.7], "tanh": [0.5]}))
        assert one.board(made.code) == two.board(made.code)
        assert one.board(made.code)["pooled"][0]["learners"] == 2
        one.close_class(made.code, made.teacher_key)
        with pytest.raises(ValueError, match="closed by its teacher"):
            two.publish(made.code, "ada", "kernel", KERNEL)
    finally:
        import sqlalchemy as sa

        with one.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS entries, learners, classes, alembic_version CASCADE"))
        one.engine.dispose()
        two.engine.dispose()


def test_an_entry_past_its_size_is_refused(url):
    board = Board(url, limits=dataclasses.replace(get_limits(), board_entry_bytes=1_000))
    made = board.create_class("c")
    board.join(made.code, "ada")
    with pytest.raises(ValueError, match="too large to publish"):
        board.publish(made.code, "ada", "experiment", _result({"ReLU": [0.8] * 5, "tanh": [0.6] * 5}))
    board.engine.dispose()


def test_fine_tuning_accuracies_spread_by_setting_and_the_teachers_download(board):
    from tests.test_project import _training

    made = board.create_class("c")
    for learner, accuracy in (("ada", 0.6), ("bo", 0.8), ("cy", 0.7)):
        board.join(made.code, learner)
        board.publish(made.code, learner, "training", {**_training(), "val_accuracy": accuracy})
    board.publish(made.code, "ada", "kernel", KERNEL)
    board.publish(made.code, "bo", "experiment", _result({"ReLU": [0.8, 0.7], "tanh": [0.6, 0.5]}))
    (spread,) = board.board(made.code)["trainings"]
    assert spread["trainings"] == 3 and spread["mean"] == pytest.approx(0.7)
    assert spread["spread"] == pytest.approx(statistics.stdev([0.6, 0.8, 0.7]))
    assert (spread["lowest"], spread["highest"]) == (0.6, 0.8)
    with pytest.raises(ValueError, match="does not open this class"):
        board.export(made.code, "guess", "csv")
    import csv
    import io
    import json

    rows = list(csv.DictReader(io.StringIO(board.export(made.code, made.teacher_key, "csv"))))
    assert [r["kind"] for r in rows] == ["training"] * 3 + ["kernel"] + ["experiment"] * 4
    assert [float(r["val_accuracy"]) for r in rows if r["kind"] == "experiment"] == [0.8, 0.7, 0.6, 0.5]
    assert json.loads(board.export(made.code, made.teacher_key, "json")) == board.board(made.code)


def test_the_boards_version_changes_with_every_publish_hide_and_join(board):
    """A live page redraws only when the version changed: it must change whenever what the board shows does."""
    made = board.create_class("c")
    seen = [board.version(made.code)]
    board.join(made.code, "ada")
    seen.append(board.version(made.code))
    entry = board.publish(made.code, "ada", "kernel", KERNEL)
    seen.append(board.version(made.code))
    assert board.version(made.code) == seen[-1]  # nothing changed: the same version
    board.hide(made.code, made.teacher_key, entry)
    seen.append(board.version(made.code))
    board.publish(made.code, "ada", "kernel", KERNEL)
    seen.append(board.version(made.code))
    assert len(set(seen)) == len(seen), seen
    board.close_class(made.code, made.teacher_key)
    with pytest.raises(ValueError, match="closed by its teacher"):
        board.version(made.code)
    # The teacher's download outlives the class; a wrong key still opens nothing.
    assert len(board.export(made.code, made.teacher_key, "json")) > 0
    with pytest.raises(ValueError, match="does not open this class"):
        board.export(made.code, "guess", "json")


def test_a_typed_kernel_with_a_classic_kernels_numbers_is_named_after_it(board):
    from playground import kernels as K

    made = board.create_class("c")
    board.join(made.code, "ada")
    board.publish(made.code, "ada", "kernel", {"name": "custom", "kernel": K.KERNELS["sobel_x"].weights.tolist()})
    board.publish(made.code, "ada", "kernel", {"name": "custom", "kernel": [[1, 2], [3, 4]]})
    names = [e["result"]["name"] for e in board.board(made.code)["entries"]]
    assert names == ["sobel_x", "custom"]


def test_runs_at_chance_are_counted_over_the_class_not_told_seed_by_seed(board):
    """Each learner's run has its own "stayed at chance" sentence; pooled, seed numbers repeat across learners,
    so the board says how many of the class's runs did instead."""
    import dataclasses

    from playground.training.report import outcome_of

    made = board.create_class("c")
    for learner in ("ada", "bo"):
        board.join(made.code, learner)
        result = _result({"ReLU": [0.34, 0.9], "tanh": [0.8, 0.7]})
        runs = [outcome_of(r) for r in result["runs"]]
        runs[0] = dataclasses.replace(runs[0], at_chance="It guessed one class for every image.")
        result["runs"] = [run.record() for run in runs]
        board.publish(made.code, learner, "experiment", result)
    (table,) = board.board(made.code)["pooled"]
    assert "ReLU: 2 of 4 runs stayed at chance" in " ".join(table["notes"])
    assert not any("seed" in note and "guessed" in note for note in table["notes"])


def test_a_database_that_cannot_be_reached_says_so_in_a_sentence(tmp_path):
    import shutil

    folder = tmp_path / "db"
    folder.mkdir()
    board = Board(f"sqlite:///{folder / 'board.sqlite'}")
    made = board.create_class("c")
    board.engine.dispose()
    shutil.rmtree(folder)  # the database is gone: every call must say so, not raise a driver's error
    for call in (lambda: board.board(made.code), lambda: board.version(made.code), lambda: board.join(made.code, "a")):
        with pytest.raises(ValueError, match="cannot be reached just now"):
            call()
    with pytest.raises(ValueError, match="cannot be reached just now"):
        Board("postgresql+psycopg://nobody@127.0.0.1:1/none")  # a server that is not there


def test_the_same_name_joining_from_two_pages_at_once_is_one_learner(board):
    made = board.create_class("c")
    start, said = threading.Barrier(8), []

    def join():
        start.wait()
        said.append(board.join(made.code, "ada"))

    threads = [threading.Thread(target=join) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert said == ["ada"] * 8 and board.board(made.code)["learners"] == 1
