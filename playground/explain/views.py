"""Pictures of attributions, drawn with Captum's own visualisation so they look as its users expect."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on a server

import numpy as np
import torch
from captum.attr import visualization as viz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

SIGNS = {"absolute": "absolute_value", "signed": "all", "positive": "positive", "negative": "negative"}
VIEWS = {"overlay": "blended_heat_map", "heat map": "heat_map"}


def attribution_image(
    values: torch.Tensor,
    photo: Image.Image,
    *,
    view: str = "overlay",
    sign: str = "absolute",
    title: str | None = None,
    size_in: float = 3.2,
) -> Image.Image:
    """One attribution map, as a heat map or blended over ``photo`` (the 224 × 224 crop the model saw).

    Captum sums the channels, clips the top 2 % of magnitudes as outliers, and scales to that: the same
    picture its documentation shows.
    """
    if view not in VIEWS:
        raise ValueError(f"View must be one of {', '.join(VIEWS)}, got {view!r}.")
    if sign not in SIGNS:
        raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {sign!r}.")
    attr = values.permute(1, 2, 0).numpy().astype(np.float64)
    if not np.any(attr):
        attr = attr + 1e-12  # Captum refuses an all-zero map; show it as the blank it is
    original = np.asarray(photo.convert("RGB").resize((attr.shape[1], attr.shape[0])), dtype=np.float64) / 255.0
    with np.errstate(all="ignore"):
        figure, _ = viz.visualize_image_attr(
            attr,
            original,
            method=VIEWS[view],
            sign=SIGNS[sign],
            show_colorbar=True,
            title=title,
            use_pyplot=False,
            fig_size=(size_in, size_in),
        )
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())
