"""Save my work on the server's side: a session's models (with their options), last training and experiment go
into the file, and opening it gives another session the same, with the Train tab's tables from the numbers."""

from __future__ import annotations

import torch

from playground.models import build
from playground.serving import jobs
from playground.weights.checkpoints import ModelInfo
from tests.test_project import _training
from tests.test_report import _saved_experiment
from ui import my_work
from ui.state import JOBS, STORE


def test_a_sessions_work_saved_and_opened_in_another_session(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    model = build("alexnet_compact", num_classes=2, generator=torch.Generator().manual_seed(0), activation="tanh")
    info = ModelInfo(
        "alexnet_compact", "file", "trained here on cups", ("cup", "mug"), options=(("activation", "tanh"),)
    )
    key = STORE.add("alice", model, info)
    JOBS.keep("alice", jobs.TrainingRun(None, {}, jobs.new_run_folder(), _training()), "train")
    JOBS.keep("alice", jobs.ExperimentRun(_saved_experiment(), {}, {}, jobs.new_run_folder()), "experiment")
    try:
        path, said = my_work.save("alice", chosen=key, views={"lab": "tab=lab&stride=3"})
        assert said.startswith("Saved 1 model, your last training's numbers, your experiment (4 runs, 0 with")
        work, chosen, opened = my_work.restore("bob", path, "127.0.0.1")
        assert opened[0].startswith("Opened 1 model") and work.views == {"lab": "tab=lab&stride=3"}
        restored, restored_info = STORE.get(chosen, "bob")
        assert restored_info.description == "trained here on cups" and dict(restored_info.options) == {
            "activation": "tanh"
        }
        for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
        assert JOBS.last_run("bob", "train").summary == _training()
        assert JOBS.last_run("bob", "experiment").result.table() == _saved_experiment().table()
    finally:
        for session in ("alice", "bob"):
            JOBS.forget(session)
            STORE.drop_session(session)


def test_the_train_tab_shows_a_saved_trainings_tables():
    from ui.tabs.train import shown_summary

    shown = shown_summary(_training())
    assert shown["confusion"].values.tolist() == [["a", 5, 5], ["b", 3, 7]]
    assert shown["per_class"]["accuracy"].tolist() == ["50%", "70%"]
    assert shown["per_class"]["validation images"].tolist() == [10, 10]
    assert "validation accuracy <b>60.0%</b>" in shown["status"] and shown["curves"].width > 600


def test_the_last_kernel_applied_in_the_lab_is_the_one_a_learner_publishes():
    from types import SimpleNamespace

    from playground.sharing.board import kernel_entry
    from ui import class_board
    from ui.state import KERNELS
    from ui.tabs import conv_lab

    request = SimpleNamespace(session_hash="carol")
    try:
        conv_lab.remember_settings(request, "", "custom", "0 1 0\n1 -4 1\n0 1 0", "gray", 1, 0, 1, "none", 2, 2)
        published = class_board.latest("carol", "kernel")
        # typed in the editor, but the numbers are the Laplacian's: the board names it so
        assert kernel_entry(published) == {"name": "laplacian", "kernel": [[0, 1, 0], [1, -4, 1], [0, 1, 0]]}
        conv_lab.remember_settings(request, "Not applied: a typo", "custom", "1 x", "gray", 1, 0, 1, "none", 2, 2)
        assert class_board.latest("carol", "kernel") == published  # a refused kernel changes nothing
    finally:
        KERNELS.forget("carol")
