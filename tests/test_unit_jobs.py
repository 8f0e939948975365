import io
import time
import zipfile

import pytest
from PIL import Image

from playground.config import get_limits
from playground.data.sources import DatasetSource
from playground.layers import Trunk
from playground.models import build
from playground.serving.workers import Worker, WorkerSettings
from playground.units import jobs as J
from playground.units.featurevis import FeatureVisSettings, Preview
from playground.units.retrieval import Fc7Progress
from playground.units.toppatches import TopPatches


def _zip(path, classes=("cats", "dogs"), per_class=3):
    with zipfile.ZipFile(path, "w") as archive:
        for c, name in enumerate(classes):
            for i in range(per_class):
                buffer = io.BytesIO()
                Image.new("RGB", (40, 30), (80 * c, 20 * i, 100)).save(buffer, format="PNG")
                archive.writestr(f"{name}/{i}.png", buffer.getvalue())
    return str(path)


def test_dataset_choices_and_their_sentences(tmp_path):
    assert J.dataset_names()[0] == "examples" and J.dataset_names()[-1] == "my zip" and "synthetic" in J.dataset_names()
    with pytest.raises(ValueError, match="Unknown dataset"):
        J.choose_dataset("imagenet", zip_path=None, example_names=())
    with pytest.raises(ValueError, match="This session has no zip yet"):
        J.choose_dataset("my zip", zip_path=None, example_names=())
    examples = J.choose_dataset("examples", zip_path=None, example_names=("coffee", "camera")).open()
    assert examples.images.shape == (2, 3, 224, 224) and examples.classes == ("coffee", "camera")
    mine = J.choose_dataset("my zip", zip_path=_zip(tmp_path / "pets.zip"), example_names=())
    assert mine.name == "your zip" and mine.limit == get_limits().units_dataset_images
    assert len(mine.open()) == 6 and mine.open().classes == ("cats", "dogs")
    gone = J.choose_dataset("my zip", zip_path=str(tmp_path / "swept.zip"), example_names=())
    with pytest.raises(ValueError, match="no longer on the server"):
        gone.open()
    with pytest.raises(ValueError, match="no example photos"):
        DatasetSource.examples(()).open()
    limited = J.choose_dataset("synthetic", zip_path=None, example_names=())
    assert limited.limit == get_limits().units_dataset_images
    assert len(DatasetSource.built_in("synthetic", limit=12).open()) <= 12
    few = DatasetSource.zip(_zip(tmp_path / "many.zip", per_class=10), limit=5).open()  # spread over the classes
    assert len(few) == 6 and few.labels.tolist() == [0, 0, 0, 1, 1, 1]  # and never below 3 of a class


def test_a_sessions_zip_is_its_own(tmp_path):
    path = _zip(tmp_path / "x.zip")
    a, b = (J.choose_dataset("my zip", zip_path=path, example_names=()).identity(s) for s in ("a", "b"))
    assert a != b  # the same file, asked for by two sessions, is cached apart


def test_each_kind_of_job_runs_in_process():
    model = build("alexnet_compact", num_classes=3).eval()
    trunk = J.pack(model, trunk=True)
    settings = FeatureVisSettings(steps=4, size=48, preview_seconds=0)
    records = list(J.run_job(J.UnitJob("featurevis", trunk, "features.3", (5,), settings)))
    assert all(isinstance(r, Preview) for r in records) and records[-1].final
    grid = list(J.run_job(J.UnitJob("grid", trunk, "features.0", tuple(range(48)), settings)))
    assert grid[-1].final and grid[-1].done == 48 and grid[-1].picture.width == 7 * 50 + 2
    tops = list(J.run_job(J.UnitJob("top_patches", trunk, dataset=DatasetSource.built_in("synthetic", limit=10))))
    assert isinstance(tops[-1], TopPatches) and tops[-1].images == 10
    fc7 = list(J.run_job(J.UnitJob("fc7", J.pack(model), dataset=DatasetSource.built_in("synthetic", limit=10))))
    assert isinstance(fc7[0], Fc7Progress) and fc7[-1].features.features.shape == (10, 2048)
    assert fc7[-1].picture is not None
    with pytest.raises(ValueError, match="Unknown kind"):
        list(J.run_job(J.UnitJob("nonsense", trunk)))


def test_stop_ends_a_feature_visualisation_in_its_worker_at_once():
    model = build("alexnet_compact", num_classes=3).eval()
    job = J.UnitJob("featurevis", J.pack(model, trunk=True), "features.10", (1,), FeatureVisSettings(steps=512))
    worker = Worker(J.run_job, job, settings=WorkerSettings(nice=0, threads=1, memory_bytes=0, stale_seconds=60))
    previews = (record for record in worker.records() if record is not None)
    first = next(previews)
    assert isinstance(first, Preview) and first.step < 512
    worker.stop()
    deadline = time.monotonic() + 5
    while worker.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not worker.alive()


def test_packing_a_shared_model_waits_for_anothers_capture_and_carries_no_hooks():
    """A learner's Visualise while another's Activations capture holds hooks on the same shared model."""
    import pickle
    import threading

    from playground.hooks import temporary_hooks

    model = build("alexnet_compact", num_classes=3).eval()
    hooked, release = threading.Event(), threading.Event()

    def capture():
        with temporary_hooks(model, {"features.0": lambda *_: None}):
            hooked.set()
            release.wait(10)

    other = threading.Thread(target=capture)
    other.start()
    hooked.wait(10)
    packed = []
    packer = threading.Thread(target=lambda: packed.append(J.pack(model, trunk=True)))
    packer.start()
    packer.join(0.3)
    assert packer.is_alive() and not packed  # it waits until the capture's hooks are gone
    release.set()
    packer.join(10)
    other.join(10)
    trunk = pickle.loads(packed[0])
    assert isinstance(trunk, Trunk) and not any(m._forward_hooks for m in trunk.modules())
    assert isinstance(pickle.loads(J.pack(model)), type(model))
