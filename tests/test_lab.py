import dataclasses

import numpy as np
import pytest
from PIL import Image

from playground import kernels as K
from playground import render
from playground.lab import (
    LabSettings,
    explain_click,
    input_values,
    mark_pixel,
    patch_box,
    pixel_under,
    preset_gallery,
    render_output,
    run_lab,
    shown_image,
)


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


def test_render_output_draws_light_and_shadow_around_a_mid_gray_zero():
    values = np.array([[-4.0, 0.0, 2.0, 4.0]], np.float32)
    picture, scale = render_output(values, light_and_shadow=True)
    gray = np.asarray(picture.convert("RGB"), np.int16)[0]
    assert (np.ptp(gray, axis=1) == 0).all()  # gray, not blue-white-red
    assert gray[0, 0] == 0 and abs(gray[1, 0] - 127.5) <= 1 and gray[3, 0] == 255  # shadow, zero, lit
    assert gray[0, 0] < gray[1, 0] < gray[2, 0] < gray[3, 0]
    assert scale == dataclasses.replace(render.render_response(values)[1], kind="signed_rgb")
    bar = np.asarray(render.colorbar(scale), np.int16)[5, 28 : 28 + 360]  # its bar: a gray ramp, zero in the middle
    assert (np.ptp(bar, axis=1) == 0).all() and bar[0, 0] == 0 and bar[-1, 0] == 255
    # Without the flag, and for a result that is never negative, the picture is what render_response draws.
    for array, light in ((values, False), (np.abs(values), True)):
        assert render_output(array, light_and_shadow=light)[0].tobytes() == render.render_response(array)[0].tobytes()


@pytest.mark.parametrize("name", list(K.KERNELS))
def test_only_light_kernels_are_drawn_as_light_and_shadow(photo, name):
    settings = LabSettings(kernel=name)
    result = run_lab(photo, settings)
    assert settings.light_and_shadow() == K.KERNELS[name].light_and_shadow
    if result.scale.kind != "sequential":
        assert result.scale.kind == ("signed_rgb" if K.KERNELS[name].light_and_shadow else "diverging")
    assert not LabSettings(kernel="custom", custom_kernel="0 1 0\n0 0 0\n0 -1 0").light_and_shadow()


@pytest.mark.parametrize("old", list(K.RENAMED))
def test_a_saved_call_with_an_old_kernel_name_gets_the_renamed_kernel(photo, old):
    from ui.photos import example_paths
    from ui.tabs.conv_lab import KernelChooser, apply_kernel  # the tab's chooser is what an HTTP call goes through

    chooser = KernelChooser(choices=list(K.KERNELS), value="sobel_x")
    assert chooser.preprocess(old) == K.RENAMED[old]
    assert chooser.get_block_name() == "dropdown"
    result = run_lab(photo, LabSettings(kernel=old))
    np.testing.assert_array_equal(result.weights, K.KERNELS[K.RENAMED[old]].weights)
    assert result.scale.kind == "signed_rgb"
    cup = example_paths()[0]
    assert apply_kernel(cup, old)[0].tobytes() == apply_kernel(cup, K.RENAMED[old])[0].tobytes()


@pytest.mark.parametrize(
    "settings",
    [
        LabSettings(kernel="sharpen", padding=1, stride=2),
        LabSettings(kernel="custom", custom_kernel="1 0 -1", dilation=2, padding=3, color="rgb"),
        LabSettings(kernel="sobel_x", stride=2, pooling="max", pool_size=3, pool_stride=2),
    ],
)
def test_a_pixels_patch_is_every_input_pixel_its_value_was_computed_from(photo, settings):
    result = run_lab(photo, settings)
    x, y = result.output.shape[1] - 1, 1
    left, top, right, bottom = patch_box(result, x, y)
    # The box spans the rows and columns the arithmetic reads, for every convolution output behind the pixel.
    window = settings.pool_size if settings.pooling != "none" else 1
    step = settings.pool_stride if settings.pooling != "none" else 1
    read = [
        K.explain_pixel(
            input_values(photo, "gray"), result.weights, row, col,
            stride=settings.stride, padding=settings.padding, dilation=settings.dilation,
        )
        for row in range(y * step, y * step + window)
        for col in range(x * step, x * step + window)
    ]  # fmt: skip
    assert (left, top) == (min(px.cols[0] for px in read), min(px.rows[0] for px in read))
    assert (right, bottom) == (max(px.cols[-1] for px in read), max(px.rows[-1] for px in read))
    # And nothing outside it counts: change every pixel outside the box and the value stays.
    values = np.asarray(photo, np.uint8).copy()
    outside = np.ones(values.shape[:2], bool)
    outside[max(top, 0) : bottom + 1, max(left, 0) : right + 1] = False
    values[outside] = 255 - values[outside]
    np.testing.assert_array_equal(run_lab(Image.fromarray(values), settings).output[y, x], result.output[y, x])


def test_a_click_on_the_enlarged_result_lands_on_its_own_pixel_and_is_marked(photo):
    result = run_lab(photo, LabSettings(kernel="box_blur", stride=2))  # 24 × 19: shown enlarged
    z = result.zoom
    assert z > 1 and shown_image(result).size == (24 * z, 19 * z)
    assert pixel_under(result, 5 * z, 3 * z + z - 1) == (5, 3)
    assert pixel_under(result, 24 * z + 3, -1) == (23, 0)  # a click on the very edge stays inside
    marked, seen = mark_pixel(result, 5, 3)
    assert marked.size == shown_image(result).size
    # The photo as the kernel saw it (gray), its patch, rows 6-8 and columns 10-12, framed just outside.
    assert patch_box(result, 5, 3) == (10, 6, 12, 8)
    seen = np.asarray(seen)
    np.testing.assert_array_equal(seen[6:9, 10:13, 0], input_values(photo, "gray")[6:9, 10:13])
    assert (seen[5, 9:14] == render.MARK).all() and (seen[6:9, 13] == render.MARK).all()
    with pytest.raises(ValueError, match="outside"):
        mark_pixel(result, 24, 0)
