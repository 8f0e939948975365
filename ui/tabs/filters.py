"""Tab 3, Filters: what AlexNet's first layer learned, and which classic kernels it resembles."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd

from playground import kernels as K
from playground.activations import preprocess
from playground.filters import (
    FITTED,
    Match,
    conv1_grid,
    deeper_summary,
    first_conv,
    match_classic,
    match_kernel,
    side_by_side,
)
from playground.layers import layer_label
from ui import controls
from ui.handlers import user_errors
from ui.model_panel import get_model, notice_markdown
from ui.photos import open_photo, photo_with_examples, result_image

HOW = """
**How the match is made.** Each learned filter's R, G and B weights are averaged (what it does to a
gray image). Each classic kernel is placed exactly in the middle of an otherwise-zero 11 × 11 filter,
at every scale at which it stays centred: at its own size (**1×**), and blown up so that each weight
becomes an s × s block where that still leaves an equal margin on every side (a 3 × 3 kernel also at
**3×**, 9 × 9 with a one-pixel border; the 5 × 5 kernels fit at 1× only). Both are made zero-mean, so
brightness offsets do not count, and unit length, so strength does not count; the similarity is their
correlation, from −1 to 1, and each filter is scored at its best scale, shown beside it (`#12 (+0.83, 3×)`).
Both polarities count: −0.9 means the same shape with the signs flipped (it lights the opposite
edges). A box blur, flat everywhere, keeps its mean. On your photo, the classic kernel runs at the scale
it matched at. Colour-opponent filters (red against green, say) average to almost nothing and match no
classic kernel: classic kernels are colour-blind. Some classic kernels share a shape (the two outline
kernels are one shape with opposite signs; sharpen is nearly the Laplacian's negative; Sobel, Prewitt
and Scharr are close), so they share matches too.
"""
NO_PHOTO = "Add a photo to compare the classic kernel and its learned match on it."


def _scale(scale: int) -> str:
    return "stretched" if scale == FITTED else f"{scale}×"


def _scale_words(match: Match, kernel_shape: tuple[int, int], size: int) -> str:
    kh, kw = kernel_shape
    if match.scale == FITTED:
        return f"stretched to {size} × {size}, since it has no centred scale"
    if match.scale == 1:
        return f"at its own size, {kh} × {kw} in the middle of the {size} × {size} filter"
    return f"at {match.scale}×, each weight a {match.scale} × {match.scale} block ({kh * match.scale} × {kw * match.scale} in all)"


@user_errors
def filters(model_key="alexnet", request: gr.Request = None):
    """The model's conv1 grid, the classic-kernel matches, and the deeper layers in summary."""
    model, info = get_model(model_key, request)
    matches = match_classic(model, top_k=3)
    table = pd.DataFrame(
        [
            [name] + [f"#{m.filter_index} ({m.similarity:+.2f}, {_scale(m.scale)})" for m in found]
            for name, found in matches.items()
        ],
        columns=["classic kernel", "best learned filter", "second", "third"],
    )
    conv = first_conv(model)
    caption = (
        f"{conv.out_channels} filters of {conv.in_channels} × {conv.kernel_size[0]} × {conv.kernel_size[1]}, "
        "each stretched to its own full colour range (gray = 0 where a filter is balanced)."
    )
    notice = notice_markdown(info, "these filters are random noise and their matches are chance")
    deeper = [
        (
            s.image,
            f"{layer_label(model, s.name)}: {' × '.join(map(str, s.shape))}, mean |w| {s.mean_abs:.4f}, std {s.std:.4f}",
        )
        for s in deeper_summary(model)
    ]
    return conv1_grid(model), caption + ("\n\n" + notice if notice else ""), table, deeper


@user_errors
def compare(model_key="alexnet", image=None, kernel="sobel_x", rank=1, request: gr.Request = None):
    """One classic kernel and its learned match (1 = most similar) applied to the photo side by side."""
    model, _ = get_model(model_key, request)
    if kernel not in K.KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; choose one of: {', '.join(K.KERNELS)}.")
    if image is None:
        return None, None, None, NO_PHOTO
    # One kernel's matches take well under a millisecond: recomputing them beats caching per model, and
    # always sees the model's current weights.
    found = match_kernel(model, K.KERNELS[kernel].weights, top_k=3)
    match = found[min(max(int(rank or 1), 1), len(found)) - 1]
    pair = side_by_side(model, preprocess(open_photo(image)), kernel, match)
    polarity = "same sign" if match.similarity >= 0 else "opposite sign, so flipped here"
    size = first_conv(model).kernel_size[0]
    comparison = (
        f"**{kernel}** against learned filter **#{match.filter_index}**: similarity {match.similarity:+.2f} "
        f"{_scale_words(match, K.KERNELS[kernel].weights.shape, size)}; {polarity}. The classic kernel runs at "
        f"that scale on the gray photo. Their standardised responses correlate at **{pair.correlation:+.2f}**; "
        "the difference map shows where they disagree (white: they agree)."
    )
    return pair.classic, pair.learned, pair.difference, comparison


@dataclasses.dataclass(frozen=True)
class FiltersLayout:
    """The tab's components, as the layout made them, for the wiring."""

    grid: gr.Image
    caption: gr.Markdown
    table: gr.Dataframe
    image: gr.Image
    kernel: gr.Dropdown
    rank: gr.Radio
    classic: gr.Image
    learned: gr.Image
    difference: gr.Image
    comparison: gr.Markdown
    deeper: gr.Gallery


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> FiltersLayout:
    """Lay out the tab inside ``demo`` and wire its events to the model ``chooser`` (endpoints: ``/filters``,
    ``/filter_comparison``)."""
    layout = _lay_out()
    _wire(demo, chooser, layout)
    return layout


def _lay_out() -> FiltersLayout:
    with gr.Row():
        with gr.Column(scale=3):
            grid = result_image(label="conv1 · features.0: the first layer's filters", elem_id="filters-grid")
            caption = gr.Markdown(label="About these filters", elem_id="filters-caption")
        with gr.Column(scale=2):
            table = gr.Dataframe(
                label="Classic kernels and the learned filters most like them",
                interactive=False,
                max_height=560,
                elem_id="filters-matches",
            )
    gr.Markdown(HOW)
    gr.Markdown("### Classic and learned, on your photo")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            image = photo_with_examples("filters-photo")
            kernel = controls.Dropdown(
                [(k.replace("_", " "), k) for k in K.KERNELS],
                value="sobel_x",
                label="Classic kernel",
                elem_id="filters-kernel",
            )
            rank = controls.Radio([1, 2, 3], value=1, label="Learned match (1 = most similar)", elem_id="filters-rank")
        with gr.Column(scale=3):
            with gr.Row():
                classic = result_image(label="Classic kernel, at the matched scale", elem_id="filters-classic")
                learned = result_image(label="Learned filter", elem_id="filters-learned")
                difference = result_image(label="Difference", elem_id="filters-difference")
            comparison = gr.Markdown(label="Comparison", elem_id="filters-comparison")
    with gr.Accordion(
        "Deeper layers in summary (the first 32 filters of each, averaged over their inputs)", open=False
    ):
        deeper = gr.Gallery(label="conv2 … conv5", columns=1, height="auto", elem_id="filters-deeper")
    return FiltersLayout(
        grid=grid,
        caption=caption,
        table=table,
        image=image,
        kernel=kernel,
        rank=rank,
        classic=classic,
        learned=learned,
        difference=difference,
        comparison=comparison,
        deeper=deeper,
    )


def _wire(demo: gr.Blocks, chooser: gr.Dropdown, tab: FiltersLayout) -> None:
    # The model-level views change only with the model; the side by side also with photo, kernel and rank.
    gr.on(
        [demo.load, chooser.change],
        filters,
        inputs=chooser,
        outputs=[tab.grid, tab.caption, tab.table, tab.deeper],
        api_name="filters",
        trigger_mode="always_last",
    )
    gr.on(
        [demo.load, chooser.change, tab.image.change, tab.kernel.change, tab.rank.change],
        compare,
        inputs=[chooser, tab.image, tab.kernel, tab.rank],
        outputs=[tab.classic, tab.learned, tab.difference, tab.comparison],
        api_name="filter_comparison",
        trigger_mode="always_last",
    )
