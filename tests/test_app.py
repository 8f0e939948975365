"""The Gradio app: it builds, and over real HTTP /apply_kernel works, refuses bad files and keeps serving."""

from __future__ import annotations

import dataclasses
import inspect
import io
import os
import struct
import zlib

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import app
from playground import render
from playground.kernels import output_size
from playground.lab import LabSettings
from ui.photos import example_paths
from ui.tabs import activations as activations_tab
from ui.tabs import architecture as architecture_tab
from ui.tabs import conv_lab
from ui.tabs import explain as explain_tab
from ui.tabs import filters as filters_tab


def test_build_demo_builds_blocks_with_named_endpoints():
    demo = app.build_demo()
    assert isinstance(demo, gr.Blocks)
    names = {dep.get("api_name") for dep in demo.config["dependencies"]}
    assert {"apply_kernel", "describe_kernel", "explain_pixel", "preset_gallery"} <= names
    assert None not in names  # every event has an api_name


def test_the_server_keeps_gradios_event_records_small(monkeypatch):
    """Gradio rebuilt a table of its last 10,000 events after every event: a cost that grew with every click."""
    monkeypatch.delenv("GRADIO_ANALYTICS_MAX_EVENTS", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    app.tune_for_many_users()
    queue = gr.Blocks().queue()._queue
    assert queue.ANALYTICS_MAX_EVENTS <= 500 and queue.ANAYLTICS_CACHE_FREQUENCY >= 500


def test_the_server_keeps_page_state_for_a_bounded_number_of_sessions(monkeypatch):
    """Gradio keeps ~0.6 MB of page state per session (10,000 of them by default): API clients never close."""
    from playground.config import get_limits
    from ui import guard

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    monkeypatch.setattr(guard, "start_sweeper", lambda blocks=None: None)
    app.launch(gr.Blocks())
    assert launched["state_session_capacity"] == get_limits().sessions_kept <= 1000
    assert launched["max_file_size"] == get_limits().max_upload_bytes


def test_result_pictures_are_written_once_and_whole(tmp_path, monkeypatch):
    """A picture many learners get (a kernel's heat map) is written once, and never rewritten while one of
    them downloads it (a half-written file broke downloads under load)."""
    from PIL import Image

    from ui.photos import result_image

    output = result_image()
    monkeypatch.setattr(output, "GRADIO_CACHE", str(tmp_path))
    picture = Image.new("RGB", (40, 30), (10, 200, 30))
    first = output.postprocess(picture).path
    written = os.stat(first).st_mtime_ns
    assert output.postprocess(picture).path == first and os.stat(first).st_mtime_ns == written
    assert Image.open(first).convert("RGB").getpixel((5, 5)) == (10, 200, 30)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["image.png"]  # nothing half-written left


def test_apply_kernel_handler_with_only_an_image():
    image, colorbar, kernel_image, arithmetic, status = conv_lab.apply_kernel(example_paths()[0])
    assert image.size == (598, 398)  # the 600 × 400 coffee cup, 3 × 3 Sobel, no padding
    assert "598" in arithmetic and "398" in arithmetic
    assert kernel_image.size[0] == kernel_image.size[1]
    assert status == ""  # a kernel that works clears the last complaint


def test_a_typo_in_the_kernel_keeps_the_last_result_and_says_why_beside_the_editor():
    """Issue #19.11: "1 2 x" used to raise, and Gradio put red "Error" badges over the result, the colour scale,
    the kernel picture and the chooser, with the reason in a toast that fades."""
    photo = example_paths()[0]
    *pictures, status = conv_lab.apply_kernel(photo, "custom", "1 2 x")
    assert pictures == [gr.skip()] * 4 and "Row 1: 'x' is not a number" in status
    *pictures, status = conv_lab.apply_kernel(photo, stride=99)  # any setting the lab refuses, the same way
    assert pictures == [gr.skip()] * 4 and "Stride must be a whole number from 1" in status
    *pictures, status, chooser = conv_lab.apply_custom_kernel(photo, "1 2\n3", "gray", 1, 0, 1, "none", 2, 2)
    assert pictures == [gr.skip()] * 4 and chooser == gr.skip() and "same number of values" in status
    *pictures, status, chooser = conv_lab.apply_custom_kernel(photo, "1 -1", "gray", 1, 0, 1, "none", 2, 2)
    assert pictures[0].size == (599, 400) and status == "" and chooser == "custom"
    # The settings behind the picture on screen stay those of the last kernel that worked.
    assert conv_lab.remember_settings(None, "not a number", "custom", "1 2 x", *[None] * 7) == (gr.skip(),) * 3


def test_handler_turns_core_errors_into_gradio_errors(tmp_path):
    with pytest.raises(gr.Error, match="could not be found"):
        conv_lab.apply_kernel("/no/such/photo.png", "custom", "1 2 x")  # the photo is not the editor's business
    with pytest.raises(gr.Error, match="Upload a photo"):
        conv_lab.all_presets(None)
    assert conv_lab.apply_kernel(None)[:3] == (None, None, None)  # a cleared photo clears the result


def test_describe_kernel_fills_the_editor():
    text, editor = conv_lab.describe_kernel("laplacian")
    assert "Second derivative" in text and editor == "0 1 0\n1 -4 1\n0 1 0"


def test_the_labs_settings_are_listed_once_and_every_endpoint_takes_them_in_that_order():
    """HTTP callers pass the nine settings by position, so the endpoints' signatures are made from SETTINGS."""
    assert list(conv_lab.SETTINGS.items()) == [(f.name, f.default) for f in dataclasses.fields(LabSettings)]
    empty = inspect.Parameter.empty

    def parameters(handler):
        return [(p.name, p.default) for p in inspect.signature(handler).parameters.values()]

    names = list(conv_lab.SETTINGS)
    assert parameters(conv_lab.apply_kernel) == [("image", empty), *conv_lab.SETTINGS.items()]
    assert parameters(conv_lab.apply_custom_kernel) == [(n, empty) for n in ["image", *names[1:]]]
    assert parameters(conv_lab.explain_pixel) == [(n, empty) for n in ["image", *names, "x", "y"]]
    assert set(names) <= {f.name for f in dataclasses.fields(conv_lab.LabLayout)}  # the wiring's input lists


def test_lab_settings_fill_empty_choices_and_make_numbers_whole():
    settings = conv_lab.lab_settings([None, None, "", 2.0, 1, 1, None, 3, 2])
    assert settings == LabSettings(stride=2, padding=1, pool_size=3)
    with pytest.raises(ValueError):
        conv_lab.lab_settings(["laplacian"])  # all nine or none


def _click(x: int, y: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})


def test_a_click_is_explained_with_the_settings_that_made_the_picture():
    photo = example_paths()[0]
    applied, explanation, patch = conv_lab.remember_settings(None, "", "laplacian", "", "gray", 1, 1, 1, "none", 2, 2)
    assert explanation == "" and patch is None  # a new picture clears the last pixel's explanation and patch
    x, y, explanation, *_ = conv_lab.pick_pixel(photo, applied, _click(10, 20))
    assert (x, y) == (10, 20) and explanation == conv_lab.explain_pixel(photo, *applied, 10, 20)
    assert conv_lab.apply_custom_kernel(photo, "1 -1", "gray", 1, 0, 1, "none", 2, 2)[-1] == "custom"


def test_a_small_result_is_shown_enlarged_and_a_click_on_it_finds_its_own_pixel():
    """Issue #19.12: a 150 × 100 result (stride 2, then pooling) was shown 150 px wide, too small to read or click."""
    photo = example_paths()[0]
    settings = ("sobel_x", "", "gray", 2, 3, 2, "max", 3, 2)
    shown, *_, arithmetic, _ = conv_lab.apply_kernel(photo, *settings)
    width = output_size(output_size(600, 3, 2, 3, 2), 3, 2)
    height = output_size(output_size(400, 3, 2, 3, 2), 3, 2)
    assert f"**{width} × {height}**" in arithmetic  # the numbers count result pixels
    zoom = shown.width // width
    assert shown.size == (width * zoom, height * zoom) and max(shown.size) >= render.MIN_SHOWN_SIDE
    assert f"{zoom} × {zoom} block" in arithmetic
    blocks = np.asarray(shown.convert("RGB")).reshape(height, zoom, width, zoom, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # whole pixels, nearest neighbour: no blur between them

    applied = conv_lab.remember_settings(None, "", *settings)[0]
    x, y, explanation, marked, patch = conv_lab.pick_pixel(photo, applied, _click(41 * zoom + zoom - 1, 17 * zoom))
    assert (x, y) == (41, 17) and explanation == conv_lab.explain_pixel(photo, *settings, 41, 17)
    assert marked.size == shown.size and patch.size == (600, 400)
    # The pixel is ringed on the result (its own block untouched) and its patch is boxed on the photo.
    before, after = np.asarray(shown.convert("RGB")), np.asarray(marked)
    changed = np.argwhere((before != after).any(axis=2))
    assert len(changed) and not ((changed // zoom) == (y, x)).all(axis=1).any()
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    assert top < y * zoom and bottom >= (y + 1) * zoom and left < x * zoom and right >= (x + 1) * zoom
    assert (conv_lab.mark_applied(photo, applied, x, y)[1].tobytes()) == patch.tobytes()  # Enter marks the same


def test_the_labs_controls_apply_from_the_keyboard():
    """Issue #19.12: a slider moved with the arrow keys showed stride 2 while the result stayed stride 1 (the lab
    listened for .release, which only a pointer fires), and the pixel's number boxes ignored Enter."""
    with gr.Blocks() as demo:
        conv_lab.build_tab(demo)
    triggers = {}
    for fn in demo.fns.values():
        for block_id, event in fn.targets:
            label = getattr(demo.blocks.get(block_id), "label", None)  # the page itself (load) is no block
            triggers.setdefault(fn.api_name, set()).add((label, event))
    sliders = ["Stride", "Padding (zeros)", "Dilation", "Pool size", "Pool stride"]
    assert {(label, "change") for label in sliders} <= triggers["apply_kernel"]
    assert {("Column (x)", "submit"), ("Row (y)", "submit")} <= triggers["explain_pixel"]


@pytest.mark.parametrize(
    "tab, endpoints",
    [
        (conv_lab, {"apply_kernel", "apply_custom_kernel", "describe_kernel", "explain_pixel", "preset_gallery"}),
        (architecture_tab, {"architecture"}),
        (filters_tab, {"filters", "filter_comparison"}),
        (activations_tab, {"activations", "layers", "predict", "webcam_frame"}),
        (
            explain_tab,
            {
                "attribute",
                "compare",
                "explain_targets",
                "gradcam_layers",
                "occlude",
                "occlusion_canvas",
                "sanity_check",
            },
        ),
    ],
)
def test_each_tab_lays_out_and_wires_its_endpoints_on_its_own(tab, endpoints):
    """A tab's build_tab (its layout, then its wiring) needs nothing but the page and the model chooser."""
    with gr.Blocks() as demo:
        chooser = gr.Dropdown(["alexnet"], value="alexnet", label="Model")
        tab.build_tab(demo) if tab is conv_lab else tab.build_tab(demo, chooser)
    assert set(demo.get_api_info()["named_endpoints"]) == {f"/{name}" for name in endpoints}


def test_layer_choosers_show_course_names_and_send_torchvisions():
    """Issue #19.4: every chooser reads "conv1 · features.0"; the value it sends stays torchvision's name."""
    from ui.tabs import units as units_tab

    update = activations_tab.layers("alexnet", "conv4")  # a course name is read as its layer
    assert update["value"] == "features.8"
    assert update["choices"][:2] == [("conv1 · features.0", "features.0"), ("relu1 · features.1", "features.1")]
    assert (
        update["choices"][-1] == ("fc8 · classifier.6", "classifier.6") and ("avgpool", "avgpool") in update["choices"]
    )
    update = explain_tab.gradcam_layers("alexnet2012")
    assert update["choices"][-1] == ("conv5 · features.12", "features.12") and update["value"] == "features.12"
    update = units_tab.layer_choices("alexnet", "features.3")
    assert (
        update["choices"][0] == ("conv1 · features.0 · 64 channels", "features.0") and update["value"] == "features.3"
    )


def test_captions_name_layers_as_the_course_does_and_take_course_names():
    photo = example_paths()[1]
    *_, caption, stats = activations_tab.activations("alexnet", photo, "conv4", 7)
    assert "**conv4 · features.8** (256 × 13 × 13)" in caption
    assert list(stats["layer"][:3]) == ["conv1 · features.0", "relu1 · features.1", "pool1 · features.2"]
    *_, caption, _ = activations_tab.activations("alexnet_compact", photo, "features.14", -1)
    assert "no layer 'features.14'; showing relu1 · features.1" in caption
    _, facts = explain_tab.explain("alexnet", photo, "tabby", "gradcam", "heat map", "absolute", "conv4", 32)
    assert "layer conv4 · features.8" in facts
    *_, deeper = filters_tab.filters("alexnet2012")
    assert [caption.split(":")[0] for _, caption in deeper] == [
        "conv2 · features.4",
        "conv3 · features.8",
        "conv4 · features.10",
        "conv5 · features.12",
    ]


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.http
def test_http_apply_kernel_and_hostile_files(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    coffee = example_paths()[0]

    # Only the image: every other input has a default.
    result, colorbar, kernel_image, arithmetic, status = client.predict(handle_file(coffee), api_name="/apply_kernel")
    assert status == ""
    assert Image.open(result).size == (598, 398)
    assert "**598**" in arithmetic

    # Every option given.
    custom = "1 2 1\n2 4 2\n1 2 1"
    result, *_ = client.predict(
        handle_file(coffee), "custom", custom, "rgb", 2, 3, 2, "max", 3, 2, api_name="/apply_kernel"
    )
    width = output_size(output_size(600, 3, 2, 3, 2), 3, 2)
    height = output_size(output_size(400, 3, 2, 3, 2), 3, 2)
    shown = Image.open(result)
    zoom = shown.width // width  # a result this small comes back enlarged, whole pixels, as the page shows it
    assert zoom > 1 and shown.size == (width * zoom, height * zoom)

    # Hostile and broken files: a clear message each, and the server keeps serving.
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.png"
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    truncated.write_bytes(_png_bytes(noisy)[:-200])
    bomb = tmp_path / "bomb.png"
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(b"\0" * 4096)
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + ihdr
        + struct.pack(">I", zlib.crc32(ihdr))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
    )
    for path, message in ((text, "not an image we can read"), (truncated, "damaged or incomplete"), (bomb, "limit")):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(path)), api_name="/apply_kernel")
    # A kernel the lab refuses: the sentence comes back as the status beside the editor, the rest unchanged.
    *_, status = client.predict(handle_file(coffee), "custom", "\n".join(["1 " * 12] * 12), api_name="/apply_kernel")
    assert "largest allowed" in status
    *_, status, _ = client.predict(
        handle_file(coffee), "1 2 x", "gray", 1, 0, 1, "none", 2, 2, api_name="/apply_custom_kernel"
    )
    assert "Row 1: 'x' is not a number" in status

    result, *_ = client.predict(handle_file(coffee), "laplacian", api_name="/apply_kernel")
    assert Image.open(result).size == (598, 398)


@pytest.mark.http
def test_http_explain_pixel_and_gallery(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    coffee = example_paths()[0]
    explanation = client.predict(
        handle_file(coffee), "sobel_x", "", "gray", 1, 0, 1, "none", 2, 2, 10, 20, api_name="/explain_pixel"
    )
    assert "sum of the 9 products" in explanation and "rows 20–22, columns 10–12" in explanation
    gallery = client.predict(handle_file(coffee), "gray", api_name="/preset_gallery")
    assert [item["caption"] for item in gallery][:3] == ["identity", "box_blur", "gaussian_blur"]


def _raw_call(url: str, api: str, data: list) -> str:
    """Call an endpoint the way a hand-written client can: plain JSON, no gradio_client."""
    import httpx

    response = httpx.post(f"{url}gradio_api/call/{api}", json={"data": data}, timeout=60)
    event = response.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{api}/{event}", timeout=120).text


@pytest.mark.http
def test_a_client_cannot_name_server_files(app_url, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (20, 30), (200, 10, 10)).save(secret)
    defaults = ["identity", "", "gray", 1, 0, 1, "none", 2, 2]
    for payload in (
        {"path": str(secret)},
        {"path": "/etc/passwd"},
        {"path": "/nonexistent.png"},
        {"path": "../../etc/hosts"},
    ):
        answer = _raw_call(app_url, "apply_kernel", [payload] + defaults)
        assert "event: error" in answer and "could not be found on the server" in answer, answer[-300:]
        assert "598" not in answer and "30" not in answer.split("data:")[-1]  # nothing about the file leaks
    # Uploads still work.
    from gradio_client import Client, handle_file

    result, *_ = Client(app_url, verbose=False).predict(handle_file(str(secret)), "identity", api_name="/apply_kernel")
    shown = Image.open(result)  # the 18 × 28 result of a 20 × 30 upload, enlarged in whole pixels to be seen
    assert shown.width % 18 == 0 and shown.size == (18 * (shown.width // 18), 28 * (shown.width // 18))


@pytest.mark.http
def test_a_data_url_bomb_meets_the_same_limits(app_url):
    import base64

    buffer = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(buffer, "PNG", optimize=True)  # 144 MP in ~140 KB
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = _raw_call(app_url, "apply_kernel", [{"url": url}, "sobel_x", "", "gray", 1, 0, 1, "none", 2, 2])
    assert "event: error" in answer and "too large" in answer, answer[-300:]


def test_messages_reach_the_user_without_extra_quotes():
    with pytest.raises(gr.Error) as caught:
        conv_lab.apply_kernel("/etc/hostname")
    assert caught.value.message == "That image could not be found on the server. Please upload it again."
