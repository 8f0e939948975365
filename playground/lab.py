"""The Convolution lab: one call takes a photo and settings and returns everything the tab shows."""

from __future__ import annotations

import dataclasses
import html

import numpy as np
from PIL import Image

from playground import kernels as K
from playground import render
from playground.config import get_limits
from playground.images import shrink_to_working_size

COLOR_MODES = ("gray", "rgb")
POOLING_CHOICES = ("none",) + K.POOLING
CUSTOM = "custom"


@dataclasses.dataclass(frozen=True)
class LabSettings:
    kernel: str = "sobel_x"  # a preset name, or "custom" with custom_kernel text
    custom_kernel: str = ""
    color: str = "gray"  # "gray": one luma channel; "rgb": each channel on its own
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    pooling: str = "none"  # "none", "max" or "avg", applied after the convolution
    pool_size: int = 2
    pool_stride: int = 2

    def weights(self) -> np.ndarray:
        if self.kernel == CUSTOM:
            return K.parse_kernel(self.custom_kernel)
        return K.kernel_weights(self.kernel)

    def light_and_shadow(self) -> bool:
        """Whether the result is drawn as light and shadow (see :attr:`playground.kernels.Kernel.light_and_shadow`)."""
        return self.kernel != CUSTOM and K.preset(self.kernel).light_and_shadow

    def validate(self) -> None:
        """Raise ``ValueError`` for any setting outside what the lab allows."""
        limits = get_limits()
        if self.color not in COLOR_MODES:
            raise ValueError(f"Colour mode must be one of {COLOR_MODES}, got {self.color!r}.")
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(f"Pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}.")
        for name, low, high in (
            ("stride", 1, limits.max_stride),
            ("padding", 0, limits.max_padding),
            ("dilation", 1, limits.max_dilation),
            ("pool_size", 1, limits.max_pool_size),
            ("pool_stride", 1, limits.max_pool_size),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or not low <= value <= high:
                raise ValueError(
                    f"{name.replace('_', ' ').capitalize()} must be a whole number from {low} to {high}, got {value}."
                )


@dataclasses.dataclass(frozen=True)
class LabResult:
    settings: LabSettings
    weights: np.ndarray  # the kernel that was applied
    input_values: np.ndarray  # (H, W) or (H, W, 3) float32: exactly what the kernel saw
    conv: np.ndarray  # convolution output, unclipped
    output: np.ndarray  # after pooling (the same array as conv when there is none)
    image: Image.Image  # output rendered, one image pixel per output value
    zoom: int  # screen pixels per result pixel when shown (see render.zoom_for): small results are drawn bigger
    scale: render.Scale
    colorbar: Image.Image
    kernel_image: Image.Image
    arithmetic: str  # Markdown: the output-size formula with the actual numbers


def input_values(image: Image.Image, color: str) -> np.ndarray:
    """The numbers a kernel sees: 0-255 luma (ITU-R 601, as PIL's "L") or the three RGB channels."""
    if color == "gray":
        return np.asarray(image.convert("L"), dtype=np.float32)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def run_lab(image: Image.Image, settings: LabSettings = LabSettings()) -> LabResult:
    """Convolve, pool and render ``image`` with ``settings``.

    Raises:
        ValueError: a setting is out of range, the custom kernel does not parse, or the kernel
            (with its dilation) does not fit in the padded image.
    """
    settings.validate()
    weights = settings.weights()
    values = input_values(image, settings.color)
    conv = K.convolve(values, weights, stride=settings.stride, padding=settings.padding, dilation=settings.dilation)
    output = conv
    if settings.pooling != "none":
        output = K.pool(conv, settings.pooling, settings.pool_size, settings.pool_stride)
    picture, scale = render_output(output, light_and_shadow=settings.light_and_shadow())
    return LabResult(
        settings=settings,
        weights=weights,
        input_values=values,
        conv=conv,
        output=output,
        image=picture,
        zoom=render.zoom_for(output.shape[1], output.shape[0]),
        scale=scale,
        colorbar=render.colorbar(scale),
        kernel_image=render.kernel_heatmap(weights),
        arithmetic=size_arithmetic(values.shape[:2], weights.shape, settings),
    )


def kernel_on(image: Image.Image, weights, name: str = "", *, max_pixels: int = 90_000) -> Image.Image:
    """What a published kernel does to ``image`` (a small gray copy, stride 1, no padding), drawn as the lab
    draws a result: light and shadow when ``name`` is a preset of that kind with exactly these numbers."""
    weights = K.kernel_weights(np.asarray(weights, dtype=np.float32))
    small = shrink_to_working_size(image, max_pixels)
    if weights.shape[0] > small.height or weights.shape[1] > small.width:
        raise ValueError("This kernel is larger than the photo.")
    light = name in K.KERNELS and K.KERNELS[name].light_and_shadow and np.array_equal(K.KERNELS[name].weights, weights)
    return render_output(K.convolve(input_values(small, "gray"), weights), light_and_shadow=light)[0]


def shown_image(result: LabResult) -> Image.Image:
    """The result as the tab shows it: each result pixel a ``zoom`` × ``zoom`` block, so a small one can be read."""
    return render.enlarge(result.image, result.zoom)


def pixel_under(result: LabResult, shown_x: int, shown_y: int) -> tuple[int, int]:
    """The result pixel (column, row) under pixel (``shown_x``, ``shown_y``) of :func:`shown_image`."""
    out_h, out_w = result.output.shape[:2]
    return min(max(shown_x // result.zoom, 0), out_w - 1), min(max(shown_y // result.zoom, 0), out_h - 1)


def patch_box(result: LabResult, x: int, y: int) -> tuple[int, int, int, int]:
    """Every input pixel result pixel (``x``, ``y``) was computed from, as (left, top, right, bottom), inclusive.

    The box is the kernel's patch (its dilated span) or, after pooling, the patches of the whole pooling window;
    it may reach past the photo's edges into the zero padding.
    """
    s = result.settings
    _check_inside(result, x, y)
    rows, cols = (y, y), (x, x)  # the convolution outputs behind the pixel, first and last
    if s.pooling != "none":
        rows = (y * s.pool_stride, y * s.pool_stride + s.pool_size - 1)
        cols = (x * s.pool_stride, x * s.pool_stride + s.pool_size - 1)
    kh, kw = result.weights.shape
    top, bottom = (r * s.stride - s.padding for r in rows)
    left, right = (c * s.stride - s.padding for c in cols)
    return left, top, right + s.dilation * (kw - 1), bottom + s.dilation * (kh - 1)


def mark_pixel(result: LabResult, x: int, y: int) -> tuple[Image.Image, Image.Image]:
    """The shown result with pixel (``x``, ``y``) ringed, and what the kernel saw with that pixel's patch boxed."""
    seen = Image.fromarray(result.input_values.astype(np.uint8))  # the 0-255 values, exactly as the kernel read them
    return render.ring_cell(shown_image(result), x, y, result.zoom), render.box_region(seen, patch_box(result, x, y))


def _check_inside(result: LabResult, x: int, y: int) -> None:
    out_h, out_w = result.output.shape[:2]
    if not (0 <= x < out_w and 0 <= y < out_h):
        raise ValueError(f"Pixel ({x}, {y}) is outside the {out_w}×{out_h} result.")


_LIGHT_AND_SHADOW = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # black, mid-gray at zero, white


def render_output(output: np.ndarray, *, light_and_shadow: bool = False) -> tuple[Image.Image, render.Scale]:
    """The result as a picture and its colour scale (:func:`playground.render.render_response`).

    With ``light_and_shadow``, a signed gray result is drawn as colour mode draws each channel: zero at
    mid-gray, positive lighter (lit), negative darker (in shadow), so a flashlight's lit edges read as light.
    """
    picture, scale = render.render_response(output)
    if light_and_shadow and scale.kind == "diverging":
        # The picture's palette indices already put zero in the middle: only the colours change.
        picture.putpalette(_LIGHT_AND_SHADOW)
        scale = dataclasses.replace(scale, kind="signed_rgb")  # colour mode's bar: a gray ramp, zero in the middle
    return picture, scale


def size_arithmetic(input_hw: tuple[int, int], kernel_hw: tuple[int, int], s: LabSettings) -> str:
    """Markdown showing ⌊(W + 2P − D·(K−1) − 1)/S⌋ + 1 worked out with this image's numbers."""
    lines = ["**Output size** = ⌊(W + 2P − D·(K − 1) − 1) / S⌋ + 1", ""]
    sizes = []
    for axis, n, k in (("width", input_hw[1], kernel_hw[1]), ("height", input_hw[0], kernel_hw[0])):
        out = K.output_size(n, k, s.stride, s.padding, s.dilation)
        lines.append(
            f"- {axis}: ⌊({n} + 2·{s.padding} − {s.dilation}·({k} − 1) − 1) / {s.stride}⌋ + 1 = "
            f"⌊{n + 2 * s.padding - s.dilation * (k - 1) - 1} / {s.stride}⌋ + 1 = **{out}**"
        )
        if s.pooling != "none":
            pooled = K.output_size(out, s.pool_size, s.pool_stride)
            lines.append(
                f"  - then {s.pooling} pooling {s.pool_size}×{s.pool_size}, stride {s.pool_stride}: "
                f"⌊({out} − {s.pool_size}) / {s.pool_stride}⌋ + 1 = **{pooled}**"
            )
            out = pooled
        sizes.append(out)
    channels = "1 channel (gray)" if s.color == "gray" else "3 channels (R, G, B), one kernel pass each"
    lines += ["", f"Input {input_hw[1]} × {input_hw[0]} → output **{sizes[0]} × {sizes[1]}**, {channels}."]
    return "\n".join(lines)


def explain_click(result: LabResult, x: int, y: int) -> str:
    """HTML: how the output pixel at column ``x``, row ``y`` of the shown result was computed."""
    s = result.settings
    _check_inside(result, x, y)
    channels = ["gray"] if result.input_values.ndim == 2 else ["red", "green", "blue"]
    parts = []
    winners = [(y, x)] * len(channels)
    if s.pooling != "none":
        r0, c0 = y * s.pool_stride, x * s.pool_stride
        window = result.conv[r0 : r0 + s.pool_size, c0 : c0 + s.pool_size]
        parts.append(
            f"<p>Result pixel (row {y}, column {x}) is the <b>{s.pooling}</b> of a {s.pool_size}×{s.pool_size} "
            f"window of the convolution output, rows {r0}–{r0 + s.pool_size - 1}, columns {c0}–{c0 + s.pool_size - 1}.</p>"
        )
        winners = []
        for index, name in enumerate(channels):
            w = window if window.ndim == 2 else window[:, :, index]
            pooled = result.output[y, x] if result.output.ndim == 2 else result.output[y, x, index]
            op = "max" if s.pooling == "max" else "mean"
            parts.append(f"<p>{name}: {op} of {_table(w)} = <b>{render.format_number(pooled)}</b></p>")
            # Follow one convolution output inside the window: this channel's winner for max, the first for mean.
            dr, dc = np.unravel_index(int(np.argmax(w)), w.shape) if s.pooling == "max" else (0, 0)
            winners.append((r0 + int(dr), c0 + int(dc)))
        parts.append("<p>Here is how the followed convolution output was computed:</p>")
    for index, name in enumerate(channels):
        values = result.input_values if result.input_values.ndim == 2 else result.input_values[:, :, index]
        row, col = winners[index]
        px = K.explain_pixel(values, result.weights, row, col, stride=s.stride, padding=s.padding, dilation=s.dilation)
        parts.append(_arithmetic_html(px, name, s))
    return "\n".join(parts)


def _arithmetic_html(px: K.PixelArithmetic, channel: str, s: LabSettings) -> str:
    span_r = f"{px.rows[0]}–{px.rows[-1]}" if len(px.rows) > 1 else f"{px.rows[0]}"
    span_c = f"{px.cols[0]}–{px.cols[-1]}" if len(px.cols) > 1 else f"{px.cols[0]}"
    note = f", every {s.dilation}th pixel (dilation {s.dilation})" if s.dilation > 1 else ""
    h, w = px.patch.shape
    pad_note = " Cells that hang over the zero padding count as 0." if s.padding else ""
    return (
        f"<div class='arith'><p><b>{channel}</b>: output (row {px.row}, column {px.col}) sees input rows "
        f"{span_r}, columns {span_c}{note}.{pad_note}</p>"
        f"<div class='arith-row'>{_table(px.patch, 'patch')}<span class='op'>×</span>"
        f"{_table(px.kernel, 'kernel')}<span class='op'>=</span>{_table(px.products, 'products')}</div>"
        f"<p>sum of the {h * w} products = <b>{render.format_number(px.value)}</b></p></div>"
    )


def _table(values: np.ndarray, caption: str = "") -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{render.format_number(v)}</td>" for v in row) + "</tr>" for row in np.atleast_2d(values)
    )
    return f"<table class='nums'>{cap}{body}</table>"


def preset_gallery(
    image: Image.Image, color: str = "gray", *, max_pixels: int = 90_000
) -> list[tuple[Image.Image, str]]:
    """Every preset applied to a small copy of ``image``: (rendered result, caption) pairs."""
    small = shrink_to_working_size(image, max_pixels)
    items = []
    for name in K.KERNELS:
        result = run_lab(small, LabSettings(kernel=name, color=color))
        items.append((result.image, name))
    return items
