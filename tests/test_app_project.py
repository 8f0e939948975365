"""Save my work / Open my work over HTTP: a session's project opens in another session, on a restarted server,
and a hostile project file is refused while the server keeps serving."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from playground.models import build
from playground.weights.checkpoints import save_checkpoint
from tests.test_app_train import _file, make_zip

pytestmark = pytest.mark.http


def _checkpoint(tmp_path):
    model = build("alexnet_compact", num_classes=3, generator=torch.Generator().manual_seed(3), activation="tanh")
    return save_checkpoint(model, tmp_path / "tanh-net.safetensors", variant="alexnet_compact",
                           classes=("cat", "dog", "owl"), options={"activation": "tanh"})  # fmt: skip


def _choices(client) -> dict[str, str]:
    """The session's chooser: label -> key."""
    chooser = client.predict("alexnet", api_name="/model_choices")
    return dict(chooser["choices"])


def _made_work(client, tmp_path) -> str:
    """A session with a model it loaded and an experiment of two runs; its project file."""
    chooser, _ = client.predict(_file(_checkpoint(tmp_path)), "auto", api_name="/load_checkpoint")
    assert chooser["value"].startswith("mine:")
    status, *_ = client.predict(_file(make_zip(tmp_path / "colours.zip")), "your zip", "relu-vs-tanh", 1,
                                "activation", "", 1, api_name="/experiment")  # fmt: skip
    assert "Done" in status
    path, said = client.predict(api_name="/save_project")
    assert "Saved 1 model, your experiment (2 runs, 2 with their weights)" in said, said
    return path


def _check_restored(client, path):
    said, _, runs = client.predict(_file(path), api_name="/open_project")
    assert [label.split(" (")[0] for label, _ in runs["choices"]] == ["ReLU", "tanh"]
    assert said.startswith("Opened 1 model, your experiment (2 runs, 2 with their weights)"), said
    choices = _choices(client)
    label = next(label for label in choices if "tanh-net.safetensors" in label)
    rows, *_ = client.predict(choices[label], api_name="/architecture")
    assert any(row[1] == "Tanh" for row in rows["data"])  # the model itself, options and all
    chooser, opened = client.predict("1", api_name="/open_run")  # the experiment's runs open as before
    assert "tanh (seed 0) on colours" in opened


def test_a_saved_project_opens_in_another_session(app_url, tmp_path):
    from gradio_client import Client

    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    path = _made_work(alice, tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"project.json", "models/model-0.safetensors", "experiment/results.json", "experiment/run-0.safetensors",
            "experiment/run-1.safetensors", "experiment/summary.csv"} <= names  # fmt: skip
    assert not any("tanh-net" in label for label in _choices(bob))
    _check_restored(bob, path)


def test_a_saved_project_opens_after_the_server_restarts(tmp_path_factory, tmp_path):
    from gradio_client import Client

    from tests.conftest import start_app

    with start_app(tmp_path_factory) as (url, _):
        path = _made_work(Client(url, verbose=False), tmp_path)
    with start_app(tmp_path_factory) as (url, _):  # a new server: nothing of the first one's sessions
        _check_restored(Client(url, verbose=False), path)


class _Boom:
    def __reduce__(self):
        import os

        return os.system, ("touch /tmp/pwned-by-a-project",)


def test_a_hostile_project_is_refused_and_the_server_keeps_serving(app_url, tmp_path):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    for name, members in {
        "pickle.zip": {"project.json": b'{"format": "alexnet-playground-project", "version": 1, "models": '
                       b'[{"file": "models/model-0.safetensors", "description": "x"}]}',
                       "models/model-0.safetensors": pickle.dumps(_Boom())},
        "slip.zip": {"project.json": b"{}", "../../evil.txt": b"x"},
        "photo.zip": {"project.json": b"[]", "photos/lab.png": b"not a png"},
    }.items():  # fmt: skip
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, content)
        said, *_ = client.predict(_file(tmp_path / name), api_name="/open_project")
        assert said.startswith("Not opened. This project file cannot be opened"), said
    assert not (tmp_path.parent / "pwned-by-a-project").exists()
    assert "alexnet" in _choices(client).values() and not any(k.startswith("mine:") for k in _choices(client).values())
