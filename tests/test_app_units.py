"""The Units tab over real HTTP: each endpoint, bad input, Stop mid-optimisation, sessions kept apart."""

from __future__ import annotations

import io
import os
import subprocess
import time
import zipfile

import pytest
from PIL import Image

from playground.models import build
from playground.weights.checkpoints import save_checkpoint
from tests.conftest import SERVER
from ui.photos import EXAMPLE_PHOTOS, example_paths

pytestmark = pytest.mark.http


def _file(path):
    from gradio_client import handle_file

    return handle_file(path)


def _new_client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _zip(path, classes=("cats", "dogs"), per_class=3) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for c, name in enumerate(classes):
            for i in range(per_class):
                buffer = io.BytesIO()
                Image.new("RGB", (60, 50), (90 * c, 30 * i, 120)).save(buffer, format="PNG")
                archive.writestr(f"{name}/{i}.png", buffer.getvalue())
    return str(path)


def test_feature_visualisation_streams_previews_and_ends_with_the_final_picture(client):
    job = client.submit("alexnet_compact", "features.3", 5, False, 64, api_name="/feature_visualisation")
    outputs = job.result() and job.outputs()
    assert len(outputs) >= 2  # previews first, the final picture last
    final, caption = outputs[-1]
    assert Image.open(final).size == (128, 128) and "step 64 of 64" in caption and "features.3 channel 5" in caption
    again, _ = client.predict("alexnet_compact", "features.3", 5, False, 64, api_name="/feature_visualisation")
    assert Image.open(again).tobytes() == Image.open(final).tobytes()  # kept: the same picture at once


def test_a_whole_layer_streams_its_grid(client):
    job = client.submit("alexnet_compact", "features.0", api_name="/layer_grid")
    grids = job.result() and job.outputs()
    assert Image.open(grids[-1]).size == (7 * 50 + 2, 7 * 50 + 2)  # 48 tiles of 48 px, 7 a row, 2 px apart


def test_top_patches_of_the_examples_strongest_first(client):
    gallery = client.predict("alexnet", "features.0", 3, "examples", api_name="/top_patches")
    assert len(gallery) == len(EXAMPLE_PHOTOS)  # five photos: each image counts once
    values = [float(item["caption"].split(" · ")[0]) for item in gallery]
    assert values == sorted(values, reverse=True)
    assert Image.open(gallery[0]["image"]).size == (112, 112)
    # Another channel and layer of the same pass come from the cache.
    deeper = client.predict("alexnet", "features.1", 7, "examples", api_name="/cached_top_patches")
    assert len(deeper) == len(EXAMPLE_PHOTOS)


def test_neighbours_find_the_photo_itself_first_and_the_map(client):
    cup = example_paths()[0]
    gallery = client.predict("alexnet", _file(cup), "examples", api_name="/neighbours")
    assert gallery[0]["caption"].startswith("0.00 · coffee")
    distances = [float(item["caption"].split(" · ")[0]) for item in gallery]
    assert distances == sorted(distances) and len(gallery) == len(EXAMPLE_PHOTOS)
    picture = client.predict("alexnet", "examples", api_name="/fc7_map")
    assert Image.open(picture).width == 900


def test_deconvnet_receptive_field_and_channel_map(client):
    cup = _file(example_paths()[0])
    panel, caption = client.predict("alexnet", cup, "features.3", 5, api_name="/unit_deconvnet")
    assert Image.open(panel).size == (224 * 3 + 16, 224) and "Deconvnet" in caption and "receptive field" in caption
    guided, caption = client.predict(
        "alexnet2012", cup, "features.5", 200, "guided_backprop", api_name="/unit_deconvnet"
    )
    assert Image.open(guided).size == (224 * 3 + 16, 224) and "carries the channels of features.4" in caption
    field, caption = client.predict("alexnet", cup, "features.0", 0, 0, api_name="/receptive_field")
    assert "sees pixels 0-8 × 0-8" in caption and "first starting at pixel -2" in caption
    box = Image.open(field).convert("RGB")
    assert box.getpixel((0, 0)) == (0, 220, 90) and box.getpixel((8, 8)) == (0, 220, 90)  # pixels 0-8
    assert box.getpixel((9, 9)) != (0, 220, 90)
    heat = client.predict("alexnet", cup, "features.10", 1, api_name="/channel_map")
    assert Image.open(heat).size == (13 * 17, 13 * 17)


@pytest.mark.parametrize(
    "call, sentence",
    [
        (("alexnet", "classifier.1", 0, "examples"), "choose one of features.0, features.3"),
        (("alexnet", "features.10", 256, "examples"), "features.10 has channels 0 to 255"),
        (("alexnet", "features.0", 0, "imagenet"), "Unknown dataset"),
        (("alexnet", "features.0", 0, "my zip"), "This session has no zip yet"),
        (("alexnet", "features.0", 0, "cifar10"), "CIFAR-10 could not be had here"),
    ],
)
def test_bad_requests_get_a_sentence(client, call, sentence):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=sentence):
        client.predict(*call, api_name="/top_patches")


def test_bad_feature_visualisation_requests(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="features.0 has channels 0 to 47"):
        client.predict("alexnet_compact", "features.0", 48, api_name="/feature_visualisation")
    # A baseline is not in the chooser (it cannot join it), so the chooser itself refuses its name ...
    with pytest.raises(AppError, match="'mlp' is not a value this input accepts"):
        client.predict("mlp", _file(example_paths()[0]), "features.0", 0, api_name="/unit_deconvnet")


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_the_handlers_refuse_a_baseline_with_a_sentence(name):
    import gradio as gr

    from ui.tabs import units as units_tab

    # ... and the handlers, reached another way, say why.
    with pytest.raises(gr.Error, match=f"The {name} baseline has no convolutional layers"):
        next(units_tab.top_patches(name, "features.0", 0, "examples"))
    with pytest.raises(gr.Error, match=f"The {name} baseline has no convolutional layers"):
        units_tab.unit_deconvnet(name, None, "features.0", 0)


def _children(pid) -> list[tuple[str, str]]:
    listed = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True)
    return [tuple(line.strip().split(" ", 1)) for line in listed.stdout.splitlines() if line.strip()]


def _workers_of_the_server() -> int:
    """Job processes: forked by the server's fork server (its child), or spawned by the server itself."""
    count = 0
    for pid, args in _children(SERVER["pid"]):
        if "forkserver" in args:
            count += len(_children(pid))
        elif "spawn_main" in args:
            count += 1
    return count


def test_stop_mid_optimisation_ends_the_worker_and_the_server_keeps_serving(app_url):
    client = _new_client(app_url)
    job = client.submit("alexnet", "features.10", 9, False, 512, api_name="/feature_visualisation")
    deadline = time.monotonic() + 60
    while not job.outputs():
        assert time.monotonic() < deadline, "no preview arrived"
        time.sleep(0.2)
    assert _workers_of_the_server() >= 1
    job.cancel()  # what the Stop button does
    deadline = time.monotonic() + 15
    while _workers_of_the_server():
        assert time.monotonic() < deadline, "the worker kept running after Stop"
        time.sleep(0.3)
    assert len(job.outputs()) < 40  # it stopped long before 512 steps
    field, _ = client.predict("alexnet", _file(example_paths()[1]), "features.3", 2, 2, api_name="/receptive_field")
    assert Image.open(field).size == (224, 224)


def test_two_sessions_never_see_each_others_zip_or_model(app_url, tmp_path):
    alice, bob = _new_client(app_url), _new_client(app_url)
    alice.predict(_file(_zip(tmp_path / "pets.zip")), api_name="/remember_zip")
    gallery = alice.predict("alexnet_compact", "features.0", 1, "my zip", api_name="/top_patches")
    assert len(gallery) == 6
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="This session has no zip yet"):
        bob.predict("alexnet_compact", "features.0", 1, "my zip", api_name="/top_patches")
    model = build("alexnet_compact", num_classes=2)
    path = save_checkpoint(model, tmp_path / "mine.safetensors", variant="alexnet_compact", classes=["cat", "dog"])
    chooser, _ = alice.predict(_file(str(path)), "auto", api_name="/load_checkpoint")
    key = chooser["value"]
    near = alice.predict(key, _file(example_paths()[2]), "my zip", api_name="/neighbours")
    assert len(near) == 6 and near[0]["caption"].split(" · ")[1].startswith(("cats", "dogs"))
    import httpx

    with pytest.raises((AppError, httpx.HTTPStatusError)):  # bob's chooser has no such key: refused at the door
        bob.predict(key, _file(example_paths()[2]), "examples", api_name="/neighbours")
    with pytest.raises(AppError, match="is not a value this input accepts"):
        bob.predict(key, _file(example_paths()[2]), "features.0", 0, api_name="/unit_deconvnet")
    assert os.path.exists(path)


def test_every_units_event_returns_what_its_outputs_expect():
    """Each Units handler is wired to as many outputs as it returns (a chained event that got it wrong would
    fail in the browser only, as an error toast)."""
    import inspect

    import app

    demo = app.build_demo()
    returns_pairs = {"feature_visualisation", "unit_deconvnet", "receptive_field"}
    for block in demo.fns.values():
        fn = getattr(block.fn, "__wrapped__", block.fn)
        if getattr(fn, "__module__", "") != "ui.tabs.units" or not inspect.isfunction(fn):
            continue
        expected = 2 if fn.__name__ in returns_pairs else None
        if expected:
            assert len(block.outputs) == expected, (block.api_name, len(block.outputs))
        elif fn.__name__ != "from_activations" and fn.__name__ != "pick_position":
            assert len(block.outputs) == 1, (block.api_name, len(block.outputs))
