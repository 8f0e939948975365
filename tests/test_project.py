"""A project file: what a session made goes in, comes back out the same, and a hostile file is refused whole."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from playground.models import build
from playground.sharing import project
from playground.weights.checkpoints import load_user_checkpoint, save_checkpoint
from tests.test_report import _saved_experiment


def _model(tmp_path, name="m.safetensors", **options):
    model = build("alexnet_compact", num_classes=3, generator=torch.Generator().manual_seed(1), **options)
    return model, save_checkpoint(model, tmp_path / name, variant="alexnet_compact", classes=("a", "b", "c"),
                                  options=options)  # fmt: skip


def _png(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _training() -> dict:
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.4, "seconds": 2.0},
               {"epoch": 2, "loss": 0.7, "accuracy": 0.7, "val_accuracy": 0.6, "seconds": 2.0}]  # fmt: skip
    return project.training_summary(dataset="your zip", variant="alexnet_compact", mode="full", classes=["a", "b"],
                                    history=history, val_accuracy=0.6, per_class_accuracy=[0.5, 0.7],
                                    confusion=[[5, 5], [3, 7]], images_per_second=12.0, seconds=4.0)  # fmt: skip


def _work(tmp_path) -> project.Work:
    _, first = _model(tmp_path, "first.safetensors")
    _, tanh = _model(tmp_path, "tanh.safetensors", activation="tanh")
    _, run = _model(tmp_path, "run.safetensors")
    return project.Work(
        views={"lab": "tab=lab&kernel=sobel_x&stride=2", "train": "tab=train&epochs=12"},
        photos={"lab": _png()},
        lessons={"done": [1, 2], "answers": {"1/size": {"reply": "222", "right": True}}},
        models=[project.SavedModel("trained here on flowers", first), project.SavedModel("tanh net", tanh)],
        chosen="model-1",
        training=_training(),
        experiment=_saved_experiment(),
        runs={2: project.SavedModel("tanh (seed 0)", run)},
    )


def test_saved_work_opens_as_it_was(tmp_path):
    work = _work(tmp_path)
    path = tmp_path / "project.zip"
    assert project.write(work, path) == []
    back = project.read(path, tmp_path / "opened")
    assert back.views == work.views and back.lessons == work.lessons and back.chosen == "model-1"
    assert back.training == work.training
    assert back.experiment.table() == work.experiment.table() and back.experiment.outcomes == work.experiment.outcomes
    assert [m.description for m in back.models] == ["trained here on flowers", "tanh net"]
    assert back.runs.keys() == {2} and back.runs[2].description == "tanh (seed 0)"
    for saved, opened in zip(work.models, back.models, strict=True):
        before, _ = load_user_checkpoint(saved.path)
        after, info = load_user_checkpoint(opened.path)
        for (key, a), (_, b) in zip(before.state_dict().items(), after.state_dict().items(), strict=True):
            assert torch.equal(a, b), key
    assert dict(load_user_checkpoint(back.models[1].path)[1].options) == {"activation": "tanh"}
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(back.photos["lab"]))), np.asarray(Image.open(io.BytesIO(_png())))
    )
    with zipfile.ZipFile(path) as archive:  # the files a person reads are there too
        assert {"experiment/results.csv", "experiment/summary.csv", "experiment/curves.png"} <= set(archive.namelist())


def test_weights_past_the_servers_upload_size_are_left_out_and_said(tmp_path):
    work = _work(tmp_path)
    size = work.models[1].path.stat().st_size
    left = project.write(work, tmp_path / "p.zip", max_bytes=size + 200_000)  # the chosen model and the rest
    back = project.read(tmp_path / "p.zip", tmp_path / "o")
    assert [m.description for m in back.models] == ["tanh net"] and back.chosen == "model-0"
    assert not back.runs and back.experiment is not None
    assert any("trained here on flowers" in s and "left out" in s for s in left)
    assert any("run 2" in s for s in left)


@pytest.fixture(scope="module")
def saved_members(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("saved")
    project.write(_work(folder), folder / "good.zip")
    with zipfile.ZipFile(folder / "good.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewritten(tmp_path, members, change) -> str:
    """The saved project with its members changed by ``change(members: dict[str, bytes])``."""
    members = dict(members)
    change(members)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return str(bad)


def _manifest(members, **changes):
    manifest = json.loads(members["project.json"])
    manifest.update(changes)
    members["project.json"] = json.dumps(manifest).encode()


class _Boom:
    def __reduce__(self):
        import os

        return os.system, ("touch /tmp/pwned-by-project",)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m: m.update({"../../etc/cron.d/x": b"x"}), "points outside its folder"),
        (lambda m: m.update({"/etc/passwd": b"x"}), "absolute path"),
        (lambda m: m.update({"models/model-0.pt": pickle.dumps(_Boom())}), "which is not part of a project"),
        (lambda m: m.update({"models/model-0.safetensors": pickle.dumps(_Boom())}), "not a readable safetensors file"),
        (lambda m: m.update({"models/model-0.safetensors": _png()}), "not a readable safetensors file"),
        (lambda m: m.update({"experiment/results.json": b"{not json"}), "results.json is not valid JSON"),
        (lambda m: m.update({"photos/lab.png": b"GIF89a" + b"\0" * 40}), "a photo"),
        (lambda m: _manifest(m, format="something else"), "not an AlexNet Playground project"),
        (lambda m: _manifest(m, version=99), "format version 99"),
        (
            lambda m: _manifest(m, models=[{"file": "../x.safetensors", "description": "x"}]),
            "names weights it cannot hold",
        ),
        (lambda m: _manifest(m, photos={"lab": "photos/../../x.png"}), "names a photo it cannot hold"),
        (lambda m: m.pop("project.json"), "has no project.json"),
        (lambda m: m.update({"training.json": json.dumps({"classes": ["a"]}).encode()}), "training's numbers"),
    ],
)
def test_a_hostile_project_is_refused_whole_and_nothing_is_left(tmp_path, saved_members, change, says):
    bad = _rewritten(tmp_path, saved_members, change)
    folder = tmp_path / "opened"
    with pytest.raises(ValueError, match="This project file cannot be opened") as caught:
        project.read(bad, folder)
    assert says in str(caught.value)
    assert not folder.exists()  # the weights it had copied are gone
    assert not (tmp_path.parent / "pwned-by-project").exists()


def test_a_zip_bomb_and_a_million_members_are_refused_before_reading(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.json", json.dumps({"format": project.FORMAT, "version": 1}))
        archive.writestr("experiment/results.json", b"\0" * 200_000_000)
    with pytest.raises(ValueError, match="looks like a zip bomb"):
        project.read(bomb, tmp_path / "o1")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(project.MAX_MEMBERS + 1):
            archive.writestr(f"photos/{i}.png", b"")
    with pytest.raises(ValueError, match=f"a project has at most {project.MAX_MEMBERS}"):
        project.read(many, tmp_path / "o2")
    with pytest.raises(ValueError, match="not a readable zip archive"):
        project.read(io.BytesIO(b"PK\x03\x04 nothing else"), tmp_path / "o3")


def test_a_directory_announcing_a_million_members_is_refused_from_its_last_bytes(tmp_path):
    # The end-of-directory record claims 1,000,000 entries: refused before zipfile reads the directory.
    record = b"PK\x05\x06" + b"\0" * 4 + (65_535).to_bytes(2, "little") * 2 + (2**31).to_bytes(4, "little") + b"\0" * 6
    path = tmp_path / "million.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100 + record)
    with pytest.raises(ValueError, match="cannot be opened.*(ZIP64|members)"):
        project.read(path, tmp_path / "o")
