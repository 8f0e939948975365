import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from playground.config import Limits
from playground.images import load_image


def _save(tmp_path, image: Image.Image, name: str, **params) -> str:
    path = tmp_path / name
    image.save(path, **params)
    return str(path)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims a huge RGB image but holds a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _gradient(size=(48, 32)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack([np.tile(x, (size[1], 1))] * 3, axis=2)
    rgb[:, :, 2] = 255 - rgb[:, :, 2]
    return Image.fromarray(rgb)


@pytest.mark.parametrize(
    "name, params",
    [
        ("a.jpg", {"quality": 95}),
        ("a.png", {}),
        ("a.webp", {"lossless": True}),
        ("a.bmp", {}),
        ("a.tiff", {}),
        ("a.gif", {}),
    ],
)
def test_every_allowed_format_opens_as_rgb(tmp_path, name, params):
    original = _gradient()
    image = load_image(_save(tmp_path, original, name, **params))
    assert image.mode == "RGB" and image.size == original.size
    tolerance = 40 if name.endswith(".gif") else 12  # GIF quantises to 256 colours
    assert np.abs(np.asarray(image, np.int16) - np.asarray(original, np.int16)).mean() < tolerance


def test_path_bytes_pil_and_array_give_the_same_pixels(tmp_path):
    original = _gradient()
    path = _save(tmp_path, original, "a.png")
    with open(path, "rb") as handle:
        raw = handle.read()
    for source in (path, raw, bytearray(raw), original, np.asarray(original)):
        np.testing.assert_array_equal(np.asarray(load_image(source)), np.asarray(original))


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    loaded = load_image(_save(tmp_path, image, "phone.jpg", exif=exif))
    assert loaded.size == (20, 40)


def test_animation_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")]
    path = _save(tmp_path, frames[0], "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    assert load_image(path).getpixel((8, 8)) == (255, 0, 0)
    webp = _save(tmp_path, frames[0], "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    assert load_image(webp).getpixel((8, 8)) == (255, 0, 0)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black ...
    rgba[0, 0] = (0, 0, 0, 255)  # ... except one opaque black pixel
    rgba[0, 1] = (0, 0, 0, 128)  # and one half-transparent black pixel
    image = load_image(_save(tmp_path, Image.fromarray(rgba), "alpha.png"))
    assert image.getpixel((3, 3)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert 120 <= image.getpixel((1, 0))[0] <= 135
    la = Image.merge("LA", [Image.fromarray(rgba[:, :, 0]), Image.fromarray(rgba[:, :, 3])])
    assert load_image(_save(tmp_path, la, "la.png")).getpixel((3, 3)) == (255, 255, 255)


def test_palette_with_transparency_and_without(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 1), 1)
    plain = load_image(_save(tmp_path, palette, "p.png"))
    assert plain.getpixel((0, 0)) == (255, 0, 0) and plain.getpixel((1, 1)) == (0, 0, 255)
    transparent = load_image(_save(tmp_path, palette, "pt.gif", transparency=0))
    assert transparent.getpixel((0, 0)) == (255, 255, 255) and transparent.getpixel((1, 1)) == (0, 0, 255)


def test_grayscale_and_bilevel(tmp_path):
    gray = Image.fromarray(np.full((4, 4), 77, np.uint8))
    assert load_image(_save(tmp_path, gray, "g.png")).getpixel((0, 0)) == (77, 77, 77)
    bilevel = Image.new("1", (4, 4), 1)
    assert load_image(_save(tmp_path, bilevel, "b.png")).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32896, 65535]], np.uint16)
    path = _save(tmp_path, Image.fromarray(values), "deep.png")
    assert Image.open(path).mode.startswith("I")
    loaded = np.asarray(load_image(path))[0, :, 0]
    np.testing.assert_array_equal(loaded, [0, 4, 128, 255])  # a naive convert("L") gives 0, 255, 255, 255
    np.testing.assert_array_equal(np.asarray(load_image(values))[0, :, 0], [0, 4, 128, 255])


def test_float_images(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    path = _save(tmp_path, Image.fromarray(values), "float.tiff")
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(np.asarray(load_image(path))[0, :, 0], [0, 64, 128, 255])
    rgb = np.dstack([values] * 3)
    np.testing.assert_array_equal(np.asarray(load_image(rgb))[0, :, 1], [0, 64, 128, 255])
    nan = np.array([[np.nan, 0.5]], np.float32)
    assert np.asarray(load_image(nan))[0, 1, 0] == 128


def test_32_bit_integer_tiff(tmp_path):
    values = np.array([[0, 65535]], np.int32)
    path = _save(tmp_path, Image.fromarray(values), "int.tiff")
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(np.asarray(load_image(path))[0, :, 0], [0, 255])


@pytest.mark.parametrize("name", ["cmyk.jpg", "cmyk.tiff"])
def test_cmyk_becomes_rgb(tmp_path, name):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    r, g, b = load_image(_save(tmp_path, cmyk, name)).getpixel((4, 4))
    assert r > 230 and g < 30 and b < 30


def test_arrays_of_every_layout():
    assert load_image(np.zeros((5, 6), np.uint8)).size == (6, 5)
    assert load_image(np.zeros((5, 6, 1), np.uint8)).size == (6, 5)
    assert load_image(np.zeros((5, 6, 4), np.uint8)).getpixel((0, 0)) == (255, 255, 255)  # transparent
    assert load_image(np.ones((5, 6), bool)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        load_image(np.zeros((5, 6, 2), np.uint8))
    with pytest.raises(ValueError, match="numbers"):
        load_image(np.array([["a", "b"]]))


def test_large_photos_are_shrunk_to_the_working_size(tmp_path):
    big = Image.new("RGB", (2000, 1500), "white")
    path = _save(tmp_path, big, "big.jpg")
    small = load_image(path)
    assert small.width * small.height <= 1_000_000 and abs(small.width / small.height - 4 / 3) < 0.01
    assert small.info["original_size"] == (2000, 1500)  # the UI says the photo was shrunk, and from what
    assert load_image(path, working_size=False).size == (2000, 1500)
    exif = Image.Exif()
    exif[0x0112] = 6  # a portrait phone photo stored sideways
    rotated = load_image(_save(tmp_path, big, "phone.jpg", exif=exif))
    assert rotated.info["original_size"] == (1500, 2000) and rotated.height > rotated.width
    assert load_image(big).width * load_image(big).height <= 1_000_000


def test_header_claiming_a_giant_image_is_refused_before_decoding():
    for width, height in ((50_000, 50_000), (8_000, 8_000), (20_000, 10)):
        with pytest.raises(ValueError, match="limit"):
            load_image(_png_header_claiming(width, height))


def test_limits_come_from_the_config_object():
    tiny = Limits(max_image_pixels=100, max_image_side=50)
    with pytest.raises(ValueError, match="too large"):
        load_image(np.zeros((11, 10), np.uint8), limits=tiny)
    with pytest.raises(ValueError, match="too large"):
        load_image(Image.new("RGB", (60, 1)), limits=tiny)
    assert load_image(np.zeros((10, 10), np.uint8), limits=tiny).size == (10, 10)


def test_truncated_file_gets_a_clear_message(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    png = io.BytesIO()
    _gradient().save(png, "PNG")
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_image(png.getvalue()[:-40])


def test_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(ValueError, match="not an image we can read"):
        load_image(str(path))


def test_formats_outside_the_list_are_refused(tmp_path):
    path = _save(tmp_path, _gradient(), "a.ppm")
    with pytest.raises(ValueError, match="JPEG, PNG, WEBP, GIF, BMP or TIFF"):
        load_image(path)


def test_missing_path_and_wrong_types():
    with pytest.raises(ValueError, match="could not be found"):
        load_image("/nonexistent/photo.png")
    with pytest.raises(ValueError, match="No image"):
        load_image(None)
    with pytest.raises(ValueError, match="expected"):
        load_image(42)


def test_callers_pil_image_is_not_modified():
    original = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    load_image(original)
    assert original.mode == "RGBA" and original.getpixel((0, 0)) == (0, 0, 0, 0)
