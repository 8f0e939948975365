"""Tab 1, the Convolution lab: hand-made kernels on the learner's own photo."""

from __future__ import annotations

import gradio as gr

from playground import kernels as K
from playground.config import get_limits
from playground.lab import CUSTOM, POOLING_CHOICES, LabSettings, explain_click, preset_gallery, run_lab
from playground.render import format_number
from ui import controls
from ui.common import example_paths, open_photo, photo_input, result_image, user_errors

INTRO = """
A **kernel** is a small grid of weights. Slide it over the photo; at every position multiply the
pixels under it by the weights and add the products up: that sum is one pixel of the result.
Pick a preset or type your own, change stride, padding and dilation, and **click any pixel of the
result** to see its sum worked out.
"""
DEFAULT_KERNEL = "sobel_x"


def _label(name: str) -> str:
    return name.replace("_", " ")


def _settings(kernel, custom, color, stride, padding, dilation, pooling, pool_size, pool_stride) -> LabSettings:
    return LabSettings(
        kernel=kernel or DEFAULT_KERNEL,
        custom_kernel=custom or "",
        color=color or "gray",
        stride=int(stride),
        padding=int(padding),
        dilation=int(dilation),
        pooling=pooling or "none",
        pool_size=int(pool_size),
        pool_stride=int(pool_stride),
    )


@user_errors
def apply_kernel(
    image,
    kernel=DEFAULT_KERNEL,
    custom_kernel="",
    color="gray",
    stride=1,
    padding=0,
    dilation=1,
    pooling="none",
    pool_size=2,
    pool_stride=2,
):
    """Convolve the photo with a kernel; returns the result, its colour scale, the kernel and the size arithmetic."""
    if image is None:  # the photo was cleared: clear the results rather than complain
        return None, None, None, "Upload a photo, use the webcam, or click an example to begin."
    settings = _settings(kernel, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride)
    photo = open_photo(image)
    result = run_lab(photo, settings)
    shrunk = ""
    if "original_size" in photo.info:
        width, height = photo.info["original_size"]
        shrunk = f"\n\nYour photo is {width} × {height}; the lab works on a copy shrunk to {photo.width} × {photo.height} (1 megapixel)."
    values = (
        f"\n\nResult values run from **{format_number(result.scale.min_value)}** to "
        f"**{format_number(result.scale.max_value)}** (nothing is clipped; the colour bar shows the scale)."
    )
    return result.image, result.colorbar, result.kernel_image, result.arithmetic + shrunk + values


@user_errors
def apply_custom_kernel(image, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride):
    """The editor's kernel, whatever the preset chooser shows; the chooser then says "custom"."""
    outputs = apply_kernel(
        image, CUSTOM, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride
    )
    return (*outputs, CUSTOM)


@user_errors
def explain_pixel(
    image, kernel, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride, x, y
):
    """The patch × kernel = value arithmetic behind result pixel (x, y)."""
    if x is None or y is None:
        raise ValueError("Click a pixel of the result, or type its column (x) and row (y).")
    settings = _settings(kernel, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride)
    result = run_lab(open_photo(image), settings)
    return explain_click(result, int(x), int(y))


@user_errors
def remember_settings(kernel, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride):
    """After a successful apply: keep the settings that made the picture (a click is explained with
    these, not with whatever the controls show now) and clear the old explanation."""
    return [kernel, custom_kernel, color, stride, padding, dilation, pooling, pool_size, pool_stride], ""


@user_errors
def explain_applied(image, applied, x, y):
    """The arithmetic behind a clicked pixel of the picture on screen."""
    if not applied:
        raise ValueError("Apply a kernel first.")
    return explain_pixel(image, *applied, x, y)


@user_errors
def pick_pixel(evt: gr.SelectData):
    """A click on the result gives the column and row of the pixel under the pointer."""
    x, y = evt.index[0], evt.index[1]
    return x, y


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


def build_tab(demo: gr.Blocks) -> None:
    """Lay out the tab inside ``demo`` and wire its events (main endpoint: ``/apply_kernel``)."""
    limits = get_limits()
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
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
            kernel = controls.Dropdown(
                choices=[(_label(name), name) for name in K.KERNELS] + [("custom (type your own)", CUSTOM)],
                value=DEFAULT_KERNEL,
                label="Kernel",
                elem_id="lab-kernel",
            )
            description = gr.Markdown(
                describe_kernel(DEFAULT_KERNEL)[0], label="What this kernel does", elem_id="lab-description"
            )
            custom = controls.Textbox(
                value=K.format_kernel(K.KERNELS[DEFAULT_KERNEL].weights),
                lines=4,
                max_lines=12,
                label=f"Kernel editor: rows of numbers, 1–{limits.max_kernel_side} per side (fractions like 1/9 work)",
                elem_id="lab-editor",
            )
            apply_button = gr.Button("Apply this kernel", variant="primary")
            color = controls.Radio(
                choices=[("gray (one channel)", "gray"), ("colour (R, G, B separately)", "rgb")],
                value="gray",
                label="Channels",
            )
            with gr.Row():
                stride = controls.Slider(1, limits.max_stride, value=1, step=1, label="Stride")
                padding = controls.Slider(0, limits.max_padding, value=0, step=1, label="Padding (zeros)")
                dilation = controls.Slider(1, limits.max_dilation, value=1, step=1, label="Dilation")
            with gr.Row():
                pooling = controls.Radio(choices=list(POOLING_CHOICES), value="none", label="Then pool")
                pool_size = controls.Slider(1, limits.max_pool_size, value=2, step=1, label="Pool size")
                pool_stride = controls.Slider(1, limits.max_pool_size, value=2, step=1, label="Pool stride")
        with gr.Column(scale=3, min_width=360):
            result = result_image(label="Result: click a pixel to see how it was computed", elem_id="lab-result")
            colorbar = result_image(label="Colour scale", height=70, buttons=[], elem_id="lab-colorbar")
            with gr.Row():
                kernel_image = result_image(label="The kernel", height=260, elem_id="lab-kernel-image")
                arithmetic = gr.Markdown(label="Output size arithmetic", elem_id="lab-arithmetic")
            with gr.Row():
                x = controls.Number(value=None, label="Column (x)", precision=0, minimum=0)
                y = controls.Number(value=None, label="Row (y)", precision=0, minimum=0)
                explain_button = gr.Button("Explain this pixel")
            explanation = gr.HTML(label="Pixel arithmetic", elem_id="lab-explanation")

    with gr.Accordion("All presets on this photo", open=False):
        gallery_button = gr.Button("Show every preset")
        gallery = gr.Gallery(label="Every preset kernel", columns=5, height="auto", elem_id="lab-gallery")

    settings = [image, kernel, custom, color, stride, padding, dilation, pooling, pool_size, pool_stride]
    outputs = [result, colorbar, kernel_image, arithmetic]
    applied = gr.State([])  # the settings behind the picture on screen (a short list: cheap to copy)
    kernel.change(describe_kernel, inputs=kernel, outputs=[description, custom], api_name="describe_kernel")
    custom.input(
        switch_to_custom,
        outputs=kernel,
        api_name="switch_to_custom",
        api_visibility="undocumented",
        show_progress="hidden",
    )
    applying = gr.on(
        triggers=[
            demo.load,
            image.change,
            kernel.input,
            color.input,
            stride.release,
            padding.release,
            dilation.release,
            pooling.input,
            pool_size.release,
            pool_stride.release,
        ],
        fn=apply_kernel,
        inputs=settings,
        outputs=outputs,
        api_name="apply_kernel",
        trigger_mode="always_last",
    )
    applying_custom = gr.on(
        triggers=[apply_button.click, custom.submit],
        fn=apply_custom_kernel,
        inputs=[image, custom, color, stride, padding, dilation, pooling, pool_size, pool_stride],
        outputs=outputs + [kernel],
        api_name="apply_custom_kernel",
    )
    for event in (applying, applying_custom):
        event.success(
            remember_settings,
            inputs=settings[1:],
            outputs=[applied, explanation],
            api_name="remember_settings",
            api_visibility="private",
            show_progress="hidden",
        )
    # UI glue (a click fills x and y, then explains): same work as /explain_pixel, so kept out of the API docs.
    result.select(
        pick_pixel, outputs=[x, y], api_name="pick_pixel", api_visibility="undocumented", show_progress="hidden"
    ).then(
        explain_applied,
        inputs=[image, applied, x, y],
        outputs=explanation,
        api_name="explain_pixel_after_click",
        api_visibility="undocumented",
    )
    explain_button.click(explain_pixel, inputs=settings + [x, y], outputs=explanation, api_name="explain_pixel")
    gallery_button.click(all_presets, inputs=[image, color], outputs=gallery, api_name="preset_gallery")
