import numpy as np
import pytest
from PIL import Image

from playground import render


def test_signed_gray_goes_on_a_symmetric_diverging_map():
    values = np.array([[-50.0, 0.0, 100.0]], np.float32)
    image, scale = render.render_response(values)
    assert scale.kind == "diverging" and (scale.low, scale.high) == (-100.0, 100.0)
    assert (scale.min_value, scale.max_value) == (-50.0, 100.0)
    assert image.mode == "P"  # a palette of the map's colours: exact, and quick to encode
    pixels = np.asarray(image.convert("RGB"))  # what the browser shows
    lut = render.colour_table(render.DIVERGING)
    np.testing.assert_array_equal(pixels[0, 1], lut[128])  # zero: the middle of the map
    np.testing.assert_array_equal(pixels[0, 2], lut[255])  # the largest magnitude: the red end
    np.testing.assert_array_equal(pixels[0, 0], lut[64])  # -50 of ±100: a quarter of the way up
    assert pixels[0, 2, 0] > pixels[0, 2, 2]  # positive is red
    assert pixels[0, 0, 2] > pixels[0, 0, 0]  # negative is blue


def test_never_negative_output_goes_on_a_gray_ramp_without_clipping():
    values = np.array([[0.0, 255.0, 510.0]], np.float32)  # a kernel summing to 2 doubles the brightness
    image, scale = render.render_response(values)
    assert scale.kind == "sequential" and scale.high == 510.0
    np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[0], [[0] * 3, [128] * 3, [255] * 3])


def test_signed_colour_puts_zero_at_mid_gray():
    values = np.zeros((1, 2, 3), np.float32)
    values[0, 1] = (10.0, -10.0, 5.0)
    image, scale = render.render_response(values)
    assert scale.kind == "signed_rgb"
    pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels[0, 0], [128, 128, 128])
    np.testing.assert_array_equal(pixels[0, 1], [255, 0, 191])


def test_non_finite_values_do_not_break_rendering():
    image, scale = render.render_response(np.array([[np.nan, 1.0, np.inf, -2.0]], np.float32))
    assert np.isfinite([scale.low, scale.high]).all() and image.size == (4, 1)


def test_colorbar_and_kernel_heatmap_sizes():
    bar = render.colorbar(render.Scale(-3, 3, "diverging", -3, 2))
    assert bar.width > 300 and bar.height < 60
    small, big = render.kernel_heatmap(np.eye(3)), render.kernel_heatmap(np.eye(11))
    assert small.width == small.height and big.width > small.width  # more numbers, more room
    row = render.kernel_heatmap(np.array([[-2.0, 0.0, 2.0]]), cell=40)
    assert row.size == (121, 41)  # one cell per weight, drawn as a row
    corner = [row.getpixel((40 * j + 4, 4)) for j in range(3)]  # away from the printed number
    lut = render.colour_table(render.DIVERGING)
    assert corner == [tuple(lut[0]), tuple(lut[128]), tuple(lut[255])]  # blue, white, red: the lab's scale


@pytest.mark.parametrize(
    "value, text", [(0, "0"), (3.0, "3"), (-1020.0, "-1020"), (0.1111111, "0.111"), (123.456, "123.5"), (-0.5, "-0.5")]
)
def test_format_number(value, text):
    assert render.format_number(value) == text


def test_tiny_numbers_are_not_shown_as_zero():
    assert render.format_number(4e-7) == "4e-07"
    assert render.format_number(-0.0005) == "-0.0005"
    assert render.format_number(1020.0000001) == "1020"


@pytest.mark.parametrize("size", [(150, 100), (1, 1), (479, 200), (480, 10), (598, 398)])
def test_small_pictures_are_enlarged_by_the_fewest_whole_pixels_that_make_them_readable(size):
    zoom = render.zoom_for(*size)
    assert max(size) * zoom >= render.MIN_SHOWN_SIDE and (zoom == 1 or max(size) * (zoom - 1) < render.MIN_SHOWN_SIDE)
    picture = render.render_response(np.random.default_rng(0).normal(size=size[::-1]).astype(np.float32))[0]
    shown = render.enlarge(picture, zoom)
    assert shown.mode == picture.mode and shown.size == (size[0] * zoom, size[1] * zoom)
    # Each pixel becomes a zoom × zoom block of its own colour: nothing blurred, nothing shifted.
    np.testing.assert_array_equal(np.asarray(shown)[::zoom, ::zoom], np.asarray(picture))
    np.testing.assert_array_equal(np.asarray(shown)[zoom - 1 :: zoom, zoom - 1 :: zoom], np.asarray(picture))


def test_a_marked_cell_and_a_boxed_region_are_framed_around_not_over():
    picture = Image.new("RGB", (40, 30), (10, 20, 30))
    ringed = np.asarray(render.ring_cell(picture, 2, 1, zoom=5))
    changed = np.argwhere((ringed != np.asarray(picture)).any(axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    assert top < 5 and bottom >= 10 and left < 10 and right >= 15  # the frame surrounds block (2, 1) ...
    assert (ringed[5:10, 10:15] == (10, 20, 30)).all()  # ... and leaves the block itself to be seen

    boxed = np.asarray(render.box_region(picture, (3, 4, 5, 6)))
    assert (boxed[4:7, 3:6] == (10, 20, 30)).all()  # the patch's own pixels are untouched
    assert (boxed[3, 2:7] == render.MARK).all() and (boxed[7, 2:7] == render.MARK).all()  # the frame just outside
    assert (boxed[4:7, 2] == render.MARK).all() and (boxed[4:7, 6] == render.MARK).all()
    # A box reaching into the zero padding is framed where it meets the photo.
    edge = np.asarray(render.box_region(picture, (-2, -2, 1, 1)))
    assert (edge[2, 0:2] == render.MARK).all() and (edge[0:2, 2] == render.MARK).all()
