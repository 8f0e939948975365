"""Tab 4, Activations & predictions: every layer's feature maps, the top-5, and a live webcam."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd

from playground import activations as A
from playground.config import get_limits
from playground.layers import layer_label, resolve
from ui import controls
from ui.handlers import user_errors
from ui.model_panel import get_model, notice_markdown
from ui.photos import look, open_photo, photo_input, photo_with_examples, result_image

DEFAULT_LAYER = "features.1"  # relu1, the ReLU after conv1: sparse maps of edges and colour blobs

# The top-5 as gr.Label draws it, but with our percentages: gr.Label rounds to whole percents in the browser,
# so an untrained model's five 0.1 % read "0%". The value keeps gr.Label's shape (label, confidences).
TOP5_TEMPLATE = """
<div class="top5" role="list">
  {{#each value.confidences}}
  <div class="top5-row" role="listitem">
    <span class="top5-name">{{this.label}}</span>
    <meter min="0" max="1" value="{{this.confidence}}" aria-label="{{this.label}}: {{this.percent}}"></meter>
    <span class="top5-percent">{{this.percent}}</span>
  </div>
  {{/each}}
</div>
"""
TOP5_CSS = """
.top5-row { display: grid; grid-template-columns: minmax(0, 1fr) 35% max-content; gap: 0.5em; align-items: center;
            margin: 0.25em 0; }
.top5-name { overflow-wrap: anywhere; }
.top5-row meter { width: 100%; }
.top5-percent { font-variant-numeric: tabular-nums; }
"""


def _layer(model, layer) -> tuple[str, str]:
    """The layer to show (asked for by its course name, ``conv4``, or torchvision's, ``features.8``) and, when
    the asked-for one does not exist in this model, a note saying so."""
    names = A.layer_names(model)
    try:
        asked = resolve(model, layer)
    except ValueError:
        asked = layer
    if asked in names:
        return asked, ""
    fallback = DEFAULT_LAYER if DEFAULT_LAYER in names else names[0]
    return fallback, f"This model has no layer {layer!r}; showing {layer_label(model, fallback)}. " if layer else ""


@user_errors
def layers(model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None):
    """The chosen model's layers for the layer chooser, shown as "conv1 · features.0" (the value sent stays
    torchvision's name)."""
    model, _ = get_model(model_key, request)
    choices = [(layer_label(model, name), name) for name in A.layer_names(model)]
    return gr.update(choices=choices, value=_layer(model, layer)[0])


@user_errors
def layers_on_load(model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None):
    """The layer chooser's choices as a page loads; a value that stays the same is left alone (a link may have
    set the chooser since this event read it)."""
    update = layers(model_key, layer, request)
    return gr.update(choices=update["choices"]) if update["value"] == layer else update


@user_errors
def activations(model_key="alexnet", image=None, layer=DEFAULT_LAYER, channel=None, request: gr.Request = None):
    """The input as the network sees it, the layer's most active channels, one channel over the photo."""
    model, info = get_model(model_key, request)
    seen = look(model, image)
    x, acts = seen.x, seen.activations
    layer, note = _layer(model, layer)
    activation = acts[layer]
    grid = A.channel_grid(activation, k=16)
    chosen = grid.channels[0] if channel is None or channel < 0 else int(channel)
    view = A.network_view(x)
    if not 0 <= chosen < A.as_maps(activation).shape[0]:  # a number left over from a wider layer
        note += f"This layer has no channel {chosen}; showing the most active one. "
        chosen = grid.channels[0]
    over = A.overlay(activation, chosen, view)
    maps = A.as_maps(activation)
    shape = " × ".join(map(str, activation.shape[1:]))
    caption = note + (
        f"**{layer_label(model, layer)}** ({shape}): the {len(grid.channels)} most active of {maps.shape[0]} channels, strongest first "
        f"(channels {', '.join(map(str, grid.channels))}). Each tile has its own colour scale (magma: dark = low). "
        f"{A.sparsity(activation):.0%} of this layer's values are exactly zero. Showing channel **{chosen}** over the photo."
    )
    stats = pd.DataFrame(
        [
            [
                layer_label(model, s.name),
                s.kind,
                " × ".join(map(str, s.shape)),
                f"{s.mean:.3f}",
                f"{s.max:.3f}",
                f"{s.sparsity:.0%}",
            ]
            for s in A.layer_stats(model, acts)
        ],
        columns=["layer", "type", "shape", "mean", "max", "zeros"],
    )
    notice = notice_markdown(info, "these maps come from random filters, not learned features")
    return view, grid.image, over, caption + ("\n\n" + notice if notice else ""), stats


@user_errors
def predict(model_key="alexnet", image=None, request: gr.Request = None):
    """Top-5 classes with their probabilities, and where the class names and weights come from."""
    model, info = get_model(model_key, request)
    seen = look(model, image)
    top = A.predict(model, seen.x, info.classes, logits=seen.logits)
    return top5_value(top), notice_markdown(info, "these predictions are guesses") or f"Weights: {info.description}."


def top5_value(top: list[tuple[str, float]]) -> dict:
    """The top-5 in gr.Label's shape, each class with its probability and the percentage shown for it."""
    return {
        "label": top[0][0] if top else None,
        "confidences": [{"label": name, "confidence": p, "percent": A.percent_text(p)} for name, p in top],
    }


@user_errors
def webcam_frame(frame, model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None):
    """One webcam frame through the network: the chosen layer's most active channels."""
    if frame is None:
        return None
    model, _ = get_model(model_key, request)
    image = open_photo(frame)
    layer, _ = _layer(model, layer)
    activation = A.capture(model, A.preprocess(image), [layer])[layer]
    return A.channel_grid(activation, k=16, tile_px=64).image


@dataclasses.dataclass(frozen=True)
class ActivationsLayout:
    """The tab's components, as the layout made them, for the wiring."""

    image: gr.Image
    layer: gr.Dropdown
    channel: gr.Number
    top5: gr.HTML
    top5_note: gr.Markdown
    view: gr.Image
    overlay: gr.Image
    grid: gr.Image
    caption: gr.Markdown
    stats: gr.Dataframe
    webcam: gr.Image
    live: gr.Image


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> ActivationsLayout:
    """Lay out the tab; returns its components (the Units tab listens to clicks on the grid; the Lessons tab's
    "Show me" sets the photo, layer and channel)."""
    tab = _lay_out()
    _wire(demo, chooser, tab)
    return tab


def _lay_out() -> ActivationsLayout:
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            image = photo_with_examples("act-photo", height=240)
            layer = controls.Dropdown(
                choices=[DEFAULT_LAYER],
                value=DEFAULT_LAYER,
                label="Layer",
                allow_custom_value=True,
                elem_id="act-layer",
            )
            channel = controls.Number(value=-1, precision=0, minimum=-1, label="Channel to zoom (-1: the most active)")
            top5 = gr.HTML(
                label="Top-5 predictions",
                show_label=True,
                container=True,
                html_template=TOP5_TEMPLATE,
                css_template=TOP5_CSS,
                js_on_load=None,
                elem_id="act-top5",
            )
            top5_note = gr.Markdown(label="About the weights", elem_id="act-top5-note")
        with gr.Column(scale=2):
            with gr.Row():
                view = result_image(
                    label="What the network sees (resized, centre-cropped 224 × 224)", elem_id="act-view"
                )
                overlay = result_image(label="Zoomed channel over the photo", elem_id="act-overlay")
            grid = result_image(label="Most active channels", elem_id="act-grid")
            caption = gr.Markdown(label="About this layer", elem_id="act-caption")
    with gr.Accordion("Every layer at a glance", open=False):
        stats = gr.Dataframe(label="Per-layer statistics for this photo", interactive=False, elem_id="act-stats")
    with gr.Accordion("Live webcam: the chosen layer, frame by frame", open=False), gr.Row():
        webcam = photo_input(
            sources=["webcam"],
            streaming=True,
            label="Webcam",
            elem_id="act-webcam",
            # The network sees a 224 x 224 crop: a 320 x 240 capture is plenty, and a quarter of VGA's bytes
            # to encode, send and decode for every frame.
            webcam_options=gr.WebcamOptions(constraints={"video": {"width": {"ideal": 320}, "height": {"ideal": 240}}}),
        )
        live = result_image(label="Feature maps, live", elem_id="act-live")
    return ActivationsLayout(
        image=image,
        layer=layer,
        channel=channel,
        top5=top5,
        top5_note=top5_note,
        view=view,
        overlay=overlay,
        grid=grid,
        caption=caption,
        stats=stats,
        webcam=webcam,
        live=live,
    )


def _wire(demo: gr.Blocks, chooser: gr.Dropdown, tab: ActivationsLayout) -> None:
    chooser.change(layers, inputs=[chooser, tab.layer], outputs=tab.layer, api_name="layers")
    demo.load(layers_on_load, inputs=[chooser, tab.layer], outputs=tab.layer, api_visibility="private")
    gr.on(
        [demo.load, chooser.change, tab.image.change, tab.layer.change, tab.channel.submit],
        activations,
        inputs=[chooser, tab.image, tab.layer, tab.channel],
        outputs=[tab.view, tab.grid, tab.overlay, tab.caption, tab.stats],
        api_name="activations",
        trigger_mode="always_last",
    )
    gr.on(
        [demo.load, chooser.change, tab.image.change],
        predict,
        inputs=[chooser, tab.image],
        outputs=[tab.top5, tab.top5_note],
        api_name="predict",
        trigger_mode="always_last",
    )
    tab.webcam.stream(
        webcam_frame,
        inputs=[tab.webcam, chooser, tab.layer],
        outputs=tab.live,
        stream_every=0.05,  # the browser sends the next frame as soon as the last result is back
        time_limit=120,
        concurrency_limit=get_limits().webcam_concurrency,
        api_name="webcam_frame",
    )
