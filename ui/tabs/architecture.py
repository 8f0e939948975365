"""Tab 2, Architecture: every layer's shape, parameters, multiply-adds, memory and receptive field."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd

from playground.architecture import params_by_layer, totals, trace
from ui.handlers import user_errors
from ui.model_panel import get_model

COLUMNS = [
    "layer",
    "type",
    "output shape",
    "parameters",
    "= formula",
    "multiply-adds",
    "activations (KB)",
    "receptive field",
    "stride",
    "position 0 sees (pixels)",
]
# The table's box is tall enough for every row of the longest variant (the paper's net with batch norm: 29
# layers and the total), so nothing scrolls inside it; Gradio draws a row in about 35 px.
ROW_PX = 40
MOST_ROWS = 40

EXPLAIN = """
**Names.** Each layer has the course's name and torchvision's beside it: *conv1 · features.0*. The
convolutions are conv1 … conv5 and the fully connected layers fc6 … fc8, as in the paper; the ReLU, LRN
(*norm*) and dropout next to a layer carry its number (relu1 follows conv1); the max pools are counted
on their own (pool1 … pool3). The torchvision name is what weights and hooks use; the Activations and
Grad-CAM layer choosers (and their HTTP endpoints) take either name.

**How to read it.** A convolution with *C_out* filters of size *k × k* over *C_in* input channels has
*C_out × C_in × k × k* weights plus *C_out* biases (with *g* groups each filter sees only *C_in / g*
channels). A fully connected layer from *n* to *m* units has *n × m + m*. ReLU, pooling, LRN and dropout
have no parameters. **Multiply-adds** are what one image costs: each output value of a convolution
takes *C_in / g × k × k* of them. The **receptive field** is how many input pixels (per side) one
value can see, and the **stride** how far apart, in input pixels, neighbouring values look: both grow
layer by layer, which is how deep layers come to see whole objects. **Position 0 sees** the rows (and
columns) of input pixels the first value of a map looks at: padding makes it start before pixel 0;
position *i* sees the same window moved *i × stride* pixels on (the Units tab draws these boxes). Once the maps are flattened into
the fully connected layers, every value sees the whole image.
"""


def _shape(shape) -> str:
    return " × ".join(str(s) for s in shape)


@user_errors
def architecture(model_key="alexnet", request: gr.Request = None):
    """The layer table, where the parameters live, and the totals for the chosen model."""
    model, info = get_model(model_key, request)
    rows = trace(model)
    sums = totals(rows)
    table = pd.DataFrame(
        [
            [
                r.label,
                r.kind,
                _shape(r.output_shape),
                f"{r.params:,}",
                r.params_formula if r.params else "",
                f"{r.macs:,}",
                f"{r.activation_bytes / 1024:,.1f}",
                "whole image" if r.receptive_field is None else f"{r.receptive_field} × {r.receptive_field}",
                "" if r.stride is None else str(r.stride),
                "" if r.offset is None else f"{r.offset} … {r.offset + r.receptive_field - 1}",
            ]
            for r in rows
        ]
        + [["total", "", "", f"{sums['params']:,}", "", f"{sums['macs']:,}", f"{sums['activation_bytes'] / 1024:,.1f}", "", "", ""]],
        columns=COLUMNS,
    )  # fmt: skip
    chart = pd.DataFrame(params_by_layer(rows), columns=["layer", "parameters"])
    biggest = max(rows, key=lambda r: r.params)
    summary = (
        f"**{info.name}**: {sums['params']:,} parameters ({sums['params'] * 4 / 1024**2:,.0f} MB as float32), "
        f"{sums['macs'] / 1e9:.2f} billion multiply-adds per 224 × 224 image, "
        f"{sums['activation_bytes'] / 1024**2:.1f} MB of activations. "
        f"The largest layer, {biggest.label}, holds {biggest.params / sums['params']:.0%} of all parameters."
    )
    return table, chart, summary


@dataclasses.dataclass(frozen=True)
class ArchitectureLayout:
    """The tab's components, as the layout made them, for the wiring."""

    summary: gr.Markdown
    table: gr.Dataframe
    chart: gr.BarPlot


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> ArchitectureLayout:
    """Lay out the tab inside ``demo`` and wire its events to the model ``chooser`` (endpoint: ``/architecture``)."""
    layout = _lay_out()
    _wire(demo, chooser, layout)
    return layout


def _lay_out() -> ArchitectureLayout:
    summary = gr.Markdown(label="Summary", elem_id="arch-summary")
    table = gr.Dataframe(
        headers=COLUMNS,
        label="Layer by layer (input 3 × 224 × 224)",
        interactive=False,
        max_height=MOST_ROWS * ROW_PX,
        elem_id="arch-table",
    )
    chart = gr.BarPlot(
        x="layer",
        y="parameters",
        label="Where the parameters live",
        sort=None,
        height=320,
        x_label_angle=-30,
        elem_id="arch-chart",
    )
    gr.Markdown(EXPLAIN)
    return ArchitectureLayout(summary=summary, table=table, chart=chart)


def _wire(demo: gr.Blocks, chooser: gr.Dropdown, tab: ArchitectureLayout) -> None:
    gr.on(
        [demo.load, chooser.change],
        architecture,
        inputs=chooser,
        outputs=[tab.table, tab.chart, tab.summary],
        api_name="architecture",
    )
