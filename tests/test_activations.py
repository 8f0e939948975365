import numpy as np
import pytest
import torch
from PIL import Image

from playground import activations as A
from playground.models import MODELS, build


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8))


def test_preprocess_and_network_view(photo):
    x = A.preprocess(photo)
    assert x.shape == (1, 3, 224, 224)
    view = A.network_view(x)
    assert view.size == (224, 224)
    # The view is the centre crop of the resized photo (resize shorter side to 256, crop 224).
    resized = photo.resize((341, 256), Image.Resampling.BILINEAR)
    crop = np.asarray(resized)[16:240, 58:282].astype(int)
    assert np.abs(np.asarray(view).astype(int) - crop).mean() < 3


@pytest.mark.parametrize("name", list(MODELS))
def test_capture_records_every_layer_with_the_right_shapes(name, photo):
    model = build(name, num_classes=10).eval()
    x = A.preprocess(photo)
    logits, acts = A.forward_with_activations(model, x)
    assert list(acts) == A.layer_names(model)
    kinds = {type(m).__name__ for n, m in model.named_modules() if n in acts}
    assert {"Conv2d", "ReLU", "MaxPool2d", "Linear"} <= kinds
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(acts["features.0"], model.features[0](x))


def test_conv_outputs_are_not_overwritten_by_in_place_relus(photo):
    model = build("alexnet").eval()
    acts = A.capture(model, A.preprocess(photo))
    assert acts["features.0"].min() < 0  # the raw convolution has negatives ...
    assert acts["features.1"].min() == 0  # ... the ReLU after it does not
    assert A.sparsity(acts["features.1"]) > 0.05


def test_hooks_leave_nothing_behind_and_mode_is_restored(photo):
    model = build("alexnet_compact").train()
    x = A.preprocess(photo)
    for _ in range(5):
        A.capture(model, x)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(RuntimeError), A.temporary_hooks(model, {"features.0": lambda *a: None}):
        raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules()) and model.training


def test_capture_of_unknown_layer_is_refused(photo):
    with pytest.raises(ValueError, match="Unknown layer"):
        A.capture(build("alexnet_compact"), A.preprocess(photo), ["features.99"])


def test_channel_grid_picks_the_most_active_channels():
    act = torch.zeros(1, 8, 5, 5)
    act[0, 6] = 3.0
    act[0, 2] = 1.0
    grid = A.channel_grid(act, k=3)
    assert grid.channels[:2] == [6, 2]
    assert grid.image.mode == "RGB"
    flat = A.channel_grid(torch.arange(4096.0)[None], k=1)  # a fully connected layer: one square map
    assert flat.channels == [0] and flat.image.width == flat.image.height


def test_overlay_and_its_errors(photo):
    act = torch.rand(1, 4, 13, 13)
    view = photo.resize((224, 224))
    assert A.overlay(act, 2, view).size == (224, 224)
    with pytest.raises(ValueError, match="channels 0 to 3"):
        A.overlay(act, 4, view)


def test_predict_returns_sorted_probabilities(photo):
    torch.manual_seed(0)
    model = build("alexnet_compact", num_classes=7).eval()
    classes = [f"c{i}" for i in range(7)]
    top = A.predict(model, A.preprocess(photo), classes)
    assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    with torch.no_grad():
        probabilities = torch.softmax(model(A.preprocess(photo))[0], 0)
    assert top[0] == (classes[int(probabilities.argmax())], pytest.approx(float(probabilities.max())))


def test_another_threads_forward_pass_does_not_leak_into_a_capture(photo):
    import threading

    model = build("alexnet_compact").eval()
    x = A.preprocess(photo)
    other = torch.zeros_like(x)
    started, stop = threading.Event(), threading.Event()

    def hammer():
        started.set()
        with torch.no_grad():
            while not stop.is_set():
                model(other)  # another user, no hooks of its own

    thread = threading.Thread(target=hammer)
    thread.start()
    started.wait()
    try:
        for _ in range(20):
            acts = A.capture(model, x)
            with torch.no_grad():
                torch.testing.assert_close(acts["features.0"], model.features[0](x))
    finally:
        stop.set()
        thread.join()


def _shown(text: str) -> tuple[float, float]:
    """The number a percentage text shows, and half a unit of its last digit."""
    number = text.removesuffix(" %").lstrip("<> ")
    decimals = len(number.partition(".")[2])
    return float(number), 0.5 * 10.0**-decimals


def test_an_untrained_models_top5_never_reads_zero(photo):
    model = build("alexnet", generator=torch.Generator().manual_seed(0)).eval()  # 1,000 classes, ~0.1 % each
    top = A.predict(model, A.preprocess(photo), [f"c{i}" for i in range(1000)])
    with torch.no_grad():
        reference = torch.softmax(model(A.preprocess(photo))[0].double(), 0).numpy() * 100
    for name, probability in top:
        text = A.percent_text(probability)
        shown, half = _shown(text)
        assert shown != 0 and text.endswith(" %")
        assert abs(shown - reference[int(name[1:])]) <= half + 1e-6, text  # right to its last digit
        assert len(text.removesuffix(" %").replace("0.", "").lstrip("0")) >= 2  # two significant digits


@pytest.mark.parametrize(
    ("probability", "text"),
    [(0.0, "0 %"), (1.0, "100 %"), (0.4567, "46 %"), (0.03216, "3.2 %"), (0.0012345, "0.12 %"),
     (0.000031, "0.0031 %"), (0.0000031, "0.0003 %"), (1e-9, "< 0.0001 %"), (0.99996, "99.996 %"), (0.9999999999, "> 99.9999 %"),
     (0.996, "99.6 %"), (0.0996, "10.0 %")],
)  # fmt: skip
def test_percentages_have_the_digits_they_need(probability, text):
    assert A.percent_text(probability) == text


def test_the_tab_shows_the_top5_with_these_percentages():
    # gr.Label would round each 0.1 % of an untrained 1,000-class model to "0%" in the browser: the tab draws
    # the percentages it is given, in gr.Label's data shape.
    from ui.photos import example_paths
    from ui.tabs import activations as tab

    top, _ = tab.predict("alexnet", example_paths()[0])
    assert [c["label"] for c in top["confidences"]][0] == top["label"] and len(top["confidences"]) == 5
    for entry in top["confidences"]:
        assert entry["percent"] == A.percent_text(entry["confidence"]) and entry["percent"] != "0 %"
    assert "{{this.percent}}" in tab.TOP5_TEMPLATE
