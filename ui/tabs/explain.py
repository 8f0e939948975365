"""Tab 5, Explain: Captum attributions for a chosen class, one in detail or all side by side."""

from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pandas as pd

from playground import activations as A
from playground.config import get_limits
from playground.explain.attributions import (
    METHODS,
    agreement_matrix,
    attribute,
    compare,
    cover,
    sanity_check,
)
from playground.explain.views import SIGNS, VIEWS, attribution_image
from playground.layers import conv_layers, layer_label, resolve
from playground.models import BLACK, imagenet_classes
from ui import controls
from ui.background import in_background
from ui.editor import SafeImageEditor
from ui.handlers import Clock, duration, user_errors
from ui.model_panel import get_model, notice_markdown
from ui.photos import look, open_photo, photo_with_examples, result_image

TOP1 = "top-1 prediction"
SANITY_HELP = """
**The sanity check** (Adebayo et al., 2018) destroys the network from the top down, layer by layer,
and re-draws the map each time. A map that explains the *model* must change as the model is destroyed.
If it barely changes (similarity near 1 all the way down), the method was showing the photo's edges,
not what the network learned, however convincing it looked. Similarity is the rank correlation of the
two maps' absolute values (1: the same pixels matter in the same order, 0: unrelated).
"""


def _prepare(model_key, image, target, request):
    model, info = get_model(model_key, request)
    return model, info, look(model, image), None if target in (None, "", TOP1) else target


def _facts(model, info, result, probability, clock: Clock) -> str:
    lines = [
        f"**{METHODS[result.method].label}** for class **{info.classes[result.target]}** "
        f"(p = {probability:.1%}): {clock.took(('computing', result.seconds))}.",
        METHODS[result.method].description,
    ]
    if result.method == "integrated_gradients":
        lines.append(
            f"Convergence delta: **{result.delta:.2e}** (how far the attributions' sum is from the score difference "
            "between the photo and the black baseline; smaller is better, more steps make it smaller)."
        )
    elif result.delta is not None:
        lines.append(f"Convergence delta: {result.delta:.2e}.")
    if result.facts:
        shown = {k: layer_label(model, v) if k == "layer" else v for k, v in result.facts.items()}
        lines.append("Settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()) + ".")
    notice = notice_markdown(info, "these explanations explain random weights")
    return "\n\n".join(lines + ([notice] if notice else []))


def _probability(seen, index) -> float:
    return float(seen.logits[0].float().softmax(0)[index])


@user_errors
def explain(
    model_key="alexnet",
    image=None,
    target=TOP1,
    method="integrated_gradients",
    view="overlay",
    sign="absolute",
    layer="",
    n_steps=32,
    request: gr.Request = None,
):
    """One attribution method in detail: the map for the chosen class, and what went into it."""
    clock = Clock.start()
    model, info, seen, target = _prepare(model_key, image, target, request)
    result = attribute(
        model,
        seen.x,
        method,
        target,
        classes=info.classes,
        logits=seen.logits,
        black=BLACK,
        n_steps=int(n_steps),
        layer=resolve(model, layer) if layer else None,  # "conv5" or "features.10"
    )
    picture = attribution_image(result.values, A.network_view(seen.x), view=view, sign=sign, zoom=2)
    return picture, _facts(model, info, result, _probability(seen, result.target), clock)


@user_errors
def compare_all(model_key="alexnet", image=None, target=TOP1, sign="absolute", request: gr.Request = None):
    """Every method on the same photo and class, then how much each pair agrees (streams as it goes)."""
    clock = Clock.start()
    model, info, seen, target = _prepare(model_key, image, target, request)
    view = A.network_view(seen.x)
    gallery, maps, total = [], {}, 0.0
    for result in in_background(compare(model, seen.x, target, classes=info.classes, black=BLACK)):
        maps[result.method], total = result.values, total + result.seconds
        gallery.append(
            (
                attribution_image(result.values, view, sign=sign),
                f"{METHODS[result.method].label} ({duration(result.seconds)} computing)",
            )
        )
        status = f"{len(maps)} of {len(METHODS)} methods done for class **{info.classes[result.target]}**…"
        yield gallery, gr.skip(), status
    names, matrix = agreement_matrix(maps)
    labels = [METHODS[n].label for n in names]
    table = pd.DataFrame(np.round(matrix, 2), columns=labels)
    table.insert(0, "method", labels)
    mean = (matrix.sum(axis=1) - 1) / (len(names) - 1)
    best, worst = labels[int(mean.argmax())], labels[int(mean.argmin())]
    notice = notice_markdown(info, "these maps explain random weights")
    status = (
        f"All {len(names)} methods: {clock.took(('computing', total))}. Agreement is the Spearman rank correlation of the "
        f"maps' absolute values (pooled to 56 × 56): 1 means they rank the regions of the photo identically. "
        f"{best} agrees most with the others, {worst} least." + ("\n\n" + notice if notice else "")
    )
    yield gallery, table, status


@user_errors
def run_sanity_check(model_key="alexnet", image=None, target=TOP1, method="saliency", request: gr.Request = None):
    """Cascading randomisation: how the map changes as the network is destroyed from the top."""
    model, info, seen, target = _prepare(model_key, image, target, request)
    view = A.network_view(seen.x)
    gallery, rows = [], []
    for step in in_background(sanity_check(model, seen.x, method, target, classes=info.classes, black=BLACK)):
        caption = "trained" if not step.randomised else f"randomised down to {layer_label(model, step.randomised)}"
        gallery.append((attribution_image(step.values, view), f"{caption}: similarity {step.similarity:.2f}"))
        rows.append([caption, round(step.similarity, 3)])
        yield gallery, pd.DataFrame(rows, columns=["network", "similarity to the trained map"]), "Randomising…"
    final = rows[-1][1]
    verdict = (
        f"With every layer randomised the map still has similarity **{final:.2f}** to the original: it barely changed, "
        "so this map shows the photo more than the model."
        if final > 0.5
        else f"The map changed as the network was destroyed (final similarity **{final:.2f}**): it does depend on what the model learned."
    )
    notice = notice_markdown(info, "the 'trained' map is itself from random weights, so this check cannot pass")
    yield (
        gallery,
        pd.DataFrame(rows, columns=["network", "similarity to the trained map"]),
        verdict + ("\n\n" + notice if notice else ""),
    )


@user_errors
def editor_background(image):
    """Put the photo into the occlusion editor to paint on."""
    if image is None:
        return None
    photo = open_photo(image)
    return {"background": np.asarray(photo), "layers": [], "composite": np.asarray(photo)}


@user_errors
def occlude(model_key="alexnet", image=None, edited=None, request: gr.Request = None):
    """Top-5 before and after covering the painted region with the ImageNet mean colour."""
    model, info = get_model(model_key, request)
    seen = look(model, image)
    photo = open_photo(image)
    layers = [np.asarray(layer) for layer in (edited or {}).get("layers") or []]
    strokes = [
        layer[:, :, 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[2] == 4
    ]  # painted = not transparent
    strokes = [paint for paint in strokes if paint.shape == strokes[0].shape]  # the editor's layers share its canvas
    mask = np.logical_or.reduce(strokes) if strokes else np.zeros((1, 1), bool)
    if not mask.any():
        raise ValueError("Paint over part of the photo first (the brush in the editor), then press the button.")
    covered, fraction = cover(photo, mask)  # resizes the canvas-sized mask to the photo
    before = A.predict(model, seen.x, info.classes, logits=seen.logits)
    ranked = A.predict(model, A.preprocess(covered), info.classes, k=len(info.classes))
    after = ranked[:5]
    name, p_before = before[0]
    p_after = dict(ranked)[name]
    summary = f"Covering {fraction:.0%} of the photo moves **{name}** from {p_before:.1%} to **{p_after:.1%}**."
    return dict(before), dict(after), covered, summary


@user_errors
def targets(model_key="alexnet", request: gr.Request = None):
    """The classes the chosen model can be asked about."""
    _, info = get_model(model_key, request)
    return gr.update(choices=[TOP1] + list(info.classes), value=TOP1)


@user_errors
def gradcam_layers(model_key="alexnet", request: gr.Request = None):
    """The chosen model's convolutions for the Grad-CAM chooser, shown as "conv5 · features.10"."""
    model, _ = get_model(model_key, request)
    names = conv_layers(model)
    return gr.update(choices=[(layer_label(model, name), name) for name in names], value=names[-1])


@dataclasses.dataclass(frozen=True)
class ExplainLayout:
    """The tab's components, as the layout made them, for the wiring: one method in detail, every method
    side by side, the sanity check, and the occlusion editor."""

    image: gr.Image
    target: gr.Dropdown
    method: gr.Dropdown
    view: gr.Radio
    sign: gr.Radio
    layer: gr.Dropdown
    n_steps: gr.Slider
    explain_button: gr.Button
    detail: gr.Image
    facts: gr.Markdown
    compare_button: gr.Button
    compare_stop: gr.Button
    compare_status: gr.Markdown
    gallery: gr.Gallery
    agreement: gr.Dataframe
    sanity_method: gr.Dropdown
    sanity_button: gr.Button
    sanity_stop: gr.Button
    sanity_verdict: gr.Markdown
    sanity_gallery: gr.Gallery
    sanity_table: gr.Dataframe
    editor: SafeImageEditor
    covered: gr.Image
    occlude_button: gr.Button
    occlude_summary: gr.Markdown
    before: gr.Label
    after: gr.Label


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> ExplainLayout:
    """Lay out the tab inside ``demo`` and wire its events to the model ``chooser`` (main endpoint: ``/attribute``)."""
    layout = _lay_out()
    _wire(demo, chooser, layout)
    return layout


def _lay_out() -> ExplainLayout:
    return ExplainLayout(
        **_lay_out_detail(get_limits()), **_lay_out_comparison(), **_lay_out_sanity_check(), **_lay_out_occlusion()
    )


def _lay_out_detail(limits) -> dict:
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            image = photo_with_examples("explain-photo")
            target = controls.Dropdown(
                [TOP1] + list(imagenet_classes()),
                value=TOP1,
                label="Explain the class",
                allow_custom_value=True,
                elem_id="explain-target",
            )
            method = controls.Dropdown(
                [(m.label, k) for k, m in METHODS.items()],
                value="integrated_gradients",
                label="Method",
                elem_id="explain-method",
            )
            with gr.Row():
                view = controls.Radio(list(VIEWS), value="overlay", label="View")
                sign = controls.Radio(list(SIGNS), value="absolute", label="Sign")
            layer = controls.Dropdown(
                [("conv5 · features.10", "features.10")],
                value="features.10",
                label="Grad-CAM layer",
                allow_custom_value=True,
            )
            n_steps = controls.Slider(1, limits.max_ig_steps, value=32, step=1, label="Integrated Gradients steps")
            explain_button = gr.Button("Explain", variant="primary", elem_id="explain-button")
        with gr.Column(scale=2):
            detail = result_image(label="Attribution", elem_id="explain-detail")
            facts = gr.Markdown(label="About this map", elem_id="explain-facts")
    return {
        "image": image,
        "target": target,
        "method": method,
        "view": view,
        "sign": sign,
        "layer": layer,
        "n_steps": n_steps,
        "explain_button": explain_button,
        "detail": detail,
        "facts": facts,
    }


def _lay_out_comparison() -> dict:
    gr.Markdown("### Every method, side by side")
    with gr.Row():
        compare_button = gr.Button("Compare all methods", elem_id="compare-button")
        compare_stop = gr.Button("Stop", variant="stop")
    compare_status = gr.Markdown(label="Progress", elem_id="compare-status")
    gallery = gr.Gallery(label="All methods", columns=5, height="auto", elem_id="compare-gallery")
    agreement = gr.Dataframe(
        label="Agreement between methods (Spearman rank correlation of |attribution|)",
        interactive=False,
        elem_id="compare-agreement",
    )
    return {
        "compare_button": compare_button,
        "compare_stop": compare_stop,
        "compare_status": compare_status,
        "gallery": gallery,
        "agreement": agreement,
    }


def _lay_out_sanity_check() -> dict:
    with gr.Accordion("Sanity check: does the map depend on the model?", open=False):
        gr.Markdown(SANITY_HELP)
        with gr.Row():
            sanity_method = controls.Dropdown(
                [(m.label, k) for k, m in METHODS.items() if m.gradient_based], value="saliency", label="Method"
            )
            sanity_button = gr.Button("Run the sanity check")
            sanity_stop = gr.Button("Stop", variant="stop")
        sanity_verdict = gr.Markdown(label="Verdict", elem_id="sanity-verdict")
        with gr.Row():
            sanity_gallery = gr.Gallery(label="The map as layers are randomised", columns=5, height="auto")
            sanity_table = gr.Dataframe(label="Similarity to the trained model's map", interactive=False)
    return {
        "sanity_method": sanity_method,
        "sanity_button": sanity_button,
        "sanity_stop": sanity_stop,
        "sanity_verdict": sanity_verdict,
        "sanity_gallery": sanity_gallery,
        "sanity_table": sanity_table,
    }


def _lay_out_occlusion() -> dict:
    with gr.Accordion("Cover part of the photo and watch the top-5 change", open=False):
        gr.Markdown(
            "Paint over a region with the brush, then press the button: the covered pixels are set to the "
            "ImageNet mean colour (what the network reads as zero)."
        )
        with gr.Row():
            editor = SafeImageEditor(
                type="numpy",
                sources=[],
                transforms=[],
                layers=False,
                label="Paint to cover",
                brush=gr.Brush(colors=["#ff00ff"], default_size=36, color_mode="fixed"),
                elem_id="occlude-editor",
            )
            covered = result_image(label="What the network gets")
        occlude_button = gr.Button("Predict with the painted region covered", elem_id="occlude-button")
        occlude_summary = gr.Markdown(label="Effect", elem_id="occlude-summary")
        with gr.Row():
            before = gr.Label(num_top_classes=5, label="Top-5 before")
            after = gr.Label(num_top_classes=5, label="Top-5 covered", elem_id="occlude-after")
    return {
        "editor": editor,
        "covered": covered,
        "occlude_button": occlude_button,
        "occlude_summary": occlude_summary,
        "before": before,
        "after": after,
    }


def _wire(demo: gr.Blocks, chooser: gr.Dropdown, tab: ExplainLayout) -> None:
    gr.on([demo.load, chooser.change], targets, inputs=chooser, outputs=tab.target, api_name="explain_targets")
    gr.on([demo.load, chooser.change], gradcam_layers, inputs=chooser, outputs=tab.layer, api_name="gradcam_layers")
    gr.on(
        [demo.load, tab.image.change],
        editor_background,
        inputs=tab.image,
        outputs=tab.editor,
        api_name="occlusion_canvas",
    )
    gr.on(
        [tab.explain_button.click, tab.method.input, tab.view.input, tab.sign.input],
        explain,
        inputs=[chooser, tab.image, tab.target, tab.method, tab.view, tab.sign, tab.layer, tab.n_steps],
        outputs=[tab.detail, tab.facts],
        api_name="attribute",
        trigger_mode="always_last",
        concurrency_limit=get_limits().attribute_concurrency,
    )
    comparing = tab.compare_button.click(
        compare_all,
        inputs=[chooser, tab.image, tab.target, tab.sign],
        outputs=[tab.gallery, tab.agreement, tab.compare_status],
        api_name="compare",
        concurrency_limit=get_limits().compare_concurrency,
    )
    tab.compare_stop.click(None, cancels=[comparing])
    checking = tab.sanity_button.click(
        run_sanity_check,
        inputs=[chooser, tab.image, tab.target, tab.sanity_method],
        outputs=[tab.sanity_gallery, tab.sanity_table, tab.sanity_verdict],
        api_name="sanity_check",
        concurrency_limit=get_limits().sanity_check_concurrency,
    )
    tab.sanity_stop.click(None, cancels=[checking])
    tab.occlude_button.click(
        occlude,
        inputs=[chooser, tab.image, tab.editor],
        outputs=[tab.before, tab.after, tab.covered, tab.occlude_summary],
        api_name="occlude",
    )
