"""The class board over HTTP: a class created, joined by three sessions, each publishing its own experiment of
the same preset; the board's one pooled table equals a recomputation from the three sessions' own results."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tests.test_app_train import _file, make_zip

pytestmark = pytest.mark.http


def test_three_sessions_publish_the_same_preset_and_the_board_pools_them(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    teacher = Client(app_url, verbose=False)
    code, key = teacher.predict("Year 10 — CNNs", api_name="/create_class")
    assert len(code) == 6 and len(key) >= 32
    runs = {}
    for n, learner in enumerate(("ada", "bo", "cy")):
        client = Client(app_url, verbose=False)
        assert "joined the class" in client.predict(code, learner, api_name="/join_class")
        with pytest.raises(AppError, match="Run an experiment first"):
            client.predict(code, learner, "experiment", api_name="/publish_result")
        zip_path = make_zip(tmp_path / f"colours-{n}.zip", per_class=5 + n)  # each learner's own data and seeds
        status, *_, downloads, _ = client.predict(_file(zip_path), "your zip", "relu-vs-tanh", 1, "activation", "", 1,
                                                  api_name="/experiment")  # fmt: skip
        assert "Done" in status
        runs[learner] = json.loads(Path(next(p for p in downloads if p.endswith("results.json"))).read_text())["runs"]
        said = client.predict(code, learner, "experiment", api_name="/publish_result")
        assert said.startswith("Published your experiment")
    shown = teacher.predict(code, api_name="/board")
    assert [e["learner"] for e in shown["entries"]] == ["ada", "bo", "cy"] and shown["learners"] == 3
    (table,) = shown["pooled"]
    assert table["learners"] == 3 and table["seeds"] == 6
    for row in table["table"]:
        mine = [run["val_accuracy"] for learner in runs.values() for run in learner if run["label"] == row["run"]]
        assert len(mine) == 3 and row["seeds"] == 3
        assert row["val. accuracy"] == f"{statistics.mean(mine):.1%} ± {statistics.stdev(mine):.1%}"
    hidden = shown["entries"][1]["entry"]
    with pytest.raises(AppError, match="does not open this class"):
        teacher.predict(code, "not the key", hidden, api_name="/hide_entry")
    teacher.predict(code, key, hidden, api_name="/hide_entry")
    after = teacher.predict(code, api_name="/board")
    assert [e["learner"] for e in after["entries"]] == ["ada", "cy"] and after["pooled"][0]["seeds"] == 4


def test_bad_codes_and_names_get_a_sentence(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="no class with the code"):
        client.predict("NOPE42", "ada", api_name="/join_class")
    code, _ = client.predict("c", api_name="/create_class")
    with pytest.raises(AppError, match="1 to 60 printable characters"):
        client.predict(code, "\x00evil", api_name="/join_class")
    assert "'); DROP TABLE" in client.predict(code, "x'); DROP TABLE learners;--", api_name="/join_class")
    with pytest.raises(AppError, match="Apply a kernel in the Convolution lab first"):
        client.predict(code, "x'); DROP TABLE learners;--", "kernel", api_name="/publish_result")
    with pytest.raises(AppError, match="not 'pickle'"):
        client.predict(code, "x'); DROP TABLE learners;--", "pickle", api_name="/publish_result")
