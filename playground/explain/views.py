"""Pictures of attributions, coloured as Captum's own visualisation colours them.

Captum's ``visualize_image_attr`` builds a matplotlib figure for every picture (about 60 ms for a 224 × 224
map, a fifth of a class's busy server); here the same normalisation and colour map (Captum's own functions)
are applied to the pixels directly and the colour bar is drawn by :mod:`playground.render`.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from captum.attr._utils.visualization import _initialize_cmap_and_vmin_vmax, _normalize_attr
from PIL import Image, ImageDraw

from playground import render

SIGNS = {"absolute": "absolute_value", "signed": "all", "positive": "positive", "negative": "negative"}
VIEWS = {"overlay": "blended_heat_map", "heat map": "heat_map"}
OUTLIERS = 2  # per cent of the largest magnitudes clipped, as Captum does by default
OVERLAY_ALPHA = 0.5  # the heat map's opacity over the gray photo, Captum's default


def normalised(values: torch.Tensor, sign: str = "absolute") -> np.ndarray:
    """(H, W) in [-1, 1] (signed) or [0, 1]: channels summed, the top 2 % clipped, scaled to that (Captum's)."""
    if sign not in SIGNS:
        raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {sign!r}.")
    attr = values.detach().double().sum(0).numpy()
    if not np.any(attr):
        attr = attr + 1e-12  # Captum refuses an all-zero map; show it as the blank it is
    with np.errstate(all="ignore"):
        return _normalize_attr(attr, SIGNS[sign], OUTLIERS)


def colour_map(sign: str = "absolute") -> tuple[matplotlib.colors.Colormap, float, float]:
    """Captum's colour map for ``sign`` and the values at its ends."""
    cmap, low, high = _initialize_cmap_and_vmin_vmax(SIGNS[sign])
    return (matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap), float(low), float(high)


def attribution_image(
    values: torch.Tensor,
    photo: Image.Image,
    *,
    view: str = "overlay",
    sign: str = "absolute",
    title: str | None = None,
    zoom: int = 1,
) -> Image.Image:
    """One attribution map, as a heat map or blended over ``photo`` (the crop the model saw), each map pixel
    ``zoom`` × ``zoom`` screen pixels, with its colour bar below (and ``title`` above)."""
    if view not in VIEWS:
        raise ValueError(f"View must be one of {', '.join(VIEWS)}, got {view!r}.")
    norm = normalised(values, sign)
    cmap, low, high = colour_map(sign)
    heat = cmap(np.clip((norm - low) / (high - low), 0.0, 1.0))[..., :3]
    if view == "overlay":  # Captum: the photo's gray (stretched to its own range), the heat map over it
        gray = np.asarray(photo.convert("RGB").resize(norm.shape[::-1]), dtype=np.float64).mean(axis=2)
        span = gray.max() - gray.min()
        gray = (gray - gray.min()) / span if span else np.zeros_like(gray)
        heat = OVERLAY_ALPHA * heat + (1 - OVERLAY_ALPHA) * gray[..., None]
    picture = Image.fromarray(np.rint(heat * 255).astype(np.uint8))
    picture = render.enlarge(picture, zoom)
    table = (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    kind = "diverging" if low < 0 else "sequential"
    bar = render.colorbar(render.Scale(low, high, kind, low, high), width=max(picture.width - 56, 120), colours=table)
    top = 22 if title else 0
    sheet = Image.new("RGB", (max(picture.width, bar.width), top + picture.height + 6 + bar.height), "white")
    sheet.paste(picture, ((sheet.width - picture.width) // 2, top))
    sheet.paste(bar, ((sheet.width - bar.width) // 2, top + picture.height + 6))
    if title:
        ImageDraw.Draw(sheet).text((sheet.width / 2, 3), title, fill="black", font=render.label_font(14), anchor="ma")
    return sheet
