"""Tab 1, the Convolution lab: hand-made kernels on the learner's own photo."""

from __future__ import annotations

import dataclasses
import functools
import inspect

import gradio as gr

from playground import kernels as K
from playground.config import get_limits
from playground.lab import (
    CUSTOM,
    POOLING_CHOICES,
    LabSettings,
    explain_click,
    mark_pixel,
    pixel_under,
    preset_gallery,
    run_lab,
    shown_image,
)
from playground.render import format_number
from ui import controls
from ui.handlers import bounded, user_errors
from ui.photos import example_paths, open_photo, photo_input, result_image
from ui.state import KERNELS, session_of

INTRO = """
A **kernel** is a small grid of weights. Slide it over the photo; at every position multiply the
pixels under it by the weights and add the products up: that sum is one pixel of the result.
Pick a preset or type your own, change stride, padding and dilation, and **click any pixel of the
result** to see its sum worked out.
"""
DEFAULT_KERNEL = "sobel_x"
# The lab's nine settings, named as LabSettings' fields, each with the value a caller who leaves it out
# gets. Every handler takes them in this order after the photo, and HTTP callers pass them by position,
# so this order is the API: the handlers' signatures and the wiring's input lists are made from it.
SETTINGS = {
    "kernel": DEFAULT_KERNEL,
    "custom_kernel": "",
    "color": "gray",
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "pooling": "none",
    "pool_size": 2,
    "pool_stride": 2,
}


def _label(name: str) -> str:
    return name.replace("_", " ")


class KernelChooser(controls.Dropdown):
    """The preset chooser; a preset's name from before a rename (in a saved API call) is read as today's."""

    is_template = True

    def preprocess(self, payload):
        return super().preprocess(K.RENAMED.get(payload, payload) if isinstance(payload, str) else payload)


def lab_settings(values) -> LabSettings:
    """The nine values, in :data:`SETTINGS` order, as the LabSettings they stand for; an empty choice or
    text takes its default, a number is made a whole one (LabSettings then checks its range)."""
    named = zip(SETTINGS.items(), values, strict=True)
    return LabSettings(
        **{name: int(value) if isinstance(default, int) else value or default for (name, default), value in named}
    )


def _takes_settings(*, defaults: bool, fixed: dict | None = None, then: tuple[str, ...] = ()):
    """Write a handler as ``fn(image, settings, *then)``, ``settings`` the nine values in SETTINGS order;
    Gradio, HTTP clients and tests call it as ``fn(image, kernel, custom_kernel, …, pool_stride, *then)``.

    Gradio documents an endpoint's parameters (and whether each has a default) from its signature and
    clients fill them by position, so the signature is made here from SETTINGS, once for every handler.

    Args:
        defaults: whether callers may leave settings out (they then get SETTINGS' values).
        fixed: settings the handler decides itself; they are not parameters.
        then: the parameters after the settings.
    """
    fixed = fixed or {}
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    empty = inspect.Parameter.empty
    signature = inspect.Signature(
        [inspect.Parameter("image", kind)]
        + [
            inspect.Parameter(name, kind, default=default if defaults else empty)
            for name, default in SETTINGS.items()
            if name not in fixed
        ]
        + [inspect.Parameter(name, kind) for name in then]
    )

    def decorate(fn):
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            given = signature.bind(*args, **kwargs)
            given.apply_defaults()
            values = given.arguments
            settings = tuple(fixed[name] if name in fixed else values[name] for name in SETTINGS)
            return fn(values["image"], settings, *(values[name] for name in then))

        handler.__signature__ = signature
        return handler

    return decorate


@user_errors
@_takes_settings(defaults=True)
def apply_kernel(image, settings):
    """Convolve the photo with a kernel; returns the result, its colour scale, the kernel, the size arithmetic
    and the status beside the editor.

    A kernel or setting the lab refuses (a typo in the editor) leaves the four as they are (``gr.skip()``) and
    puts the reason in the status, where it stays until a kernel works; a photo that cannot be read is an
    error, as everywhere.
    """
    if image is None:  # the photo was cleared: clear the results rather than complain
        return None, None, None, "Upload a photo, use the webcam, or click an example to begin.", ""
    photo = open_photo(image)
    try:
        result = run_lab(photo, lab_settings(settings))
    except ValueError as error:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), bounded(f"**Not applied:** {error}")
    shrunk = ""
    if "original_size" in photo.info:
        width, height = photo.info["original_size"]
        shrunk = f"\n\nYour photo is {width} × {height}; the lab works on a copy shrunk to {photo.width} × {photo.height} (1 megapixel)."
    values = (
        f"\n\nResult values run from **{format_number(result.scale.min_value)}** to "
        f"**{format_number(result.scale.max_value)}** (nothing is clipped; the colour bar shows the scale)."
    )
    zoomed = ""
    if result.zoom > 1:
        width, height = result.image.size
        zoomed = (
            f"\n\nShown {result.zoom}× larger so its pixels can be seen: each of the {width} × {height} result "
            f"pixels is a {result.zoom} × {result.zoom} block. Clicks and the numbers count result pixels."
        )
    return shown_image(result), result.colorbar, result.kernel_image, result.arithmetic + shrunk + zoomed + values, ""


@user_errors
@_takes_settings(defaults=False, fixed={"kernel": CUSTOM})
def apply_custom_kernel(image, settings):
    """The editor's kernel, whatever the preset chooser shows; the chooser then says "custom" (unless the
    kernel was refused: then, as the pictures, it stays as it is)."""
    *shown, status = apply_kernel(image, *settings)
    return (*shown, status, gr.skip() if status else CUSTOM)


@user_errors
@_takes_settings(defaults=False, then=("x", "y"))
def explain_pixel(image, settings, x, y):
    """The patch × kernel = value arithmetic behind result pixel (x, y)."""
    if x is None or y is None:
        raise ValueError("Click a pixel of the result, or type its column (x) and row (y).")
    result = run_lab(open_photo(image), lab_settings(settings))
    return explain_click(result, int(x), int(y))


@user_errors
def remember_settings(request: gr.Request, status, *settings):  # the request first: *settings takes the rest
    """After an apply: keep the settings that made the picture (a click is explained with these, not with
    whatever the controls show now) and clear the old explanation and patch; after one refused (``status``
    says why), keep those of the picture still on screen. The kernel is the session's to publish to a class."""
    if status:
        return gr.skip(), gr.skip(), gr.skip()
    applied = lab_settings(settings)
    KERNELS.remember(session_of(request), applied.kernel, applied.weights().tolist())
    return list(settings), "", None


def _applied_result(image, applied):
    """The LabResult behind the picture on screen (``applied``: the settings that made it)."""
    if not applied:
        raise ValueError("Apply a kernel first.")
    return run_lab(open_photo(image), lab_settings(applied))


@user_errors
def pick_pixel(image, applied, evt: gr.SelectData):
    """A click on the result: the column and row of the result pixel under the pointer (the picture may be shown
    enlarged), its arithmetic, the result with that pixel ringed and the photo with the patch it read boxed."""
    result = _applied_result(image, applied)
    x, y = pixel_under(result, int(evt.index[0]), int(evt.index[1]))
    return x, y, explain_click(result, x, y), *mark_pixel(result, x, y)


@user_errors
def mark_applied(image, applied, x, y):
    """Result pixel (``x``, ``y``) ringed on the picture on screen, and the patch it read boxed on the photo."""
    return mark_pixel(_applied_result(image, applied), int(x), int(y))


@user_errors
def describe_kernel(kernel):
    """The preset's one-line explanation, and its numbers copied into the editor to start from."""
    if kernel == CUSTOM or kernel not in K.KERNELS:
        return "**Custom kernel**: type rows of numbers in the editor, then press *Apply*.", gr.skip()
    return f"**{_label(kernel)}**: {K.KERNELS[kernel].description}", K.format_kernel(K.KERNELS[kernel].weights)


@user_errors
def switch_to_custom():
    return CUSTOM


@user_errors
def all_presets(image, color="gray"):
    """Every preset kernel applied to a small copy of the photo."""
    return preset_gallery(open_photo(image), color or "gray")


@dataclasses.dataclass(frozen=True)
class LabLayout:
    """The lab's components, as the layout made them, for the wiring; the nine settings are named as in SETTINGS."""

    image: gr.Image
    kernel: gr.Dropdown
    description: gr.Markdown
    custom_kernel: gr.Textbox
    apply_button: gr.Button
    color: gr.Radio
    stride: gr.Slider
    padding: gr.Slider
    dilation: gr.Slider
    pooling: gr.Radio
    pool_size: gr.Slider
    pool_stride: gr.Slider
    result: gr.Image
    colorbar: gr.Image
    kernel_image: gr.Image
    arithmetic: gr.Markdown
    status: gr.Markdown  # beside the editor: why the last kernel or setting was not applied
    x: gr.Number
    y: gr.Number
    explain_button: gr.Button
    explanation: gr.HTML
    patch: gr.Image  # the photo as the kernel saw it, the explained pixel's patch boxed
    gallery_button: gr.Button
    gallery: gr.Gallery

    def settings(self, without: str = "") -> list:
        """The settings' components in SETTINGS order, leaving out the one named ``without``."""
        return [getattr(self, name) for name in SETTINGS if name != without]


def build_tab(demo: gr.Blocks) -> LabLayout:
    """Lay out the tab inside ``demo`` and wire its events (main endpoint: ``/apply_kernel``); returns its
    components (the Lessons tab's "Show me" sets them)."""
    layout = _lay_out()
    _wire(demo, layout)
    return layout


def _lay_out() -> LabLayout:
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            photo_and_settings = _lay_out_photo_and_settings(get_limits())
        with gr.Column(scale=3, min_width=360):
            results = _lay_out_results()
    with gr.Accordion("All presets on this photo", open=False):
        gallery_button = gr.Button("Show every preset")
        gallery = gr.Gallery(label="Every preset kernel", columns=5, height="auto", elem_id="lab-gallery")
    return LabLayout(**photo_and_settings, **results, gallery_button=gallery_button, gallery=gallery)


def _lay_out_photo_and_settings(limits) -> dict:
    image = photo_input(
        label="Your photo",
        value=example_paths()[0],
        height=300,
        elem_id="lab-input",
    )
    gr.Examples(
        examples=[[path] for path in example_paths()],
        inputs=[image],
        example_labels=["coffee cup", "Chelsea the cat", "astronaut", "rocket", "cameraman"],
        label="Examples",
        elem_id="lab-examples",
    )
    kernel = KernelChooser(
        choices=[(_label(name), name) for name in K.KERNELS] + [("custom (type your own)", CUSTOM)],
        value=DEFAULT_KERNEL,
        label="Kernel",
        elem_id="lab-kernel",
    )
    description = gr.Markdown(
        describe_kernel(DEFAULT_KERNEL)[0], label="What this kernel does", elem_id="lab-description"
    )
    custom_kernel = controls.Textbox(
        value=K.format_kernel(K.KERNELS[DEFAULT_KERNEL].weights),
        lines=4,
        max_lines=12,
        label=f"Kernel editor: rows of numbers, 1–{limits.max_kernel_side} per side (fractions like 1/9 work)",
        elem_id="lab-editor",
    )
    status = gr.Markdown(label="Why the picture did not change", elem_id="lab-kernel-status")
    apply_button = gr.Button("Apply this kernel", variant="primary")
    color = controls.Radio(
        choices=[("gray (one channel)", "gray"), ("colour (R, G, B separately)", "rgb")],
        value="gray",
        label="Channels",
    )
    with gr.Row():
        stride = controls.Slider(1, limits.max_stride, value=1, step=1, label="Stride", elem_id="lab-stride")
        padding = controls.Slider(0, limits.max_padding, value=0, step=1, label="Padding (zeros)")
        dilation = controls.Slider(1, limits.max_dilation, value=1, step=1, label="Dilation")
    with gr.Row():
        pooling = controls.Radio(choices=list(POOLING_CHOICES), value="none", label="Then pool", elem_id="lab-pooling")
        pool_size = controls.Slider(1, limits.max_pool_size, value=2, step=1, label="Pool size")
        pool_stride = controls.Slider(1, limits.max_pool_size, value=2, step=1, label="Pool stride")
    return {
        "image": image,
        "kernel": kernel,
        "description": description,
        "custom_kernel": custom_kernel,
        "status": status,
        "apply_button": apply_button,
        "color": color,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "pooling": pooling,
        "pool_size": pool_size,
        "pool_stride": pool_stride,
    }


def _lay_out_results() -> dict:
    result = result_image(label="Result: click a pixel to see how it was computed", elem_id="lab-result")
    colorbar = result_image(label="Colour scale", height=70, buttons=[], elem_id="lab-colorbar")
    with gr.Row():
        kernel_image = result_image(label="The kernel", height=260, elem_id="lab-kernel-image")
        arithmetic = gr.Markdown(label="Output size arithmetic", elem_id="lab-arithmetic")
    with gr.Row():
        x = controls.Number(value=None, label="Column (x)", precision=0, minimum=0, elem_id="lab-x")
        y = controls.Number(value=None, label="Row (y)", precision=0, minimum=0, elem_id="lab-y")
        explain_button = gr.Button("Explain this pixel")
    with gr.Row():
        patch = result_image(
            label="Where it looked: the patch on the photo", height=300, scale=1, min_width=260, elem_id="lab-patch"
        )
        with gr.Column(scale=1, min_width=260):
            explanation = gr.HTML(label="Pixel arithmetic", elem_id="lab-explanation")
    return {
        "result": result,
        "colorbar": colorbar,
        "kernel_image": kernel_image,
        "arithmetic": arithmetic,
        "x": x,
        "y": y,
        "explain_button": explain_button,
        "explanation": explanation,
        "patch": patch,
    }


def _wire(demo: gr.Blocks, tab: LabLayout) -> None:
    settings = [tab.image, *tab.settings()]
    outputs = [tab.result, tab.colorbar, tab.kernel_image, tab.arithmetic, tab.status]
    applied = gr.State([])  # the settings behind the picture on screen (a short list: cheap to copy)
    tab.kernel.change(
        describe_kernel, inputs=tab.kernel, outputs=[tab.description, tab.custom_kernel], api_name="describe_kernel"
    )
    tab.custom_kernel.input(
        switch_to_custom,
        outputs=tab.kernel,
        api_name="switch_to_custom",
        api_visibility="undocumented",
        show_progress="hidden",
    )
    applying = gr.on(
        triggers=[
            demo.load,
            tab.image.change,
            tab.kernel.input,
            tab.color.input,
            # .change, not .release: Gradio fires release only when the pointer lets go (or the slider's number
            # box loses focus), so a slider moved with the arrow keys never applied. A drag fires change at every
            # step, but always_last runs one apply at a time and then only the latest value.
            tab.stride.change,
            tab.padding.change,
            tab.dilation.change,
            tab.pooling.input,
            tab.pool_size.change,
            tab.pool_stride.change,
        ],
        fn=apply_kernel,
        inputs=settings,
        outputs=outputs,
        api_name="apply_kernel",
        trigger_mode="always_last",
    )
    applying_custom = gr.on(
        triggers=[tab.apply_button.click, tab.custom_kernel.submit],
        fn=apply_custom_kernel,
        inputs=[tab.image, *tab.settings(without="kernel")],
        outputs=outputs + [tab.kernel],
        api_name="apply_custom_kernel",
    )
    for event in (applying, applying_custom):
        event.success(
            remember_settings,
            inputs=[tab.status, *settings[1:]],
            outputs=[applied, tab.explanation, tab.patch],
            api_name="remember_settings",
            api_visibility="private",
            show_progress="hidden",
        )
    marks = [tab.result, tab.patch]
    # UI glue (a click fills x and y, explains and marks): same work as /explain_pixel, so kept out of the API docs.
    tab.result.select(
        pick_pixel,
        inputs=[tab.image, applied],
        outputs=[tab.x, tab.y, tab.explanation, *marks],
        api_name="pick_pixel",
        api_visibility="undocumented",
    )
    gr.on(
        triggers=[tab.explain_button.click, tab.x.submit, tab.y.submit],
        fn=explain_pixel,
        inputs=settings + [tab.x, tab.y],
        outputs=tab.explanation,
        api_name="explain_pixel",
    ).success(
        mark_applied,
        inputs=[tab.image, applied, tab.x, tab.y],
        outputs=marks,
        api_name="mark_pixel",
        api_visibility="private",
        show_progress="hidden",
    )
    tab.gallery_button.click(all_presets, inputs=[tab.image, tab.color], outputs=tab.gallery, api_name="preset_gallery")
