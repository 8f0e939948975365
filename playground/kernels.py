"""Hand-made convolution kernels and the arithmetic of sliding them over an image.

Everything here computes exactly what ``torch.nn.functional.conv2d`` computes: cross-correlation
(the kernel is not flipped) with zero padding. Pixel values are 0-255 floats and results are never
clipped, so a learner sees the true numbers.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from playground.config import get_limits


@dataclasses.dataclass(frozen=True)
class Kernel:
    weights: np.ndarray  # (kh, kw) float32, read-only
    description: str  # one plain-language line
    # Draw signed results as light and shadow (zero mid-gray, positive lighter) in gray mode too, as colour
    # mode draws every channel, rather than on the blue-white-red map: for kernels the course tells as light.
    light_and_shadow: bool = False

    def __post_init__(self):
        weights = np.array(self.weights, dtype=np.float32)
        weights.setflags(write=False)
        object.__setattr__(self, "weights", weights)


def _k(rows, description, scale=1.0, *, light_and_shadow=False):
    return Kernel(np.asarray(rows, dtype=np.float64) * scale, description, light_and_shadow)


_binomial5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
_wide_step = [[1, 1, 0, -1, -1]] * 5  # five rows: long straight edges win over texture

# Name -> kernel. The UI's preset list and the parametrised tests are both built from this dict.
# Descriptions say what the lab shows in words true in both colour modes, or name the mode: gray mode
# draws signed results blue-white-red (zero is white), colour mode puts zero at mid-gray (positive is
# lighter), and so does gray mode for a light_and_shadow kernel; never-negative results go on a gray ramp
# from black. tests/test_kernels.py reads every claim about a place (flat areas, edges, rims) and checks it
# against run_lab's rendering.
KERNELS: dict[str, Kernel] = {
    "identity": _k(
        [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
        "Copies each pixel unchanged: the centre weight is 1 and its neighbours count for nothing.",
    ),
    "box_blur": _k(
        np.ones((3, 3)),
        "Replaces each pixel by the plain average of its 3×3 neighbourhood, so flat areas keep their value.",
        1 / 9,
    ),
    "gaussian_blur": _k(
        _binomial5,
        "A softer average over 5×5 that trusts near neighbours more than far ones (weights sum to 1, so flat "
        "areas keep their value).",
        1 / 256,
    ),
    "sharpen": _k(
        [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
        "Keeps the pixel and subtracts its neighbours, so differences (details) are exaggerated and flat areas "
        "keep their value.",
    ),
    "emboss": _k(
        [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
        "Raised-relief look: the top and left edges of bright objects come out positive (red in gray mode, lit in "
        "colour mode), the bottom and right edges negative (blue in gray mode, in shadow in colour mode), and "
        "flat areas keep their value.",
    ),
    "sobel_x": _k(
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "Horizontal change: positive where the image gets brighter to the right, so it finds vertical edges.",
    ),
    "sobel_y": _k(
        [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        "Vertical change: positive where the image gets brighter downwards, so it finds horizontal edges.",
    ),
    "prewitt_x": _k(
        [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
        "Like Sobel x but every row counts equally: brighter to the right gives a positive response.",
    ),
    "prewitt_y": _k(
        [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
        "Like Sobel y but every column counts equally: brighter below gives a positive response.",
    ),
    "scharr_x": _k(
        [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
        "Like Sobel x, positive where the image gets brighter to the right, with weights 3-10-3 tuned so that, "
        "paired with Scharr y, it measures edges at every angle more evenly (better rotational symmetry).",
    ),
    "scharr_y": _k(
        [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
        "Like Sobel y, positive where the image gets brighter downwards, with weights 3-10-3 tuned so that, "
        "paired with Scharr x, it measures edges at every angle more evenly (better rotational symmetry).",
    ),
    "laplacian": _k(
        [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
        "Second derivative: zero on flat areas and smooth ramps, strong on thin lines and corners.",
    ),
    "vertical_edge": _k(
        _wide_step,
        "A wide vertical-edge finder: bright on the left and dark on the right gives a strong positive "
        "response; five rows tall, so long straight edges win over texture.",
    ),
    "horizontal_edge": _k(
        np.transpose(_wide_step),
        "A wide horizontal-edge finder: bright above and dark below gives a strong positive response; "
        "five columns wide, so long straight edges win over texture.",
    ),
    # The flashlight kernels, as the course pictures them: a kernel with positive numbers on top and
    # negative ones below is "a flashlight shining upward", which lights the bottom edges of objects.
    # Named for the way the flashlight shines; zero-sum (no centre weight adding the photo back), so flat
    # areas are 0 and only the edges the light falls on come out lit.
    "flashlight_up": _k(
        [[0, 1, 0], [0, 0, 0], [0, -1, 0]],
        "A flashlight shining upward: +1 above the centre and −1 below it, so each result pixel is the pixel "
        "above minus the pixel below: the bottom edges of bright objects are lit and their top edges in shadow, "
        "and flat areas are zero (mid-gray).",
        light_and_shadow=True,
    ),
    "flashlight_down": _k(
        [[0, -1, 0], [0, 0, 0], [0, 1, 0]],
        "A flashlight shining downward: −1 above the centre and +1 below it, so each result pixel is the pixel "
        "below minus the pixel above: the top edges of bright objects are lit and their bottom edges in shadow, "
        "and flat areas are zero (mid-gray).",
        light_and_shadow=True,
    ),
    "flashlight_left": _k(
        [[0, 0, 0], [1, 0, -1], [0, 0, 0]],
        "A flashlight shining to the left: +1 left of the centre and −1 right of it, so each result pixel is the "
        "pixel on the left minus the pixel on the right: the right-hand edges of bright objects are lit and "
        "their left-hand edges in shadow, and flat areas are zero (mid-gray).",
        light_and_shadow=True,
    ),
    "flashlight_right": _k(
        [[0, 0, 0], [-1, 0, 1], [0, 0, 0]],
        "A flashlight shining to the right: −1 left of the centre and +1 right of it, so each result pixel is "
        "the pixel on the right minus the pixel on the left: the left-hand edges of bright objects are lit and "
        "their right-hand edges in shadow, and flat areas are zero (mid-gray).",
        light_and_shadow=True,
    ),
    # The outline kernels: the course's "light coming from the center or from the periphery" of a shape.
    "outline_center": _k(
        [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
        "Light from the centre: a positive centre ringed by negatives makes the inner rim of every bright shape "
        "positive and lit, and its outer rim negative and in shadow; flat areas are zero (mid-gray).",
        light_and_shadow=True,
    ),
    "outline_periphery": _k(
        [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
        "Light from the periphery: a negative centre ringed by positives makes the outer rim of every bright shape "
        "(the dark side of its edges) positive and lit, and its inner rim negative and in shadow; flat areas are "
        "zero (mid-gray).",
        light_and_shadow=True,
    ),
}

# Preset names from before issue #19 -> today's, so a saved API call or script keeps working.
RENAMED: dict[str, str] = {
    "light_from_above": "flashlight_up",
    "light_from_below": "flashlight_down",
    "light_from_left": "flashlight_left",
    "light_from_right": "flashlight_right",
}


def preset(name: str) -> Kernel:
    """The preset called ``name`` (today's name or one in :data:`RENAMED`).

    Raises:
        ValueError: no preset has that name.
    """
    name = RENAMED.get(name, name)
    if name not in KERNELS:
        raise ValueError(f"Unknown kernel {name!r}; choose one of: {', '.join(KERNELS)}.")
    return KERNELS[name]


def parse_kernel(text: str) -> np.ndarray:
    """Read a kernel typed as rows of numbers (spaces, commas or semicolons between them).

    Fractions like ``1/9`` are allowed. Every row must have the same length, 1 to 11 numbers.

    Returns:
        A (kh, kw) float32 array.

    Raises:
        ValueError: with a message saying which row or number is wrong.
    """
    max_side = get_limits().max_kernel_side
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The kernel is empty: type rows of numbers, one row per line, e.g. `-1 0 1`.")
    lines = [line for line in re.split(r"[\n;]+", text.strip().strip("[]")) if line.strip(" \t,[]")]
    if not lines:
        raise ValueError("The kernel is empty: type rows of numbers, one row per line, e.g. `-1 0 1`.")
    rows = []
    for row_number, line in enumerate(lines, start=1):
        tokens = [t for t in re.split(r"[\s,]+", line.strip(" \t[],")) if t]
        rows.append([_parse_number(token, row_number) for token in tokens])
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        counts = ", ".join(str(len(row)) for row in rows)
        raise ValueError(f"Every row of the kernel must have the same number of values; the rows have {counts}.")
    height, width = len(rows), widths.pop()
    if height > max_side or width > max_side:
        raise ValueError(f"The kernel is {height}×{width}; the largest allowed is {max_side}×{max_side}.")
    return np.asarray(rows, dtype=np.float32)


def _parse_number(token: str, row_number: int) -> float:
    try:
        if "/" in token:
            numerator, denominator = token.split("/")
            value = float(numerator) / float(denominator)
        else:
            value = float(token)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"Row {row_number}: {token!r} is not a number.") from None
    if not np.isfinite(value) or abs(value) > 1e6:
        raise ValueError(f"Row {row_number}: {token!r} is not a usable weight (keep weights within ±1,000,000).")
    return value


def format_kernel(weights: np.ndarray) -> str:
    """The editor's text for ``weights``: one line per row, numbers as short as they can be."""
    return "\n".join(" ".join(f"{value:.6g}" for value in row) for row in np.asarray(weights))


def output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of a convolution's output along one axis: ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1.

    Raises:
        ValueError: the arguments are out of range or the (dilated) kernel does not fit.
    """
    _check_geometry(stride, padding, dilation)
    if n < 1 or k < 1:
        raise ValueError(f"Sizes must be positive, got input {n} and kernel {k}.")
    span = dilation * (k - 1) + 1
    if n + 2 * padding < span:
        raise ValueError(
            f"The kernel spans {span} pixels (size {k}, dilation {dilation}) but the padded input is only "
            f"{n + 2 * padding} pixels; add padding or use a smaller kernel."
        )
    return (n + 2 * padding - span) // stride + 1


def _check_geometry(stride: int, padding: int, dilation: int) -> None:
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"The {name} must be a whole number of at least {low}, got {value}.")


def as_float_image(image) -> np.ndarray:
    """A PIL image or array as float32 (H, W) or (H, W, C), values unchanged (0-255 for photos)."""
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) and image.mode != "L" else image)
    if array.ndim not in (2, 3):
        raise ValueError(f"An image must be (H, W) or (H, W, C), got shape {array.shape}.")
    return array.astype(np.float32, copy=False)


def convolve(image, kernel, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> np.ndarray:
    """Slide ``kernel`` over ``image`` exactly as ``torch.nn.functional.conv2d`` does.

    Args:
        image: (H, W) gray or (H, W, C) colour values (array or PIL image); colour channels are
            convolved one by one with the same kernel.
        kernel: a (kh, kw) array or the name of a preset in :data:`KERNELS`.
        stride, padding, dilation: as in ``conv2d``; padding adds zeros.

    Returns:
        float32 array (H', W') or (H', W', C), unclipped.
    """
    weights = kernel_weights(kernel)
    values = as_float_image(image)
    out_h = output_size(values.shape[0], weights.shape[0], stride, padding, dilation)
    out_w = output_size(values.shape[1], weights.shape[1], stride, padding, dilation)
    x = torch.from_numpy(np.ascontiguousarray(values))
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))  # zeros, as conv2d pads
    # Shift and add: one multiply-add of a shifted (and strided) view per non-zero weight. For the
    # kernels of this lab (at most 11x11, one kernel per channel) this is several times faster on a
    # CPU than conv2d, which has no fast path for one input channel, and it is the same sum.
    y = torch.zeros(x.shape[0], out_h, out_w)
    for (i, j), weight in np.ndenumerate(weights):
        if weight == 0:
            continue
        r, c = i * dilation, j * dilation
        y.add_(
            x[:, r : r + stride * (out_h - 1) + 1 : stride, c : c + stride * (out_w - 1) + 1 : stride],
            alpha=float(weight),
        )
    y = y[0] if values.ndim == 2 else y.permute(1, 2, 0)
    return np.ascontiguousarray(y.numpy())


def kernel_weights(kernel) -> np.ndarray:
    """Resolve a preset name or array to a finite 2-D float32 array."""
    if isinstance(kernel, str):
        return preset(kernel).weights
    if isinstance(kernel, Kernel):
        return kernel.weights
    weights = np.asarray(kernel, dtype=np.float32)
    if weights.ndim != 2 or 0 in weights.shape:
        raise ValueError(f"A kernel must be a 2-D grid of numbers, got shape {weights.shape}.")
    if not np.isfinite(weights).all():
        raise ValueError("A kernel's weights must all be finite numbers.")
    return weights


POOLING = ("max", "avg")


def pool(x: np.ndarray, kind: str, size: int, stride: int | None = None) -> np.ndarray:
    """Max or average pooling over (H, W) or (H, W, C) values, no padding, as ``torch.nn`` does it."""
    if kind not in POOLING:
        raise ValueError(f"Pooling must be one of {POOLING}, got {kind!r}.")
    stride = size if stride is None else stride
    if int(size) != size or size < 1:
        raise ValueError(f"The pooling size must be a whole number of at least 1, got {size}.")
    values = np.asarray(x, dtype=np.float32)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"The pooling stride must be a whole number of at least 1, got {stride}.")
    if size > min(values.shape[:2]):
        raise ValueError(
            f"The {size}×{size} pooling window is larger than the {values.shape[1]}×{values.shape[0]} result it "
            "pools; use a smaller pool size."
        )
    t = torch.from_numpy(np.ascontiguousarray(values))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    pooled = (F.max_pool2d if kind == "max" else F.avg_pool2d)(t, kernel_size=size, stride=stride)
    pooled = pooled[0, 0] if values.ndim == 2 else pooled[0].permute(1, 2, 0)
    return np.ascontiguousarray(pooled.numpy())


@dataclasses.dataclass(frozen=True)
class PixelArithmetic:
    """How one output pixel came to be: the patch it saw, times the kernel, summed."""

    row: int
    col: int
    rows: tuple[int, ...]  # input row of each kernel row (may be outside the image: padding)
    cols: tuple[int, ...]
    patch: np.ndarray  # (kh, kw) input values under the kernel, 0 where it hangs over the padding
    kernel: np.ndarray  # (kh, kw)
    products: np.ndarray  # patch * kernel
    value: float  # products.sum()


def explain_pixel(
    values: np.ndarray, kernel, row: int, col: int, *, stride: int = 1, padding: int = 0, dilation: int = 1
) -> PixelArithmetic:
    """The patch × kernel = value sum behind output pixel (``row``, ``col``) of a one-channel image."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError("explain_pixel works on one channel: pass an (H, W) array.")
    weights = kernel_weights(kernel)
    out_h = output_size(values.shape[0], weights.shape[0], stride, padding, dilation)
    out_w = output_size(values.shape[1], weights.shape[1], stride, padding, dilation)
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"Output pixel ({row}, {col}) is outside the {out_h}×{out_w} output.")
    rows = tuple(row * stride - padding + i * dilation for i in range(weights.shape[0]))
    cols = tuple(col * stride - padding + j * dilation for j in range(weights.shape[1]))
    padded = np.pad(values, padding)
    patch = padded[np.ix_([r + padding for r in rows], [c + padding for c in cols])]
    products = patch * weights
    # Sum in float64 so the shown total does not depend on summation order.
    return PixelArithmetic(row, col, rows, cols, patch, weights, products, float(products.sum(dtype=np.float64)))
