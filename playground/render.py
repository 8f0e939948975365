"""Turning signed numbers into pictures a learner can read, with the scale that says what colours mean.

Rendering is kept apart from computation: functions here take arrays and return PIL images.
"""

from __future__ import annotations

import dataclasses
import functools

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

DIVERGING = "RdBu_r"  # blue = negative, white = zero, red = positive
# A result whose longer side is under this many pixels is shown enlarged (whole pixels, nearest neighbour):
# at 150 × 100 a learner could not see the pixels they were asked to click.
MIN_SHOWN_SIDE = 480
MARK = (255, 214, 0)  # the marks on a result and a photo: yellow, edged in black, visible on any colour map


@dataclasses.dataclass(frozen=True)
class Scale:
    """What the colours of a rendered response mean."""

    low: float  # value drawn at the low end of the colour bar
    high: float  # value drawn at the high end
    kind: str  # "diverging" (signed, 0 in the middle), "sequential" (0 at the low end), "signed_rgb"
    min_value: float  # the actual extremes of the data, shown next to the bar
    max_value: float


@functools.cache
def colour_table(name: str) -> np.ndarray:
    """The 256 colours of matplotlib's colour map ``name``, (256, 3) uint8, low end first (cached: read only)."""
    return (matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def _to_index(t: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(t * 255.0), 0, 255).astype(np.uint8)


def render_response(values: np.ndarray) -> tuple[Image.Image, Scale]:
    """Render convolution output (H, W) or (H, W, 3) without losing its sign or range.

    One channel with both signs goes on a diverging map, symmetric about zero; one channel that is never
    negative goes on a gray ramp from 0 to its maximum. Colour output keeps its colours: never-negative
    results are scaled by their maximum; signed ones put zero at mid-gray, so each channel brightens
    where it is positive and darkens where it is negative.
    """
    values = np.asarray(values, dtype=np.float32)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        values = np.nan_to_num(values, nan=0.0, posinf=high, neginf=low)
    signed = low < 0
    if signed:
        bound = max(abs(low), abs(high))
        offset, gain = 127.5, 127.5 / bound  # zero lands in the middle of the map
        scale = Scale(-bound, bound, "diverging" if values.ndim == 2 else "signed_rgb", low, high)
    else:
        bound = high or 1.0
        offset, gain = 0.0, 255.0 / bound
        scale = Scale(0.0, bound, "sequential", low, high)
    # torch: one fused pass on all cores, several times faster than numpy on a megapixel.
    index = torch.from_numpy(values).mul(gain).add_(offset).round_().clamp_(0, 255).to(torch.uint8).numpy()
    if values.ndim == 3:
        return Image.fromarray(np.ascontiguousarray(index)), scale
    # One channel: a palette image whose 256 colours are the map's. It decodes to exactly the colours of the
    # map, and PNG-encodes five times faster than the same picture in RGB (a third of the bytes per pixel).
    picture = Image.fromarray(np.ascontiguousarray(index)).convert("P")
    picture.putpalette(colour_table(DIVERGING) if signed else _GRAY_PALETTE)
    return picture, scale


_GRAY_PALETTE = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


@functools.cache
def label_font(size: int) -> ImageFont.ImageFont:
    """The font labels are drawn in, at ``size`` px (Pillow's own, so no font file is needed)."""
    return ImageFont.load_default(size=size)


def _bar_colours(kind: str, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    if kind == "diverging":
        return colour_table(DIVERGING)[_to_index(t)]
    return np.repeat(_to_index(t)[:, None], 3, axis=1)  # gray ramp (also signed RGB: mid-gray is 0)


def colorbar(scale: Scale, *, width: int = 360, height: int = 14, colours: np.ndarray | None = None) -> Image.Image:
    """A horizontal colour bar labelled with the values at its ends (and zero, when signed); ``colours``, a
    (256, 3) uint8 table low end first, instead of the colours of ``scale.kind``."""
    pad, label_h = 28, 18
    image = Image.new("RGB", (width + 2 * pad, height + label_h + 4), "white")
    strip = _bar_colours(scale.kind, width) if colours is None else colours[_to_index(np.linspace(0.0, 1.0, width))]
    bar = np.repeat(strip[None], height, axis=0)
    image.paste(Image.fromarray(np.ascontiguousarray(bar)), (pad, 0))
    draw = ImageDraw.Draw(image)
    font = label_font(12)
    ticks = [(0.0, scale.low), (1.0, scale.high)]
    if scale.kind != "sequential":
        ticks.insert(1, (0.5, 0.0))
    for frac, value in ticks:
        x = pad + frac * (width - 1)
        draw.line([(x, height), (x, height + 3)], fill="black")
        draw.text((x, height + 3), format_number(value), fill="black", font=font, anchor="ma")
    return image


def kernel_heatmap(weights: np.ndarray, *, cell: int = 0) -> Image.Image:
    """The kernel as coloured cells (blue negative, red positive) with each weight written in its cell."""
    weights = np.asarray(weights, dtype=np.float64)
    kh, kw = weights.shape
    cell = cell or max(30, min(72, 440 // max(kh, kw)))
    bound = float(np.abs(weights).max()) or 1.0
    colours = colour_table(DIVERGING)[_to_index((weights / bound + 1.0) * 0.5)]
    image = Image.new("RGB", (kw * cell + 1, kh * cell + 1), "white")
    draw = ImageDraw.Draw(image)
    font = label_font(max(9, cell // 3 - (2 if max(kh, kw) > 7 else 0)))
    for i in range(kh):
        for j in range(kw):
            box = (j * cell, i * cell, (j + 1) * cell, (i + 1) * cell)
            colour = tuple(int(c) for c in colours[i, j])
            draw.rectangle(box, fill=colour, outline=(120, 120, 120))
            text_colour = "white" if sum(colour) < 300 else "black"
            centre = (box[0] + cell / 2, box[1] + cell / 2)
            draw.text(centre, format_number(weights[i, j]), fill=text_colour, font=font, anchor="mm")
    return image


def format_number(value: float) -> str:
    """Short, exact-looking numbers for labels: 3, -0.5, 0.111, 1.02e+03 never; 1020 instead."""
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.2g}"  # tiny but not zero: never shown as 0
    if abs(value - round(value)) < 1e-6 * max(1.0, abs(value)) and abs(value) < 1e7:
        return f"{int(round(value))}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def zoom_for(width: int, height: int, min_side: int = MIN_SHOWN_SIDE) -> int:
    """The whole number of screen pixels per picture pixel that brings the longer side to ``min_side`` or more."""
    return max(1, -(-min_side // max(width, height, 1)))


def enlarge(picture: Image.Image, zoom: int) -> Image.Image:
    """``picture`` with each pixel drawn as a ``zoom`` × ``zoom`` block (nearest neighbour: no blur, same colours)."""
    if zoom == 1:
        return picture
    return picture.resize((picture.width * zoom, picture.height * zoom), Image.Resampling.NEAREST)


def _outline(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], width: int) -> None:
    """A yellow frame ``width`` px thick just outside ``box`` (left, top, right, bottom), edged in black."""
    left, top, right, bottom = box
    for k in range(width + 2):
        colour = MARK if k < width else (0, 0, 0)
        draw.rectangle((left - 1 - k, top - 1 - k, right + 1 + k, bottom + 1 + k), outline=colour)


def ring_cell(picture: Image.Image, x: int, y: int, zoom: int) -> Image.Image:
    """An RGB copy of an enlarged picture with a frame around picture pixel (``x``, ``y``), its ``zoom`` × ``zoom``
    block; the frame leaves a gap so the pixel's own colour stays in view, however small it is shown."""
    marked = picture.convert("RGB")
    gap = max(2, zoom // 2)
    cell = (x * zoom - gap, y * zoom - gap, (x + 1) * zoom - 1 + gap, (y + 1) * zoom - 1 + gap)
    _outline(ImageDraw.Draw(marked), cell, width=max(2, min(marked.size) // 150))
    return marked


def box_region(photo: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """An RGB copy of ``photo`` with a frame just outside pixels ``box`` (left, top, right, bottom, inclusive).

    A box reaching past the photo's edges (into zero padding) is framed where it meets the photo.
    """
    marked = photo.convert("RGB")
    left, top, right, bottom = box
    inside = (
        min(max(left, 0), marked.width - 1),
        min(max(top, 0), marked.height - 1),
        min(max(right, 0), marked.width - 1),
        min(max(bottom, 0), marked.height - 1),
    )
    # A photo is shown a third of its size or less beside the explanation: a frame a hundredth of its width
    # stays a visible line there.
    _outline(ImageDraw.Draw(marked), inside, width=max(2, max(marked.size) // 100))
    return marked


def figure_image(figure) -> Image.Image:
    """A matplotlib figure as an RGB picture: the pixels ``savefig`` would write to a PNG, read from the canvas
    without encoding and decoding one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())


def fixed_margins(figure, *, left: float = 0.6, right: float = 0.15, bottom: float = 0.5, top: float = 0.3,
                  between: float = 0.6) -> None:  # fmt: skip
    """Margins in inches, set once: matplotlib's constrained layout measured every label on every draw, half
    the time of a live training's curves, which a class's server redraws every few seconds."""
    width, height = figure.get_size_inches()
    columns = max(len(figure.axes), 1)
    panel = (width - left - right - between * (columns - 1)) / columns
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=between / panel,
    )  # fmt: skip
