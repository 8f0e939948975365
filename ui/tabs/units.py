"""Tab "Units": what one channel looks for. Its feature visualisation, the dataset patches that excite it
most, deconvnet and guided backprop on the photo with its receptive field, and the fc7 map of a dataset
with the photo's nearest neighbours.

Passes that take seconds of full CPU (a feature visualisation, a whole layer, top patches, the fc7 map) run
in worker processes (``ui.runner``), admitted like training jobs but in a concurrency group of their own;
what they find is kept in a cache bounded in bytes, keyed by model and dataset, and a user's own model or
zip only ever by their own session. Deconvnet, a receptive field or neighbours from a kept map take well
under a second and run in the server.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import gradio as gr
from PIL import Image

from playground import activations as A
from playground import models
from playground.architecture import receptive_box
from playground.config import get_limits
from playground.data import sources
from playground.layers import layer_label
from playground.units import probes as units
from playground.units.featurevis import FeatureVisSettings, Preview, grid_settings
from playground.units.jobs import (
    EXAMPLES,
    MY_ZIP,
    Fc7Map,
    GridProgress,
    UnitJob,
    choose_dataset,
    dataset_names,
    pack,
    run_job,
)
from playground.units.retrieval import fc7, query_batch
from playground.units.retrieval import neighbours as nearest
from playground.units.toppatches import PassProgress, TopPatches
from ui import controls, long_jobs
from ui.handlers import user_errors
from ui.model_panel import get_model, notice_markdown
from ui.photos import EXAMPLE_PHOTOS, look, open_photo, photo_with_examples, result_image
from ui.queueing import UNITS, UNITS_QUICK, admits_long_jobs
from ui.state import UNIT_RESULTS as RESULTS
from ui.state import UPLOADS, session_of

DEFAULT_LAYER, DEFAULT_CHANNEL = "features.0", 0
MY_UPLOAD = "my upload (your zip or folder)"  # what "my zip" reads: the session's last upload, from any tab
HELP = """
A **unit** is one channel of a convolution layer. Pick a layer and a channel (or click a tile in the
Activations tab's grid) and see what it looks for: **Visualise** optimises a picture to excite it
(Olah et al. 2017: decorrelated colour, a Fourier-space picture, random jitter, zoom and rotation);
**Top patches** finds the 9 patches of a dataset that excite it most (Zeiler & Fergus 2014), each cut to
the unit's receptive field around its strongest position; on the photo, **deconvnet** and **guided
backprop** show which pixels drive it there. Click the channel's map to see what any position sees.
"""


def _model(model_key, request):
    if model_key in models.BASELINES:
        units.require_convolutional(None, model_key)
    model, info = get_model(model_key, request)
    units.require_convolutional(model, info.name)
    return model, info, units.model_identity(model_key or "alexnet", session_of(request))


def _unit(model, layer, channel) -> tuple[str, int, str]:
    layer, note = units.resolve_layer(model, layer)
    return layer, units.check_channel(model, layer, channel), note


def _dataset(name, request):
    """A dataset choice as a source; "my zip" is the session's last upload from any tab, a zip or a folder."""
    upload = UPLOADS.last(session_of(request))
    if name == MY_ZIP and upload is not None and upload.kind == sources.FOLDER:
        limits = get_limits()  # a folder, read within the bounds choose_dataset puts on a zip
        return dataclasses.replace(upload, limit=limits.units_dataset_images, max_pixels=limits.units_dataset_pixels)
    zip_path = upload.path if upload is not None and upload.kind == sources.ZIP else None
    return choose_dataset(name, zip_path=zip_path, example_names=EXAMPLE_PHOTOS)


def _records(job: UnitJob, request, progress=None):
    """Run ``job`` in a worker (see :mod:`ui.long_jobs`) and yield its records, nothing more once stopped;
    while the job waits (its turn, room, a quiet worker reading a dataset), ``progress`` says why, or with no
    ``progress`` the :class:`~ui.long_jobs.Waiting` records come too, for the caller to show."""
    with long_jobs.LongJob(long_jobs.units_kind(quick=job.kind == "featurevis"), request) as slot:
        for record in slot.run(run_job, job, cap_seconds=get_limits().units_max_seconds):
            if isinstance(record, long_jobs.Stopped):
                return
            if isinstance(record, long_jobs.Waiting) and progress is not None:
                if record.why:  # busy: what it last reported stays shown
                    progress(None, desc=record.text())
            else:
                yield record


@user_errors
def layer_choices_on_load(model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None):
    """The layer chooser's choices as a page loads; a value that stays the same is left alone (a link may have
    set the chooser since this event read it)."""
    update = layer_choices(model_key, layer, request)
    return gr.update(choices=update["choices"]) if update["value"] == layer else update


@user_errors
def layer_choices(model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None):
    """The chosen model's convolution layers for the layer chooser."""
    model, _, _ = _model(model_key, request)
    names = units.unit_layers(model)
    choices = [(f"{layer_label(model, name)} · {units.channels_of(model, name)} channels", name) for name in names]
    try:
        value = units.resolve_layer(model, layer)[0]
    except ValueError:
        value = names[0]
    return gr.update(choices=choices, value=value)


@user_errors
def feature_visualisation(model_key="alexnet", layer=DEFAULT_LAYER, channel=DEFAULT_CHANNEL, negative=False,
                          steps=256, request: gr.Request = None):  # fmt: skip
    """Optimise a picture to excite (or, negative, to silence) one channel; streams (picture, caption)
    previews, the last is final."""
    model, info, identity = _model(model_key, request)
    layer, channel, note = _unit(model, layer, channel)
    limits = get_limits()
    settings = FeatureVisSettings(steps=int(steps), negative=bool(negative))
    settings.validate(limits.units_max_steps, limits.units_max_size)
    key = (layer, channel, settings)
    kept = RESULTS.get("featurevis", identity, *key)
    if kept is not None:
        yield kept
        return
    job = UnitJob("featurevis", pack(model, trunk=True), layer, (channel,), settings)
    direction = "silence" if settings.negative else "excite"
    untrained = "\n\n" + notice_markdown(info, "this is what a random filter responds to") if info.notice else ""
    for record in _records(job, request):
        if isinstance(record, long_jobs.Waiting) and record.why:
            yield gr.skip(), record.text()  # the picture so far stays; the caption says why it waits
        if isinstance(record, Preview):
            caption = (
                f"{note}**{layer_label(model, layer)} channel {channel}**, optimised to {direction} it: step {record.step} of "
                f"{record.steps}, mean activation **{record.mean_activation[0]:.3f}** (strongest position "
                f"{record.max_activation[0]:.3f}: compare the top patches' values).{untrained}"
            )
            if record.final:
                RESULTS.put("featurevis", identity, *key, value=(record.images[0], caption), size=settings.size**2 * 3)
            yield record.images[0], caption


@user_errors
def layer_grid(model_key="alexnet", layer=DEFAULT_LAYER, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008 (Gradio injects its tracker this way)
    """Feature visualisations of every channel of the layer, a batch at a time (streams the grid as it forms)."""
    model, _, identity = _model(model_key, request)
    layer, _ = units.resolve_layer(model, layer)
    kept = RESULTS.get("grid", identity, layer)
    if kept is not None:
        yield kept
        return
    settings = grid_settings(units.layer_row(model, layer).receptive_field)
    count = units.channels_of(model, layer)
    job = UnitJob("grid", pack(model, trunk=True), layer, tuple(range(count)), settings)
    for record in _records(job, request, progress):
        if isinstance(record, GridProgress):
            progress((record.done, count), desc=f"{layer}: {record.done} of {count} channels done")
            if record.final:
                RESULTS.put("grid", identity, layer, value=record.picture, size=record.picture.width**2 * 3)
            yield record.picture


def _gallery(found: TopPatches, layer: str, channel: int) -> list:
    top = found.layers[layer]
    items = []
    for i in range(top.values.shape[1]):
        pixels = top.patches[channel, i].permute(1, 2, 0).numpy()
        picture = Image.fromarray(pixels).resize((112, 112), Image.Resampling.NEAREST)  # no invented detail
        left, upper, right, lower = top.boxes[channel, i].tolist()
        where = f"pixels {left}-{right - 1} × {upper}-{lower - 1}"
        items.append((picture, f"{top.values[channel, i]:.3f} · image {int(top.images[channel, i])} · {where}"))
    return items


@user_errors
def top_patches(model_key="alexnet", layer=DEFAULT_LAYER, channel=DEFAULT_CHANNEL, dataset=EXAMPLES,
                request: gr.Request = None, progress=gr.Progress()):  # noqa: B008 (Gradio injects its tracker this way)  # fmt: skip
    """The patches of a dataset that excite the channel most, strongest first, captioned "activation · image ·
    receptive field" (one pass fills every channel of every conv layer)."""
    model, _, identity = _model(model_key, request)
    layer, channel, _ = _unit(model, layer, channel)
    choice = _dataset(dataset, request)
    key = choice.identity(session_of(request))
    found = RESULTS.get("top_patches", identity, key)
    if found is None:
        for record in _records(UnitJob("top_patches", pack(model, trunk=True), dataset=choice), request, progress):
            if isinstance(record, PassProgress):
                progress((record.done, record.total), desc=record.message)
            elif isinstance(record, TopPatches):
                found = record
                RESULTS.put("top_patches", identity, key, value=found, size=found.nbytes)
    if found is not None:
        yield _gallery(found, layer, channel)


@user_errors
def cached_top_patches(model_key="alexnet", layer=DEFAULT_LAYER, channel=DEFAULT_CHANNEL, dataset=EXAMPLES,
                       request: gr.Request = None):  # fmt: skip
    """Top patches from a pass already made (another channel or layer needs no new pass); else empty."""
    model, _, identity = _model(model_key, request)
    layer, channel, _ = _unit(model, layer, channel)
    found = RESULTS.get("top_patches", identity, _dataset(dataset, request).identity(session_of(request)))
    return None if found is None else _gallery(found, layer, channel)


@user_errors
def unit_deconvnet(model_key="alexnet", image=None, layer=DEFAULT_LAYER, channel=DEFAULT_CHANNEL,
                   method="deconvnet", request: gr.Request = None):  # fmt: skip
    """Which pixels of the photo drive the unit at its strongest position, with that position's receptive field:
    (photo and attribution side by side, caption)."""
    model, _, _ = _model(model_key, request)
    layer, channel, note = _unit(model, layer, channel)
    x = A.preprocess(open_photo(image))
    result = units.unit_attribution(model, x, layer, channel, method)
    left, top, right, bottom = result.box
    caption = (
        f"{note}**{'Deconvnet' if method == 'deconvnet' else 'Guided backprop'}** for {layer_label(model, layer)} channel {channel} at its "
        f"strongest position on this photo (row {result.position[0]}, column {result.position[1]}, activation "
        f"{result.value:.3f}). Middle: the pixels that drive it (grey: none; colours: their signed effect), and right, "
        "the inside of the box enlarged. The box is "
        f"its receptive field, pixels {left}-{right - 1} × {top}-{bottom - 1}: nothing outside it reaches this unit."
    )
    return units.attribution_panel(result, A.network_view(x)), caption


@user_errors
def channel_map(model_key="alexnet", image=None, layer=DEFAULT_LAYER, channel=DEFAULT_CHANNEL,
                request: gr.Request = None):  # fmt: skip
    """The channel's map over the photo, each position a square (click one to see what it sees)."""
    model, _, _ = _model(model_key, request)
    layer, channel, _ = _unit(model, layer, channel)
    return units.channel_map(units.trunk_output(model, A.preprocess(open_photo(image)), layer), channel)


@user_errors
def pick_position(model_key, layer, evt: gr.SelectData, request: gr.Request = None):
    """A click on the channel's map: the (row, column) of the position under the pointer."""
    model, _, _ = _model(model_key, request)
    layer, _ = units.resolve_layer(model, layer)
    return units.map_position(units.layer_row(model, layer).output_shape[-2:], evt.index[0], evt.index[1])


@user_errors
def receptive_field(model_key="alexnet", image=None, layer=DEFAULT_LAYER, row=0, column=0, request: gr.Request = None):
    """The input pixels one position of the layer's maps sees, as a box on the photo the network saw."""
    model, _, _ = _model(model_key, request)
    layer, note = units.resolve_layer(model, layer)
    entry = units.layer_row(model, layer)
    x = A.preprocess(open_photo(image))
    box = receptive_box(entry, int(row), int(column), (224, 224))
    caption = (
        f"{note}**{entry.label}, row {int(row)}, column {int(column)}** sees pixels {box[0]}-{box[2] - 1} × "
        f"{box[1]}-{box[3] - 1} of the 224 × 224 input: a receptive field of {entry.receptive_field} px, moving "
        f"{entry.stride} px per position, the first starting at pixel {entry.offset} (the Architecture tab's "
        "numbers; what falls outside the photo is padding)."
    )
    return units.draw_box(A.network_view(x), box), caption


def _fc7_features(model, identity, choice, request, progress):
    """The dataset's fc7 features and map, from the cache or a worker pass (progress shown meanwhile).
    A generator of nothing (so a handler can ``yield from`` it) that returns the :class:`Fc7Map`."""
    key = choice.identity(session_of(request))
    found = RESULTS.get("fc7", identity, key)
    if found is None:
        for record in _records(UnitJob("fc7", pack(model), dataset=choice), request, progress):
            if isinstance(record, Fc7Map):
                found = record
                size = found.features.nbytes + (found.picture.width * found.picture.height * 3 if found.picture else 0)
                RESULTS.put("fc7", identity, key, value=found, size=size)
            else:
                progress((record.done, record.total), desc=record.message)
    return found
    yield  # (makes this a generator)


@user_errors
def fc7_map(model_key="alexnet", dataset=EXAMPLES, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008 (Gradio injects its tracker this way)
    """A t-SNE map of the dataset's fc7 features: every image as a thumbnail, framed in its class's colour."""
    model, _, identity = _model(model_key, request)
    found = yield from _fc7_features(model, identity, _dataset(dataset, request), request, progress)
    if found is not None:
        if found.picture is None:
            raise ValueError(f"{found.features.dataset} has fewer than 5 images: too few for a map.")
        yield found.picture


@user_errors
def neighbours(model_key="alexnet", image=None, dataset=EXAMPLES, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008 (Gradio injects its tracker this way)
    """The 8 images of the dataset nearest the photo by fc7 distance, nearest first (Krizhevsky et al., figure 4),
    captioned "distance · class (image index)"."""
    model, _, identity = _model(model_key, request)
    photo = open_photo(image)
    found = yield from _fc7_features(model, identity, _dataset(dataset, request), request, progress)
    if found is not None:
        near = nearest(found.features, fc7(model, query_batch(photo))[0], k=8)
        yield [(n.thumbnail.resize((96, 96)), f"{n.distance:.2f} · {n.label} (image {n.index})") for n in near]


@user_errors
def from_activations(model_key, photo, layer, evt: gr.SelectData, request: gr.Request = None):
    """A click on a tile of the Activations grid: that layer and channel here, and this tab shown."""
    model, _, _ = _model(model_key, request)
    grid = A.channel_grid(look(model, photo).activations[layer], k=16)  # the grid the Activations tab drew
    channel = units.tile_at(grid.channels, grid.image.size, int(evt.index[0]), int(evt.index[1]))
    if channel is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    unit_layer, _ = units.resolve_layer(model, layer)
    return unit_layer, channel, photo, gr.Tabs(selected="units")  # (a fourth output only where tabs are wired)


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown, *, activations=None, tabs=None, tab=None) -> SimpleNamespace:
    """Lay out the tab. ``activations``: the Activations tab's components (a click on its grid lands here);
    ``tabs``: the app's tab set, to switch to this one; ``tab``: this tab, whose opening draws the photo views."""
    gr.Markdown(HELP)
    c = _layout()
    chooser.change(layer_choices, [chooser, c.layer], c.layer, api_name="unit_layers", api_visibility="undocumented")
    demo.load(layer_choices_on_load, [chooser, c.layer], c.layer, api_visibility="private")
    _wire_passes(c, chooser)
    _wire_photo_views(c, chooser, tab)
    if activations is not None:
        _wire_activations(c, chooser, activations, tabs)
    return c


def _layout() -> SimpleNamespace:
    """The tab's components, by name."""
    limits = get_limits()
    c = SimpleNamespace()
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            c.photo = photo_with_examples("units-photo", height=200)
            c.layer = controls.Dropdown(
                choices=[DEFAULT_LAYER],
                value=DEFAULT_LAYER,
                label="Layer",
                allow_custom_value=True,
                elem_id="units-layer",
            )
            c.channel = controls.Number(
                value=DEFAULT_CHANNEL, precision=0, minimum=0, label="Channel", elem_id="units-channel"
            )
            c.dataset = controls.Dropdown(
                [(MY_UPLOAD if name == MY_ZIP else name, name) for name in dataset_names()],
                value=EXAMPLES,
                label="Dataset (top patches, fc7 map)",
                elem_id="units-dataset",
                allow_custom_value=True,  # an unknown name gets our sentence, not Gradio's bare refusal
            )
            c.method = controls.Radio(
                [("deconvnet", "deconvnet"), ("guided backprop", "guided_backprop")],
                value="deconvnet",
                label="On the photo",
                elem_id="units-method",
            )
            with gr.Row():
                c.negative = controls.Checkbox(False, label="Negative (what silences it)")
                c.steps = controls.Slider(16, limits.units_max_steps, value=256, step=16, label="Steps")
            with gr.Row():
                c.visualise_button = gr.Button("Visualise", variant="primary", elem_id="units-visualise")
                c.patches_button = gr.Button("Top patches", elem_id="units-top")
            with gr.Row():
                c.grid_button = gr.Button("Whole layer", elem_id="units-grid-button")
                c.stop_button = gr.Button("Stop", variant="stop", elem_id="units-stop")
        with gr.Column(scale=2):
            with gr.Row():
                with gr.Column():
                    c.picture = result_image(
                        label="Feature visualisation (press Visualise)", elem_id="units-featurevis"
                    )
                    c.picture_caption = gr.Markdown(elem_id="units-featurevis-caption")
                with gr.Column(scale=2):
                    c.deconv = result_image(
                        label="On the photo: its receptive field, and what drives it", elem_id="units-deconvnet"
                    )
                    c.deconv_caption = gr.Markdown(elem_id="units-deconvnet-caption")
            c.patches = gr.Gallery(
                label="Top patches (activation · image · receptive field in the 224 × 224 input)",
                columns=9,
                height="auto",
                elem_id="units-patches",
            )
            with gr.Row():
                c.fmap = result_image(label="This channel on the photo (click a position)", elem_id="units-map")
                with gr.Column():
                    c.field = result_image(label="What that position sees", elem_id="units-field")
                    c.field_caption = gr.Markdown(elem_id="units-field-caption")
            with gr.Row():
                c.row = controls.Number(value=0, precision=0, minimum=0, label="Position: row", elem_id="units-row")
                c.column = controls.Number(value=0, precision=0, minimum=0, label="column", elem_id="units-column")
    with gr.Accordion("The whole layer, every channel's feature visualisation", open=False):
        c.grid = result_image(label="Press Whole layer", elem_id="units-grid")
    with gr.Accordion("fc7 map and nearest neighbours (the whole network's view of a dataset)", open=True):
        with gr.Row():
            c.map_button = gr.Button("Map the dataset", elem_id="units-map-button")
            c.neighbours_button = gr.Button("Nearest neighbours of the photo", elem_id="units-neighbours-button")
        with gr.Row():
            c.fc7_picture = result_image(label="fc7 map", elem_id="units-fc7", scale=2)
            c.near = gr.Gallery(
                label="Nearest neighbours", columns=4, height="auto", elem_id="units-neighbours", scale=1
            )
    return c


def _wire_passes(c: SimpleNamespace, chooser: gr.Dropdown) -> None:
    """The passes that run in a worker (admitted at the door like training, in their own group), and Stop."""
    limits = get_limits()
    quick, slow = (UNITS_QUICK, limits.units_quick_running), (UNITS, limits.units_jobs_running)
    passes = [  # (button, handler, inputs, outputs, queue); each handler's name is its HTTP endpoint's
        (c.visualise_button, feature_visualisation, [c.layer, c.channel, c.negative, c.steps], [c.picture, c.picture_caption], quick),
        (c.grid_button, layer_grid, [c.layer], c.grid, slow),
        (c.patches_button, top_patches, [c.layer, c.channel, c.dataset], c.patches, slow),
        (c.map_button, fc7_map, [c.dataset], c.fc7_picture, slow),
        (c.neighbours_button, neighbours, [c.photo, c.dataset], c.near, slow),
    ]  # fmt: skip
    started = [  # admitted at the door, as training; one channel's visualisation in a queue of its own
        button.click(handler, inputs=[chooser, *inputs], outputs=outputs, api_name=handler.__name__,
                     validator=admits_long_jobs(handler, queue), concurrency_id=queue, concurrency_limit=running)
        for button, handler, inputs, outputs, (queue, running) in passes
    ]  # fmt: skip
    c.stop_button.click(
        long_jobs.stop_handler(UNITS, UNITS_QUICK), cancels=started, api_name="stop_units"
    )  # the worker is gone within a second


def _wire_photo_views(c: SimpleNamespace, chooser: gr.Dropdown, tab) -> None:
    """What runs in the server on the current photo: kept top patches, deconvnet, the channel map, a position."""
    gr.on(
        [c.layer.change, c.channel.submit, c.dataset.change],
        cached_top_patches,
        inputs=[chooser, c.layer, c.channel, c.dataset],
        outputs=c.patches,
        api_name="cached_top_patches",
        api_visibility="undocumented",
        trigger_mode="always_last",
    )
    photo_views = [c.photo.change, c.layer.change, c.channel.submit, chooser.change] + ([tab.select] if tab else [])
    gr.on(
        [*photo_views, c.method.change],
        unit_deconvnet,
        inputs=[chooser, c.photo, c.layer, c.channel, c.method],
        outputs=[c.deconv, c.deconv_caption],
        api_name="unit_deconvnet",
        trigger_mode="always_last",
    )
    gr.on(
        photo_views,
        channel_map,
        inputs=[chooser, c.photo, c.layer, c.channel],
        outputs=c.fmap,
        api_name="channel_map",
        trigger_mode="always_last",
    )
    c.fmap.select(
        pick_position,
        inputs=[chooser, c.layer],
        outputs=[c.row, c.column],
        api_name="pick_position",
        api_visibility="undocumented",
    ).then(
        receptive_field,
        inputs=[chooser, c.photo, c.layer, c.row, c.column],
        outputs=[c.field, c.field_caption],
        api_name="receptive_field_after_click",
        api_visibility="undocumented",
    )
    gr.on(
        [c.row.submit, c.column.submit],
        receptive_field,
        inputs=[chooser, c.photo, c.layer, c.row, c.column],
        outputs=[c.field, c.field_caption],
        api_name="receptive_field",
    )


def _wire_activations(c: SimpleNamespace, chooser: gr.Dropdown, activations: dict, tabs) -> None:
    """A click on the Activations tab's grid lands here, on that layer and channel."""
    landed = activations.grid.select(
        from_activations,
        inputs=[chooser, activations.image, activations.layer],
        outputs=[c.layer, c.channel, c.photo, tabs] if tabs is not None else [c.layer, c.channel, c.photo],
        api_name="unit_from_activations",
        api_visibility="undocumented",
    )
    landed.then(
        unit_deconvnet,
        inputs=[chooser, c.photo, c.layer, c.channel, c.method],
        outputs=[c.deconv, c.deconv_caption],
        api_name="unit_deconvnet_after_click",
        api_visibility="undocumented",
    ).then(
        channel_map,
        inputs=[chooser, c.photo, c.layer, c.channel],
        outputs=c.fmap,
        api_name="channel_map_after_click",
        api_visibility="undocumented",
    )
