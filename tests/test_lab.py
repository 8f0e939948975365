import numpy as np
import pytest
from PIL import Image

from playground import kernels as K
from playground.lab import LabSettings, explain_click, input_values, preset_gallery, run_lab


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))


def test_gray_input_is_pil_luma(photo):
    np.testing.assert_array_equal(input_values(photo, "gray"), np.asarray(photo.convert("L"), np.float32))


@pytest.mark.parametrize(
    "settings",
    [
        LabSettings(),
        LabSettings(kernel="gaussian_blur", color="rgb", stride=2, padding=2),
        LabSettings(kernel="custom", custom_kernel="1 -1", dilation=3, pooling="max", pool_size=3, pool_stride=2),
        LabSettings(kernel="laplacian", pooling="avg", pool_size=2, pool_stride=1, padding=1),
    ],
)
def test_run_lab_shapes_and_values_follow_the_arithmetic(photo, settings):
    result = run_lab(photo, settings)
    weights = settings.weights()
    conv_h = K.output_size(40, weights.shape[0], settings.stride, settings.padding, settings.dilation)
    conv_w = K.output_size(50, weights.shape[1], settings.stride, settings.padding, settings.dilation)
    assert result.conv.shape[:2] == (conv_h, conv_w)
    np.testing.assert_array_equal(
        result.conv,
        K.convolve(
            input_values(photo, settings.color),
            weights,
            stride=settings.stride,
            padding=settings.padding,
            dilation=settings.dilation,
        ),
    )
    if settings.pooling == "none":
        assert result.output is result.conv
    else:
        assert result.output.shape[:2] == (
            K.output_size(conv_h, settings.pool_size, settings.pool_stride),
            K.output_size(conv_w, settings.pool_size, settings.pool_stride),
        )
    assert result.image.size == (result.output.shape[1], result.output.shape[0])  # one pixel per value
    assert f"**{result.output.shape[1]} × {result.output.shape[0]}**" in result.arithmetic


@pytest.mark.parametrize(
    "settings, message",
    [
        (LabSettings(stride=0), "Stride"),
        (LabSettings(stride=9), "Stride"),
        (LabSettings(padding=-1), "Padding"),
        (LabSettings(dilation=100), "Dilation"),
        (LabSettings(color="cmyk"), "Colour mode"),
        (LabSettings(pooling="median"), "Pooling"),
        (LabSettings(kernel="custom", custom_kernel=""), "empty"),
        (LabSettings(kernel="nope"), "Unknown kernel"),
        (LabSettings(kernel="custom", custom_kernel="\n".join(["1 " * 11] * 11), dilation=5), "padding"),
    ],
)
def test_bad_settings_get_clear_errors(photo, settings, message):
    with pytest.raises(ValueError, match=message):
        run_lab(photo, settings)


def test_explain_click_shows_the_value_at_that_pixel(photo):
    result = run_lab(photo, LabSettings(kernel="sharpen", padding=1, stride=2))
    html = explain_click(result, 3, 4)
    assert "sum of the 9 products" in html
    from playground.render import format_number

    assert f"<b>{format_number(result.output[4, 3])}</b>" in html
    with pytest.raises(ValueError, match="outside"):
        explain_click(result, 999, 0)


def test_explain_click_through_max_pooling_follows_the_winner(photo):
    result = run_lab(photo, LabSettings(kernel="sobel_x", pooling="max", pool_size=2, pool_stride=2))
    html = explain_click(result, 1, 1)
    window = result.conv[2:4, 2:4]
    r, c = np.unravel_index(np.argmax(window), window.shape)
    assert f"output (row {2 + r}, column {2 + c}) sees" in html


def test_explain_click_in_colour_explains_each_channel(photo):
    html = explain_click(run_lab(photo, LabSettings(color="rgb")), 0, 0)
    assert all(f"<b>{name}</b>" in html for name in ("red", "green", "blue"))


def test_preset_gallery_has_every_preset(photo):
    items = preset_gallery(photo)
    assert [caption for _, caption in items] == list(K.KERNELS)


def test_colour_max_pooling_follows_each_channels_own_winner():
    values = np.zeros((6, 6, 3), np.uint8)
    values[2, 2] = (200, 0, 0)  # red wins top-left of the first window ...
    values[1, 2] = (0, 200, 0)  # ... green wins top-right (identity: conv output = input shifted by 1)
    photo = Image.fromarray(values)
    result = run_lab(photo, LabSettings(kernel="identity", color="rgb", pooling="max", pool_size=2, pool_stride=2))
    html = explain_click(result, 0, 0)
    assert "<b>red</b>: output (row 1, column 1)" in html
    assert "<b>green</b>: output (row 0, column 1)" in html


def test_pooling_larger_than_the_result_is_explained_as_pooling():
    with pytest.raises(ValueError, match="pooling window is larger"):
        K.pool(np.zeros((3, 3)), "max", 4)
