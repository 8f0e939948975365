"""The model tabs over real HTTP: one gradio_client call per endpoint, checkpoints and sessions."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from playground.models import build
from playground.weights.checkpoints import save_checkpoint
from ui.photos import example_paths

pytestmark = pytest.mark.http


def _file(path):
    from gradio_client import handle_file

    return handle_file(path)


def test_model_info_says_the_weights_are_untrained_offline(client):
    text = client.predict("alexnet", api_name="/model_info")
    assert "untrained" in text and "PLAYGROUND_ALEXNET_WEIGHTS" in text


def test_architecture_endpoint(client):
    table, chart, summary = client.predict("alexnet_compact", api_name="/architecture")
    rows = {row[0]: row for row in table["data"]}
    assert rows["conv1 · features.0"][2] == "48 × 55 × 55" and rows["conv1 · features.0"][3] == "17,472"
    assert table["data"][-1][0] == "total" and rows["total"][3] == "16,630,440"  # the last row, the model's total
    assert "16,630,440 parameters" in summary
    assert [row[0] for row in chart["data"]][0] == "1 conv1 · features.0"


def test_filters_endpoints(client):
    # Model-level views (on load and model change) and the side by side (also photo, kernel, rank).
    grid, caption, table, deeper = client.predict("alexnet2012", api_name="/filters")
    assert Image.open(grid).width > 500 and "96 filters of 3 × 11 × 11" in caption and "untrained" in caption
    assert len(table["data"]) == 20 and table["data"][0][0] == "identity"
    rows = {row[0]: row for row in table["data"]}
    assert re.fullmatch(r"#\d+ \([+-]\d\.\d\d, [13]×\)", rows["laplacian"][2])  # e.g. #12 (+0.83, 3×)
    assert len(deeper) == 4  # conv2 … conv5
    classic, learned, difference, comparison = client.predict(
        "alexnet2012", _file(example_paths()[0]), "laplacian", 2, api_name="/filter_comparison"
    )
    assert Image.open(classic).size == Image.open(learned).size == Image.open(difference).size
    second = rows["laplacian"][2].split(" ")[0]  # the table's second match is the one compared
    assert f"laplacian** against learned filter **{second}**" in comparison and "×" in comparison


def test_the_filters_tab_recomputes_model_views_only_for_a_new_model():
    # Picking a kernel or rank, or changing the photo, must not redo the grid, matches and deeper layers.
    import app

    config = app.build_demo().config
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}

    def wiring(api_name):
        dep = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
        triggers = {
            (event if target == 0 or elem.get(target) is None else f"{elem[target]}.{event}")
            for target, event in dep["targets"]
        }
        return triggers, {elem.get(o) for o in dep["outputs"]}

    triggers, outputs = wiring("filters")
    assert triggers == {"load", "model-chooser.change"}
    assert {"filters-grid", "filters-caption", "filters-matches", "filters-deeper"} == outputs
    triggers, outputs = wiring("filter_comparison")
    assert triggers == {
        "load",
        "model-chooser.change",
        "filters-photo.change",
        "filters-kernel.change",
        "filters-rank.change",
    }
    assert {"filters-classic", "filters-learned", "filters-difference", "filters-comparison"} == outputs


def test_layers_activations_and_predict_endpoints(client):
    update = client.predict("alexnet", "features.1", api_name="/layers")
    assert update["value"] == "features.1" and update["choices"][-1] == ["fc8 · classifier.6", "classifier.6"]
    view, grid, overlay, caption, stats = client.predict(
        "alexnet", _file(example_paths()[1]), "features.4", 7, api_name="/activations"
    )
    assert Image.open(view).size == (224, 224) and Image.open(overlay).size == (224, 224)
    assert "**relu2 · features.4**" in caption and "channel **7**" in caption
    assert [row[0] for row in stats["data"]][:3] == ["conv1 · features.0", "relu1 · features.1", "pool1 · features.2"]
    *_, caption, _ = client.predict("alexnet", _file(example_paths()[1]), "conv4", 7, api_name="/activations")
    assert "**conv4 · features.8** (256 × 13 × 13)" in caption  # a course name is accepted over HTTP too
    top, note = client.predict("alexnet", _file(example_paths()[0]), api_name="/predict")
    assert len(top["confidences"]) == 5 and "guesses" in note


def test_a_missing_channel_or_layer_gets_a_note_and_a_fallback(client):
    *_, caption, _ = client.predict("alexnet", _file(example_paths()[0]), "features.1", 64, api_name="/activations")
    assert "no channel 64; showing the most active one" in caption
    *_, caption, _ = client.predict(
        "alexnet_compact", _file(example_paths()[0]), "features.14", -1, api_name="/activations"
    )
    assert "no layer 'features.14'; showing relu1 · features.1" in caption


def test_checkpoints_belong_to_the_session_that_loaded_them(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    torch.manual_seed(0)
    model = build("alexnet_compact", num_classes=3)
    path = save_checkpoint(
        model, tmp_path / "flowers.safetensors", variant="alexnet_compact", classes=["daisy", "rose", "tulip"]
    )
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    update, status = alice.predict(_file(str(path)), "auto", api_name="/load_checkpoint")
    chooser = update["value"]
    assert chooser.startswith("mine:") and chooser in [value for _, value in update["choices"]]
    assert "flowers.safetensors" in status
    top, _ = alice.predict(chooser, _file(example_paths()[0]), api_name="/predict")
    assert {c["label"] for c in top["confidences"]} == {"daisy", "rose", "tulip"}
    # Bob's session never had it: Gradio's per-session choices refuse it, and so would our store.
    with pytest.raises(AppError, match="is not a value this input accepts|not available in this session"):
        bob.predict(chooser, api_name="/architecture")
    assert "flowers" not in str(bob.predict("alexnet", api_name="/model_choices"))


def test_hostile_checkpoints_are_refused_over_http(client, tmp_path):
    from gradio_client.exceptions import AppError

    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n(S'touch /tmp/pwned-by-test'\ntR.")
    with pytest.raises(AppError, match="never code|not a readable|could not be loaded"):
        client.predict(_file(str(evil)), "auto", api_name="/load_checkpoint")
    text = tmp_path / "weights.safetensors"
    text.write_text("nope")
    with pytest.raises(AppError, match="safetensors"):
        client.predict(_file(str(text)), "auto", api_name="/load_checkpoint")


def test_webcam_frame_handler():
    # gradio_client cannot drive a streaming input, so the handler the stream calls is tested directly.
    import io

    from ui.tabs.activations import webcam_frame

    buffer = io.BytesIO()
    Image.open(example_paths()[3]).save(buffer, "JPEG")
    grid = webcam_frame(buffer.getvalue(), "alexnet_compact", "features.4")  # a frame sent as a data: URL
    assert grid.mode == "RGB" and grid.width > 200
    grid = webcam_frame(example_paths()[3], "alexnet_compact", "features.4")  # a frame sent as a file
    assert grid.mode == "RGB" and grid.width > 200
    assert webcam_frame(None) is None


@pytest.mark.parametrize("baseline", ["linear", "mlp"])
def test_a_baseline_checkpoint_is_refused_by_the_chooser_with_a_sentence(client, tmp_path, baseline):
    from gradio_client.exceptions import AppError

    from playground.data import datasets as data
    from playground.training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(model=baseline, image_size=64, epochs=1)
    result = list(finetune(config, data.synthetic(per_class=5, size=32)))[-1]
    path = tmp_path / f"{baseline}.safetensors"
    result.save(path)
    with pytest.raises(AppError, match="no convolutional layers"):
        client.predict(_file(str(path)), "auto", api_name="/load_checkpoint")
    # Nothing was added, and every model tab still answers for the shared models.
    assert baseline not in str(client.predict("alexnet", api_name="/model_choices"))
    table, _, _ = client.predict("alexnet_compact", api_name="/architecture")
    assert table["data"]
