import re

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as samples

from playground import kernels as K
from playground.lab import LabSettings, run_lab

REQUIRED = [
    "identity",
    "box_blur",
    "gaussian_blur",
    "sharpen",
    "emboss",
    "sobel_x",
    "sobel_y",
    "prewitt_x",
    "prewitt_y",
    "scharr_x",
    "scharr_y",
    "laplacian",
    "vertical_edge",
    "horizontal_edge",
    "flashlight_up",
    "flashlight_down",
    "flashlight_left",
    "flashlight_right",
    "outline_center",
    "outline_periphery",
]
GEOMETRIES = [  # (stride, padding, dilation)
    (1, 0, 1),
    (1, 1, 1),
    (2, 0, 1),
    (2, 3, 1),
    (1, 0, 2),
    (3, 2, 2),
    (4, 5, 3),
]


def reference(image: np.ndarray, kernel: np.ndarray, stride: int, padding: int, dilation: int) -> np.ndarray:
    """scipy's cross-correlation on an explicitly zero-padded image with an explicitly dilated kernel."""
    kh, kw = kernel.shape
    dilated = np.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))
    dilated[::dilation, ::dilation] = kernel
    channels = image[..., None] if image.ndim == 2 else image
    out = []
    for c in range(channels.shape[2]):
        padded = np.pad(channels[:, :, c].astype(np.float64), padding)
        full = scipy.signal.correlate2d(padded, dilated, mode="valid")
        out.append(full[::stride, ::stride])
    out = np.stack(out, axis=2)
    return out[:, :, 0] if image.ndim == 2 else out


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(37, 45, 3)).astype(np.float32)


def test_registry_has_every_required_kernel():
    assert set(REQUIRED) <= set(K.KERNELS)


@pytest.mark.parametrize("name", list(K.KERNELS))
def test_kernel_is_a_read_only_2d_float_grid_with_a_one_line_description(name):
    kernel = K.KERNELS[name]
    assert kernel.weights.ndim == 2 and kernel.weights.dtype == np.float32
    assert 1 <= max(kernel.weights.shape) <= 11
    assert not kernel.weights.flags.writeable
    assert kernel.description and "\n" not in kernel.description


def test_no_two_presets_are_the_same_array():
    items = list(K.KERNELS.items())
    for i, (a, ka) in enumerate(items):
        for b, kb in items[i + 1 :]:
            assert not (ka.weights.shape == kb.weights.shape and np.array_equal(ka.weights, kb.weights)), (a, b)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("name", list(K.KERNELS))
def test_convolve_matches_scipy_for_every_preset(name, geometry, photo):
    stride, padding, dilation = geometry
    weights = K.KERNELS[name].weights
    got = K.convolve(photo, name, stride=stride, padding=padding, dilation=dilation)
    want = reference(photo, weights.astype(np.float64), stride, padding, dilation)
    assert got.shape == want.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (4, 3), (1, 5), (6, 2), (11, 11)], ids=str)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_convolve_odd_and_even_kernels_gray_and_colour(shape, geometry, photo):
    stride, padding, dilation = geometry
    rng = np.random.default_rng(sum(shape))
    kernel = rng.normal(size=shape).astype(np.float32)
    gray = photo[:, :, 1]
    if photo.shape[0] + 2 * padding < dilation * (shape[0] - 1) + 1:
        pytest.skip("kernel does not fit")
    for image in (gray, photo):
        got = K.convolve(image, kernel, stride=stride, padding=padding, dilation=dilation)
        want = reference(image, kernel.astype(np.float64), stride, padding, dilation)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_convolve_is_what_torch_conv2d_computes(geometry, photo):
    stride, padding, dilation = geometry
    kernel = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    x = torch.from_numpy(photo).permute(2, 0, 1)[:, None]  # each channel as its own image
    want = F.conv2d(x, torch.from_numpy(kernel)[None, None], stride=stride, padding=padding, dilation=dilation)
    got = K.convolve(photo, kernel, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(got, want[:, 0].permute(1, 2, 0).numpy(), rtol=1e-5, atol=1e-3)


def test_convolve_does_not_clip_or_flip():
    image = np.zeros((5, 5), np.float32)
    image[2, 2] = 255
    kernel = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    out = K.convolve(image, kernel, padding=1)
    # Cross-correlation: an impulse reproduces the kernel rotated by 180 degrees.
    np.testing.assert_array_equal(out[1:4, 1:4], kernel[::-1, ::-1] * 255)
    assert out.max() == 9 * 255  # far above 255: not clipped
    assert K.convolve(image, -kernel, padding=1).min() == -9 * 255  # negatives kept


def test_convolve_accepts_pil_images():
    rgb = Image.new("RGB", (8, 6), (10, 20, 30))
    out = K.convolve(rgb, "box_blur")
    assert out.shape == (4, 6, 3)
    np.testing.assert_allclose(out[0, 0], [10, 20, 30], rtol=1e-5)
    assert K.convolve(rgb.convert("L"), "identity").shape == (4, 6)


@pytest.mark.parametrize("n", [1, 7, 32, 227])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 11])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_output_size_matches_actual_shapes(n, k, geometry):
    stride, padding, dilation = geometry
    if n + 2 * padding < dilation * (k - 1) + 1:
        with pytest.raises(ValueError, match="padding"):
            K.output_size(n, k, stride, padding, dilation)
        return
    expected = K.output_size(n, k, stride, padding, dilation)
    torch_shape = F.conv2d(
        torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=stride, padding=padding, dilation=dilation
    ).shape
    assert torch_shape[-1] == expected
    assert K.convolve(
        np.zeros((n, n), np.float32), np.ones((k, k)), stride=stride, padding=padding, dilation=dilation
    ).shape == (expected, expected)


def test_output_size_known_alexnet_numbers():
    assert K.output_size(224, 11, stride=4, padding=2) == 55
    assert K.output_size(227, 11, stride=4) == 55
    assert K.output_size(55, 3, stride=2) == 27


@pytest.mark.parametrize("bad", [dict(stride=0), dict(padding=-1), dict(dilation=0), dict(stride=1.5)])
def test_output_size_rejects_bad_geometry(bad):
    args = dict(stride=1, padding=0, dilation=1) | bad
    with pytest.raises(ValueError):
        K.output_size(10, 3, **args)


def test_parse_kernel_accepts_the_usual_ways_of_typing_a_grid():
    np.testing.assert_array_equal(K.parse_kernel("-1 0 1\n-2 0 2\n-1 0 1"), K.KERNELS["sobel_x"].weights)
    np.testing.assert_array_equal(K.parse_kernel("[[1, 2], [3, 4]]".replace("], [", "];[")), [[1, 2], [3, 4]])
    np.testing.assert_allclose(K.parse_kernel("1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9"), K.KERNELS["box_blur"].weights)
    assert K.parse_kernel("  5  ").shape == (1, 1)
    assert K.parse_kernel("1,2,3,4").shape == (1, 4)
    assert K.parse_kernel("\n".join(["1 " * 11] * 11)).shape == (11, 11)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("[]", "empty"),
        ("   \n  ", "empty"),
        ("1 2 3\n4 5", "same number"),
        ("1 x 3", "'x' is not a number"),
        ("1 2\n3 1/0", "not a number"),
        ("1 nan", "not a usable weight"),
        ("inf 1", "not a usable weight"),
        ("1e9", "not a usable weight"),
        ("\n".join(["1 " * 12] * 3), "largest allowed is 11×11"),
        ("\n".join(["1"] * 12), "largest allowed is 11×11"),
    ],
)
def test_parse_kernel_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        K.parse_kernel(text)


def test_format_kernel_round_trips_through_parse_kernel():
    for kernel in K.KERNELS.values():
        np.testing.assert_allclose(K.parse_kernel(K.format_kernel(kernel.weights)), kernel.weights, rtol=1e-5)


def _pool_reference(x, kind, size, stride):
    out_h, out_w = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
    out = np.empty((out_h, out_w) + x.shape[2:], np.float64)
    for i in range(out_h):
        for j in range(out_w):
            window = x[i * stride : i * stride + size, j * stride : j * stride + size]
            out[i, j] = window.max(axis=(0, 1)) if kind == "max" else window.mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("kind", K.POOLING)
@pytest.mark.parametrize("size, stride", [(2, 2), (3, 2), (3, 1), (4, 3)])
def test_pool_matches_a_loop(kind, size, stride, photo):
    signed = photo - 128
    for x in (signed[:, :, 0], signed):
        got = K.pool(x, kind, size, stride)
        np.testing.assert_allclose(got, _pool_reference(x, kind, size, stride), rtol=1e-5, atol=1e-4)
        assert got.shape[:2] == (K.output_size(x.shape[0], size, stride), K.output_size(x.shape[1], size, stride))


def test_pool_rejects_unknown_kind():
    with pytest.raises(ValueError, match="Pooling"):
        K.pool(np.zeros((4, 4)), "median", 2)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_explain_pixel_sum_is_the_output_value(geometry, photo):
    stride, padding, dilation = geometry
    gray = photo[:, :, 0]
    kernel = K.KERNELS["sobel_x"].weights
    out = K.convolve(gray, kernel, stride=stride, padding=padding, dilation=dilation)
    for row, col in [(0, 0), (out.shape[0] - 1, out.shape[1] - 1), (out.shape[0] // 2, out.shape[1] // 3)]:
        px = K.explain_pixel(gray, kernel, row, col, stride=stride, padding=padding, dilation=dilation)
        assert px.value == pytest.approx(float(out[row, col]), rel=1e-5, abs=1e-3)
        np.testing.assert_allclose(px.products, px.patch * kernel)
        assert px.rows[0] == row * stride - padding and px.cols[-1] == col * stride - padding + 2 * dilation
        for (i, j), value in np.ndenumerate(px.patch):
            r, c = px.rows[i], px.cols[j]
            inside = 0 <= r < gray.shape[0] and 0 <= c < gray.shape[1]
            assert value == (gray[r, c] if inside else 0.0)


def test_explain_pixel_rejects_pixels_outside_the_output(photo):
    with pytest.raises(ValueError, match="outside"):
        K.explain_pixel(photo[:, :, 0], "sobel_x", 100, 0)


def _bright_square():
    image = np.zeros((20, 20), np.float32)
    image[6:14, 6:14] = 200.0
    return image


FLASHLIGHTS = {  # name -> (lit side, side in shadow) of a bright object, as the course tells it
    "flashlight_up": ("bottom", "top"),  # positive on top, negative below: shining upward lights bottom edges
    "flashlight_down": ("top", "bottom"),
    "flashlight_left": ("right", "left"),
    "flashlight_right": ("left", "right"),
}
_EDGES = {"top": (6, 10), "bottom": (13, 10), "left": (10, 6), "right": (10, 13)}  # inner rims of _bright_square


def _luma_at(picture: Image.Image, row: int, col: int) -> float:
    return float(np.asarray(picture.convert("L"), np.float64)[row, col])


@pytest.mark.parametrize("name", FLASHLIGHTS)
def test_flashlight_kernels_light_the_edges_the_course_says(name):
    lit, shadow = FLASHLIGHTS[name]
    others = set(_EDGES) - {lit, shadow}
    out = K.convolve(_bright_square(), name, padding=1)
    assert K.KERNELS[name].weights.sum() == 0  # no centre weight adding the photo back
    assert out[10, 10] == 0 and out[1, 1] == 0  # flat areas, inside and outside, are zero
    assert out[_EDGES[lit]] > 0 > out[_EDGES[shadow]]
    assert all(out[_EDGES[side]] == 0 for side in others)  # edges along the beam are not lit
    for color in ("gray", "rgb"):  # and on screen, in both modes, the lit edge is the bright one
        picture = run_lab(Image.fromarray(_bright_square().astype(np.uint8)), LabSettings(name, color=color, padding=1))
        flat = _luma_at(picture.image, 10, 10)
        assert abs(flat - 127.5) <= 1  # mid-gray
        assert (
            _luma_at(picture.image, *_EDGES[lit]) > flat + 100 > flat - 100 > _luma_at(picture.image, *_EDGES[shadow])
        )


def test_flashlights_up_and_down_differ_on_the_coffee_cup():
    # With a centre weight of 1 both kernels added the photo back, and up and down looked alike (their
    # pictures correlated at +0.33); without it, one's lit edges are the other's shadows.
    coffee = Image.fromarray(samples.coffee())
    for color in ("gray", "rgb"):
        up, down = (
            np.asarray(run_lab(coffee, LabSettings(name, color=color)).image.convert("L"), np.float64).ravel()
            for name in ("flashlight_up", "flashlight_down")
        )
        assert np.corrcoef(up, down)[0, 1] < -0.9, color


@pytest.mark.parametrize("old, new", list(K.RENAMED.items()))
def test_old_kernel_names_still_work(old, new):
    assert old not in K.KERNELS and new in K.KERNELS
    assert K.preset(old) is K.KERNELS[new]
    np.testing.assert_array_equal(K.kernel_weights(old), K.KERNELS[new].weights)
    image = Image.fromarray(_bright_square().astype(np.uint8))
    then, now = run_lab(image, LabSettings(old)), run_lab(image, LabSettings(new))
    np.testing.assert_array_equal(then.output, now.output)
    assert then.image.tobytes() == now.image.tobytes() and then.scale == now.scale


def test_preset_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="Unknown kernel 'light_from_nowhere'; choose one of: identity"):
        K.preset("light_from_nowhere")


def test_outline_kernels_light_edges_from_inside_or_outside():
    image = _bright_square()
    centre = K.convolve(image, "outline_center", padding=1)
    periphery = K.convolve(image, "outline_periphery", padding=1)
    assert centre[6, 10] > 0 and centre[10, 10] == 0 and centre[5, 10] < 0  # inner rim positive, flat area zero
    assert periphery[5, 10] > 0 and periphery[6, 10] < 0  # outer rim lit
    for color in ("gray", "rgb"):  # light from the centre brightens the inner rim, from the periphery the outer
        settings = {"color": color, "padding": 1}
        centre = run_lab(Image.fromarray(image.astype(np.uint8)), LabSettings("outline_center", **settings)).image
        periphery = run_lab(Image.fromarray(image.astype(np.uint8)), LabSettings("outline_periphery", **settings)).image
        assert _luma_at(centre, 6, 10) > _luma_at(centre, 10, 10) + 50 > _luma_at(centre, 5, 10) + 100
        assert _luma_at(periphery, 5, 10) > _luma_at(periphery, 10, 10) + 50 > _luma_at(periphery, 6, 10) + 100


# --- Descriptions against the screen ---------------------------------------------------------------
# A description that says what the lab shows names a place and what the result is there. This small
# grammar reads those claims and checks each one against what run_lab renders for a bright square on a
# darker background, in gray and in colour mode. Colour and light words ("red", "lit", "in shadow") hold
# in both modes unless followed by "in gray mode" / "in colour mode"; sign words ("positive", "zero")
# and "keep their value" are about the numbers, the same in both modes. A visual word this grammar
# cannot tie to a place fails the test, so no claim goes unchecked.

BACKGROUND, SQUARE, LOW, HIGH = 40.0, 200.0, 20, 43  # the square covers rows and columns 20..43
_SIDES = {  # side -> (inner rim pixel, outer rim pixel), in input coordinates (row, col)
    "top": ((LOW, 32), (LOW - 1, 32)),
    "bottom": ((HIGH, 32), (HIGH + 1, 32)),
    "left": ((32, LOW), (32, LOW - 1)),
    "right": ((32, HIGH), (32, HIGH + 1)),
}
FLAT = [(8, 8), (32, 32), (56, 56)]  # far from every edge: background, inside the square, background
PLACES = [  # regex -> probes; the first group, if any, names the sides
    (r"\b(?:each|every) pixel\b", lambda m: FLAT + [p for pair in _SIDES.values() for p in pair]),
    (r"\bflat areas?\b", lambda m: FLAT),
    (r"\binner rim(?: of every bright shape)?\b", lambda m: [inner for inner, _ in _SIDES.values()]),
    (
        r"\b(?:outer rim(?: of every bright shape)?|dark side of its edges)\b",
        lambda m: [outer for _, outer in _SIDES.values()],
    ),
    (
        r"\b(?:the |their )?((?:top|bottom|left|right)(?:-hand)?(?: and (?:the )?(?:top|bottom|left|right)(?:-hand)?)?) edges(?: of bright objects)?",
        lambda m: [p for side in re.findall(r"top|bottom|left|right", m.group(1)) for p in _SIDES[side]],
    ),
    (r"\b(?:where the image gets )?brighter to the right\b", lambda m: list(_SIDES["left"])),
    (r"\b(?:where the image gets )?brighter to the left\b", lambda m: list(_SIDES["right"])),
    (r"\b(?:where the image gets )?brighter (?:downwards|below)\b", lambda m: list(_SIDES["top"])),
    (r"\b(?:where the image gets )?brighter (?:upwards|above)\b", lambda m: list(_SIDES["bottom"])),
    (r"\bbright on the left and dark on the right\b", lambda m: list(_SIDES["right"])),
    (r"\bbright above and dark below\b", lambda m: list(_SIDES["bottom"])),
]
ABOUT_THE_KERNEL = r"\b(?:positive|negative) (?:weights?|centre)\b|\bringed by (?:positives|negatives)\b|\blight from the (?:centre|periphery)\b"
APPEARANCES = [  # what a claim can say the result is, checked in check_claim
    r"\bpositive\b",
    r"\bnegative\b",
    r"\bzero\b",
    r"\bunchanged\b",
    r"\bkeep their value\b",
    r"\b(?:lit|light up|lights up)\b",
    r"\b(?:in|into) shadow\b",
    r"\bmid-gray\b",
    r"\bwhite\b",
    r"\bblack\b",
    r"\bred\b",
    r"\bblue\b",
    r"(?<!mid-)\bgr[ae]y\b(?! mode)",
]
VISUAL_WORDS = r"\b(?:positive|negative|zero|white|black|gr[ae]y(?! mode)|red|blue|lit|light|lights|lighter|shadow|dark|darker|bright|brighter)\b"
MODE = re.compile(r"\s+in (gray|colou?r)(?: mode)?\b")


def _clauses(text: str) -> list[str]:
    """Split at , ; : and . outside parentheses: a note in brackets stays with its clause."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char in ",;:.":
            out.append(text[start:i])
            start = i + 1
    return out + [text[start:]]


def visual_claims(description: str) -> list[tuple[str, list, tuple[str, ...]]]:
    """(claim, probes, modes) for every visual claim.

    Raises:
        ValueError: a visual word this grammar cannot tie to a place (reword it, or teach the grammar).
    """
    claims = []
    for clause in _clauses(description.lower()):
        clause = re.sub(ABOUT_THE_KERNEL, lambda m: "_" * len(m.group()), clause)  # words about weights
        places = [(m.start(), probes(m), m.span()) for pattern, probes in PLACES for m in re.finditer(pattern, clause)]
        covered = [span for *_, span in places]
        for pattern in APPEARANCES:
            for m in re.finditer(pattern, clause):
                before = [p for p in places if p[0] < m.start()]
                after = [p for p in places if p[0] > m.start()]
                if not (before or after):
                    raise ValueError(f"{m.group()!r} in {clause!r} names no place this test knows")
                place = max(before)[1] if before else min(after)[1]
                mode = MODE.match(clause, m.end())
                modes = ("gray", "rgb") if mode is None else ("gray" if mode.group(1) == "gray" else "rgb",)
                claims.append((m.group(), place, modes))
                covered.append(m.span())
        for m in re.finditer(VISUAL_WORDS, clause):
            if not any(a <= m.start() < b for a, b in covered):
                raise ValueError(f"unchecked visual word {m.group()!r} in {clause!r}")
    return claims


def _square() -> Image.Image:
    image = np.full((64, 64), BACKGROUND, np.uint8)
    image[LOW : HIGH + 1, LOW : HIGH + 1] = SQUARE
    return Image.fromarray(image)


def _luma(rgb) -> float:
    return float(np.dot(rgb, [0.299, 0.587, 0.114]))


def check_claim(name: str, claim: str, probes, mode: str) -> None:
    result = run_lab(_square(), LabSettings(kernel=name, color=mode))
    kh, kw = result.weights.shape
    values = result.output if result.output.ndim == 2 else result.output[:, :, 0]
    pixels = np.asarray(result.image.convert("RGB"), dtype=np.float64)
    peak = float(np.abs(values).max())

    def at(array, row, col):  # output (and picture) index of the kernel centred on input (row, col)
        return array[row - kh // 2, col - kw // 2]

    flat_luma = [_luma(at(pixels, *p)) for p in FLAT]
    for row, col in probes:
        value, rgb = float(at(values, row, col)), at(pixels, row, col)
        where = f"{name} ({mode} mode) at input ({row}, {col}): value {value:g}, colour {tuple(int(c) for c in rgb)}"
        checks = {
            "positive": value > 0.05 * peak,
            "negative": value < -0.05 * peak,
            "zero": abs(value) <= 1e-4 * peak + 1e-3,
            "unchanged": abs(value - float(np.asarray(_square())[row, col])) <= 1e-3,
            "keep their value": abs(value - float(np.asarray(_square())[row, col])) <= 1e-3,
            "lit": _luma(rgb) > max(flat_luma) + 10,
            "in shadow": _luma(rgb) < min(flat_luma) - 10,
            "mid-gray": np.all(np.abs(rgb - 127.5) <= 2),
            "white": np.all(rgb >= 235),
            "black": np.all(rgb <= 20),
            "red": rgb[0] >= rgb[2] + 40,
            "blue": rgb[2] >= rgb[0] + 40,
            "gray": np.ptp(rgb) <= 2,
        }
        key = {"light up": "lit", "lights up": "lit", "into shadow": "in shadow", "grey": "gray"}.get(claim, claim)
        assert checks[key], f"the description says {claim!r}, but {where}"


def test_the_probe_places_are_what_their_names_say():
    # The checks below are only as good as these places: flat ones see one value under an 11 x 11
    # window, an inner rim pixel is in the square with the background beside it, an outer one the reverse.
    values = np.asarray(_square(), np.float32)
    for row, col in FLAT:
        assert np.ptp(values[row - 5 : row + 6, col - 5 : col + 6]) == 0
    steps = {"top": (-1, 0), "bottom": (1, 0), "left": (0, -1), "right": (0, 1)}
    for side, (inner, outer) in _SIDES.items():
        dr, dc = steps[side]
        assert values[inner] == SQUARE and values[inner[0] + dr, inner[1] + dc] == BACKGROUND
        assert values[outer] == BACKGROUND and values[outer[0] - dr, outer[1] - dc] == SQUARE


@pytest.mark.parametrize("name", list(K.KERNELS))
def test_description_matches_what_the_lab_shows(name):
    claims = visual_claims(K.KERNELS[name].description)
    # Every description says something the screen can confirm, so this test never passes on nothing.
    assert claims, f"{name}: the description makes no claim this test can check"
    for claim, probes, modes in claims:
        assert probes, (name, claim)
        for mode in modes:
            check_claim(name, claim, probes, mode)


@pytest.mark.parametrize(
    "name, wrong",
    [
        # The substance of descriptions before the review, each contradicted by the screen.
        ("outline_center", "A positive centre ringed by negatives leaves flat areas black."),
        # What the old name "light from above" invited: light falling on the top edges.
        ("flashlight_up", "A flashlight above the image: the top edges of bright objects light up."),
        # Wrong in detail: the sign, the side, the colour, or a colour true in one mode only.
        ("sobel_x", "Horizontal change: negative where the image gets brighter to the right."),
        (
            "flashlight_left",
            "A flashlight shining to the left: the left-hand edges of bright objects come out positive.",
        ),
        ("flashlight_down", "The top edges of bright objects come out red in gray mode."),  # drawn as light now
        ("laplacian", "Second derivative: zero on flat areas (black in gray mode)."),
        ("outline_periphery", "Flat areas are zero (white)."),
        ("sharpen", "Flat areas keep their value (gray in gray mode)."),
    ],
)
def test_a_wrong_description_fails_the_check(name, wrong):
    claims = visual_claims(wrong)  # readable: it fails on what the screen shows, not on grammar
    with pytest.raises(AssertionError):
        for claim, probes, modes in claims:
            for mode in modes:
                check_claim(name, claim, probes, mode)


@pytest.mark.parametrize(
    "wrong",
    [
        "Raised-relief look: brightness changes along the diagonal turn into light and shadow.",  # emboss before
        "Light from the centre: lights the outline of every bright shape from inside.",  # which pixels?
        "Edges go dark.",
    ],
)
def test_a_visual_word_with_no_place_is_refused(wrong):
    with pytest.raises(ValueError):
        visual_claims(wrong)
