"""Tab 3, Filters: what AlexNet's first layer learned, and which classic kernels it resembles."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from playground import kernels as K
from playground.activations import preprocess
from playground.filters import conv1_grid, deeper_summary, first_conv, match_classic, side_by_side
from ui.common import open_photo, photo_with_examples, result_image
from ui.model_panel import get_model, notice_markdown

HOW = """
**How the match is made.** Each classic kernel is blown up to the learned filters' size (11 × 11, each
weight becoming a block of pixels);
each learned filter's R, G and B weights are averaged (what it does to a gray image). Both are made
zero-mean, so brightness offsets do not count, and unit length, so strength does not count; the
similarity is their correlation, from −1 to 1. Both polarities count: −0.9 means the same shape with
the signs flipped (it lights the opposite edges). A box blur, flat everywhere, keeps its mean.
Colour-opponent filters (red against green, say) average to almost nothing and match no classic kernel:
classic kernels are colour-blind. Some classic kernels share a shape once blown up and centred
(identity and the outline kernels are the same shape; Sobel, Prewitt and Scharr are close), so they
share matches too.
"""


def filters(model_key="alexnet", image=None, kernel="sobel_x", rank=1, request: gr.Request = None):
    """conv1 grid, classic-kernel matches, deeper layers, and one classic kernel vs its learned match."""
    model, info = get_model(model_key, request)
    if kernel not in K.KERNELS:
        raise gr.Error(f"Unknown kernel {kernel!r}.")
    matches = match_classic(model, top_k=3)
    table = pd.DataFrame(
        [[name] + [f"#{m.filter_index} ({m.similarity:+.2f})" for m in found] for name, found in matches.items()],
        columns=["classic kernel", "best learned filter", "second", "third"],
    )
    conv = first_conv(model)
    grid_caption = (
        f"{conv.out_channels} filters of {conv.in_channels} × {conv.kernel_size[0]} × {conv.kernel_size[1]}, "
        "each stretched to its own full colour range (gray = 0 where a filter is balanced)."
    )
    deeper = [
        (s.image, f"{s.name}: {' × '.join(map(str, s.shape))}, mean |w| {s.mean_abs:.4f}, std {s.std:.4f}")
        for s in deeper_summary(model)
    ]
    rank = min(max(int(rank or 1), 1), 3)
    match = matches[kernel][rank - 1]
    images = (None, None, None)
    comparison = "Add a photo to compare the classic kernel and its learned match on it."
    if image is not None:
        pair = side_by_side(model, preprocess(open_photo(image)), kernel, match)
        images = (pair.classic, pair.learned, pair.difference)
        polarity = "same sign" if match.similarity >= 0 else "opposite sign, so flipped here"
        comparison = (
            f"**{kernel}** against learned filter **#{match.filter_index}** (similarity {match.similarity:+.2f}, "
            f"{polarity}). On your photo their standardised responses correlate at **{pair.correlation:+.2f}**; "
            "the difference map shows where they disagree (white: they agree)."
        )
    notice = notice_markdown(info, "these filters are random noise and their matches are chance")
    return conv1_grid(model), grid_caption + ("\n\n" + notice if notice else ""), table, deeper, *images, comparison


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column(scale=3):
            grid = result_image(label="conv1: the first layer's filters", elem_id="filters-grid")
            caption = gr.Markdown(label="About these filters", elem_id="filters-caption")
        with gr.Column(scale=2):
            table = gr.Dataframe(label="Classic kernels and the learned filters most like them", interactive=False, max_height=560, elem_id="filters-matches")
    gr.Markdown(HOW)
    gr.Markdown("### Classic and learned, on your photo")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            image = photo_with_examples("filters-photo")
            kernel = gr.Dropdown([(k.replace("_", " "), k) for k in K.KERNELS], value="sobel_x", label="Classic kernel")
            rank = gr.Radio([1, 2, 3], value=1, label="Learned match (1 = most similar)")
        with gr.Column(scale=3):
            with gr.Row():
                classic = result_image(label="Classic kernel", elem_id="filters-classic")
                learned = result_image(label="Learned filter", elem_id="filters-learned")
                difference = result_image(label="Difference", elem_id="filters-difference")
            comparison = gr.Markdown(label="Comparison", elem_id="filters-comparison")
    with gr.Accordion("Deeper layers in summary (the first 32 filters of each, averaged over their inputs)", open=False):
        deeper = gr.Gallery(label="conv2 … conv5", columns=1, height="auto", elem_id="filters-deeper")
    gr.on(
        [demo.load, chooser.change, image.change, kernel.change, rank.change],
        filters,
        inputs=[chooser, image, kernel, rank],
        outputs=[grid, caption, table, deeper, classic, learned, difference, comparison],
        api_name="filters",
        trigger_mode="always_last",
    )
