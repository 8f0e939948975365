"""The model chooser above the tabs: the variants, this session's own models, and checkpoint upload."""

from __future__ import annotations

import gradio as gr

from playground import models
from playground.weights import checkpoints
from ui import controls
from ui.handlers import user_errors
from ui.photos import uploaded_path
from ui.queueing import address
from ui.state import STORE, session_of

DEFAULT_MODEL = "alexnet"


def get_model(key, request: gr.Request | None = None):
    """(model, info) for a chooser key; a ``ValueError`` the user can act on when it is not available."""
    return STORE.get(key or DEFAULT_MODEL, session_of(request))


def notice_markdown(info, view: str = "") -> str:
    """A visible warning when the weights are not trained, empty otherwise.

    With ``view`` (e.g. "these filters"), a short line for one view that points to the full note.
    """
    if not info.notice:
        return ""
    if view:
        return (
            f"<div class='notice'>⚠️ {info.name} is untrained here, so {view}. "
            "The note beside the model chooser says how to get trained weights.</div>"
        )
    return f"<div class='notice'>⚠️ {info.notice}</div>"


@user_errors
def describe_model(key, request: gr.Request = None) -> str:
    """What the chosen model is and where its weights came from."""
    _, info = get_model(key, request)
    return f"**{info.name}**: {info.description}." + ("\n\n" + notice_markdown(info) if info.notice else "")


@user_errors
def refresh_choices(key=DEFAULT_MODEL, request: gr.Request = None):
    """This session's chooser: the variants and the models it has loaded or trained."""
    choices = STORE.choices(session_of(request))
    keys = [value for _, value in choices]
    return gr.update(choices=choices, value=key if key in keys else DEFAULT_MODEL)


@user_errors
def choices_on_load(key=DEFAULT_MODEL, request: gr.Request = None):
    """The chooser's choices as a page loads; its value is left alone when it is one of them (a link may
    have set it since this event read it)."""
    update = refresh_choices(key, request)
    return gr.update(choices=update["choices"]) if update["value"] == key else update


@user_errors
def load_checkpoint(file, variant="auto", request: gr.Request = None):
    """Load an uploaded .safetensors / .pt / .pth checkpoint into this session's model chooser."""
    if file is None:
        raise ValueError("Choose a .safetensors, .pt or .pth file first.")
    path, variant = uploaded_path(file), None if variant in (None, "auto") else variant
    # Charged to the store from the file's headers, before the model is built (see ModelStore.load).
    key = STORE.load(
        session_of(request),
        lambda admit: checkpoints.load_user_checkpoint(path, variant, admit=admit),
        visitor=address(request),
    )
    return refresh_choices(key, request), describe_model(key, request)


def build_panel(demo: gr.Blocks) -> gr.Dropdown:
    """The chooser row; returns the dropdown every model tab takes as an input."""
    # Each in a column at least 320 px wide: where two do not fit (a phone), the note goes below the chooser
    # instead of being squeezed into a sliver beside it.
    with gr.Row(elem_id="model-row"):
        with gr.Column(scale=2, min_width=320):
            chooser = controls.Dropdown(
                choices=STORE.choices(None),
                value=DEFAULT_MODEL,
                label="Model (used by every tab after the Convolution lab)",
                elem_id="model-chooser",
            )
        with gr.Column(scale=1, min_width=320):
            status = gr.Markdown(label="Model status", elem_id="model-status")
    with gr.Accordion("Load a checkpoint of your own (.safetensors, or .pt/.pth holding only weights)", open=False):
        with gr.Row():
            upload = controls.File(
                file_types=[".safetensors", ".pt", ".pth"], label="Checkpoint", elem_id="checkpoint-file"
            )
            variant = controls.Dropdown(["auto"] + list(models.MODELS), value="auto", label="Variant")
            load_button = gr.Button("Load checkpoint")
    gr.on([demo.load, chooser.change], describe_model, inputs=chooser, outputs=status, api_name="model_info")
    demo.load(choices_on_load, inputs=chooser, outputs=chooser, api_name="model_choices", api_visibility="undocumented")
    load_button.click(load_checkpoint, inputs=[upload, variant], outputs=[chooser, status], api_name="load_checkpoint")
    return chooser
