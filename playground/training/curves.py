"""Learning curves drawn on the server: loss and accuracy against steps, any number of runs overlaid.

Drawn with matplotlib rather than left to the browser's chart widget: Gradio 6.31's LinePlot never draws a
series that first appears in a later streamed update (validation accuracy arrives only after an epoch)
and shows its legend without entries, so a learner could not tell training from validation. A picture
also downloads as the PNG an experiment's report needs.
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")  # no display on a server

from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from playground import render  # noqa: E402


def chance_label(classes: int) -> str:
    """How a plot names the accuracy of guessing among ``classes``."""
    return f"chance: 1/{classes} = {1 / classes:.0%}"


@dataclasses.dataclass
class Curves:
    """Points of named series, added as training goes; ``figure()`` draws them."""

    loss: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)
    accuracy: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)
    classes: int = 0  # the data's classes: the accuracy panel marks chance, 1 / classes (0: not known yet)

    def add(self, panel: str, series: str, x: float, y: float) -> None:
        getattr(self, panel).setdefault(series, []).append((float(x), float(y)))

    def figure(self, *, x_label: str = "step", width_in: float = 9.0, height_in: float = 3.0) -> Figure:
        """Loss (left) and accuracy (right, 0 to 1, with chance dashed), one line per series, each with a legend."""
        figure = Figure(figsize=(width_in, height_in), dpi=100)
        for axes, (name, panel) in zip(figure.subplots(1, 2), (("Loss", self.loss), ("Accuracy", self.accuracy))):
            for series, points in panel.items():
                xs, ys = zip(*points) if points else ((), ())
                style = "o-" if len(points) <= 30 and "validation" in series else "-"  # per-epoch points show as dots
                axes.plot(xs, ys, style, label=series, linewidth=1.4, markersize=3.5)
            axes.set_title(name, fontsize=10)
            axes.set_xlabel(x_label)
            axes.grid(alpha=0.3)
            if name == "Accuracy":
                axes.set_ylim(0, 1)
                if self.classes:
                    axes.axhline(
                        1 / self.classes, color="0.35", linestyle="--", linewidth=1, label=chance_label(self.classes)
                    )
            if panel or (name == "Accuracy" and self.classes):
                axes.legend(fontsize=8, loc="best")
        render.fixed_margins(figure)
        return figure

    def image(self, **kwargs) -> Image.Image:
        """The figure as an RGB picture (read from the canvas: no PNG round trip on every redraw)."""
        return render.figure_image(self.figure(**kwargs))
