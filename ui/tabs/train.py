"""Tab 6, Train: fine-tune on a zip of your photos or a built-in dataset, watch it learn, then use the
model in every other tab (for this browser session only)."""

from __future__ import annotations

import dataclasses
import html
import os
import shutil
import time
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from playground import models
from playground.config import get_limits
from playground.data import datasets as data
from playground.filters import filter_grid
from playground.serving import jobs
from playground.serving.store import trained_description
from playground.sharing import project
from playground.training.curves import Curves
from playground.training.finetune import (
    SCRATCH_RECIPE,
    FinetuneConfig,
    FinetuneResult,
    Progress,
    describe_start,
    pretrained_choice,
    recipe,
)
from playground.training.report import stayed_at_chance
from playground.weights.checkpoints import ModelInfo
from ui import controls, folders, long_jobs, runner
from ui.handlers import keyed, user_errors
from ui.model_panel import refresh_choices
from ui.photos import result_image
from ui.queueing import LONG, address, admits_long_jobs
from ui.state import JOBS, STORE, UPLOADS, session_of

ZIP, FOLDER = folders.ZIP, folders.FOLDER
DATASET_CHOICES = [ZIP, FOLDER, *data.DATASETS]
MODEL_CHOICES = [*models.MODELS, *models.BASELINES]
HELP = f"""
Upload a **zip of class folders** (`daisy/1.jpg`, `rose/7.jpg`, …, or all inside one top folder), choose or
drop a **folder** of them, or pick a dataset, then press **Train**. The defaults are the course's recipe: ImageNet-pretrained AlexNet, a new
final layer for your classes, Adam at 0.001, batch 16, 10 epochs. *Head only* trains just that final
layer on features computed once (fast, even on a CPU); *full* trains every layer with augmentation.
From random weights in full (no ImageNet weights), the learning rate starts at {SCRATCH_RECIPE["lr"]:g}: at 0.001
the loss stays flat and the network guesses one class. The dashed line on the accuracy plot is chance.
"""
STOPPED = "<p>Stopped. Nothing from this run was kept; your earlier models stay in the model chooser.</p>"


def _request(
    zip_file, dataset, limit, config: FinetuneConfig, folder=None, folder_paths=None, last=None
) -> jobs.TrainingRequest:
    """What the worker needs, as plain values: the upload's server path (checked), a folder's files (or, with
    neither, ``last``, the session's upload from any tab), or a dataset's name."""
    return jobs.TrainingRequest(
        config, folders.source(dataset, zip_file, folder, folder_paths, limit, last), jobs.new_run_folder()
    )


def _progress_html(record: Progress) -> str:
    if not record.total_steps:
        return f"<p>{record.message}</p>"
    val = "" if record.val_accuracy is None else f", validation accuracy {record.val_accuracy:.1%}"
    return (
        f"<progress value='{record.step}' max='{record.total_steps}' style='width:100%'></progress>"
        f"<p>Epoch {record.epoch} of {record.epochs}, step {record.step} of {record.total_steps}: loss {record.loss:.3f}, "
        f"training accuracy {record.accuracy:.1%}{val}. {record.images_per_second:,.0f} images/s, "
        f"about {record.seconds_left:,.0f} s left.</p>"
    )


def _track(curves: Curves, record: Progress, last_val_epoch: int) -> int:
    """Add a progress record's points; validation accuracy once per finished epoch, where that epoch ended."""
    curves.add("loss", "training loss", record.step, record.loss)
    curves.add("accuracy", "training accuracy", record.step, record.accuracy)
    if record.val_accuracy is not None and record.epoch != last_val_epoch:
        curves.add("accuracy", "validation accuracy", record.step - 1, record.val_accuracy)
        return record.epoch
    return last_val_epoch


def _confusion_table(classes, confusion) -> pd.DataFrame:
    table = pd.DataFrame(np.asarray(confusion), columns=list(classes))
    table.insert(0, "true \\ predicted", list(classes))
    return table


def _per_class_table(classes, per_class_accuracy, confusion) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "class": list(classes),
            "accuracy": [f"{a:.0%}" for a in per_class_accuracy],
            "validation images": np.asarray(confusion).sum(axis=1).tolist(),
        }
    )


def summary_of(result: FinetuneResult, dataset: str) -> dict:
    """The numbers of a finished training that a project file keeps."""
    return project.training_summary(
        dataset=dataset, variant=result.variant, mode=result.config.mode, classes=result.classes,
        history=result.history, val_accuracy=result.val_accuracy, per_class_accuracy=result.per_class_accuracy,
        confusion=result.confusion, images_per_second=result.images_per_second, seconds=result.seconds,
        notice=result.notice,
    )  # fmt: skip


def shown_summary(summary: dict) -> dict:
    """The tab's results for a training opened from a project file: its curves by epoch and its tables."""
    curves = Curves(classes=len(summary["classes"]))
    for epoch in summary["history"]:
        curves.add(
            "loss", "training loss", epoch["epoch"], epoch["loss"] if epoch["loss"] is not None else float("nan")
        )
        curves.add("accuracy", "training accuracy", epoch["epoch"], epoch["accuracy"])
        if epoch["val_accuracy"] is not None:
            curves.add("accuracy", "validation accuracy", epoch["epoch"], epoch["val_accuracy"])
    classes, confusion = summary["classes"], summary["confusion"]
    status = (
        f"<p>Opened from your project: trained on {html.escape(summary['dataset'])} · {html.escape(summary['variant'])} "
        f"· {'head only' if summary['mode'] == 'head' else html.escape(summary['mode'])} · "
        f"{len(summary['history'])} epoch(s) · validation accuracy <b>{summary['val_accuracy']:.1%}</b> (chance: "
        f"{1 / len(classes):.1%}). The misclassified images are not in a project file.</p>"
    )
    return {"status": status, "curves": curves.image(x_label="epoch"), "confusion": _confusion_table(classes, confusion),
            "per_class": _per_class_table(classes, summary["per_class_accuracy"], confusion)}  # fmt: skip


@user_errors
def train(
    zip_file=None,
    dataset=ZIP,
    model="alexnet",
    mode="head",
    pretrained=True,
    epochs=None,
    batch_size=16,
    lr=None,
    optimizer="adam",
    crop=True,
    flip=True,
    color_jitter=False,
    limit=1000,
    weight_decay=0.0,
    folder=None,
    folder_paths=None,
    request: gr.Request = None,
):
    """Fine-tune and stream progress; at the end, the results and the model in this session's chooser.

    Yields dicts keyed by output name (see :func:`build_tab`); an output a message leaves out keeps its value.
    """
    session = session_of(request)
    config = FinetuneConfig(
        model=model,
        pretrained=bool(pretrained),
        mode=mode,
        optimizer=optimizer,
        lr=None if lr in (None, "") else float(lr),  # None: the start's recipe (see finetune.recipe)
        epochs=None if epochs in (None, "") else int(epochs),
        batch_size=int(batch_size),
        image_size=models.spec(model).input_shape[-1],
        crop=bool(crop),
        flip=bool(flip),
        color_jitter=bool(color_jitter),
        weight_decay=float(weight_decay or 0.0),
        max_seconds=get_limits().train_max_seconds,  # the cap covers reading the data too
    )
    config.validate()
    job = _request(zip_file, dataset, limit, config, folder, folder_paths, UPLOADS.last(session))
    job = dataclasses.replace(job, gpu_seconds=jobs.planned_gpu_seconds(job) if runner.zero_gpu() else 0.0)
    finished = False
    try:
        with long_jobs.LongJob(long_jobs.JobKind(), request) as slot:
            yield {"status": _STARTING, **CLEARED}  # the last run's results go as this one starts
            records = slot.run(jobs.training_job, job, cap_seconds=config.max_seconds)
            records = folders.once_read(records, session, job.source)
            finished = yield from _stream(records, session, request, slot.clock)
    finally:
        if not finished:
            shutil.rmtree(job.folder, ignore_errors=True)  # a run that did not finish keeps no files


_STARTING = "<p>Starting a training process and reading the data…</p>"
# Every results panel, empty: a new run shows nothing of the last one (its mistakes, its downloads) meanwhile.
CLEARED = {"report": "", "curves": None, "confusion": None, "per_class": None, "filters": None, "downloads": None,
           "true_class": "", "predicted_class": "", "mistakes": [], "mistakes_note": ""}  # fmt: skip


def _stream(records, session, request, clock):
    """The job's records as the tab's updates; returns whether it finished."""
    curves, shown, redraws, last_val_epoch, last_step, report = Curves(), 0.0, long_jobs.Redraws(), 0, 0, ""
    for record in records:
        if isinstance(record, long_jobs.Stopped):
            yield {"status": STOPPED}
            return False
        if isinstance(record, long_jobs.Waiting):  # why it waits; or, busy, what it last said stays shown
            yield {"status": f"<p>{record.text()}</p>"} if record.why else {}
        elif isinstance(record, jobs.DatasetReady):
            report = record.report
            yield {"status": "<p>Data ready; building the model…</p>", "report": report}
        elif isinstance(record, jobs.TrainingOutcome):
            if record.result.history:  # the last epoch's validation arrives with the result
                curves.add("accuracy", "validation accuracy", last_step, record.result.history[-1]["val_accuracy"])
            yield _finish(record, session, report, curves, request, clock)
            return True
        elif isinstance(record, Progress):
            curves.classes = record.classes or curves.classes  # chance, 1 / classes, dashed on the accuracy plot
            if record.total_steps:
                last_val_epoch, last_step = _track(curves, record, last_val_epoch), record.step
            now = time.monotonic()
            if now - shown > 0.5 or record.step == record.total_steps:
                shown = now
                update = {"status": _progress_html(record)}
                if redraws.due(now) or record.step == record.total_steps:
                    update["curves"] = redraws.draw(curves.image)
                yield update
    return False


def _finish(outcome: jobs.TrainingOutcome, session, report, curves: Curves, request, clock) -> dict:
    result = outcome.result
    # The weights now live in the files and in the chooser; the run record needs only the numbers.
    folder = os.path.dirname(outcome.files[0])
    JOBS.keep(session, jobs.TrainingRun(dataclasses.replace(result, state_dict={}), outcome.thumbnails, folder,
                                        summary_of(result, outcome.dataset_name)))  # fmt: skip
    summary = (
        f"<p><b>Done</b>: validation accuracy <b>{result.val_accuracy:.1%}</b> (chance: {1 / len(result.classes):.1%}, "
        f"1 of {len(result.classes)} classes) after {len(result.history)} epoch(s) at "
        f"{result.images_per_second:,.0f} images/s; "
        f"{clock.took(('training', result.seconds), rest='starting, reading the data and writing the files')}.</p>"
        + (f"<div class='notice'>⚠️ {result.notice}</div>" if result.notice else f"<p>{_started(result)}</p>")
        + (f"<div class='notice'>⚠️ {stuck}</div>" if (stuck := stayed_at_chance(result)) else "")
    )
    per_class = _per_class_table(result.classes, result.per_class_accuracy, result.confusion)
    outputs = {"confusion": _confusion_table(result.classes, result.confusion), "per_class": per_class,
               "downloads": outcome.files}  # fmt: skip
    if models.spec(result.variant).convolutional:
        outputs["filters"] = _pair(
            filter_grid(result.initial_first_conv), filter_grid(result.state_dict["features.0.weight"])
        )
        info = ModelInfo(
            result.variant,
            "file",
            trained_description(
                result.variant,
                outcome.dataset_name,
                len(result.classes),
                result.config.mode,
                len(result.history),
                result.val_accuracy,
            ),
            result.classes,
            options=tuple(sorted(result.config.model_options().items())),
        )
        outputs["chooser"] = refresh_choices(
            STORE.add(session, result.model(), info, visitor=address(request)), request
        )
        summary += "<p>Your model is now in the model chooser at the top: look at its filters, activations and explanations.</p>"
        if result.config.mode == "head":
            summary += "<p>Head only: conv1 was frozen, so its filters before and after are the same. Train in full mode to watch them move.</p>"
    else:
        outputs["filters"] = None
        summary += "<p>The baselines have no convolutional layers to look at; download the checkpoint to use it.</p>"
    return {"status": summary, "report": report, "curves": curves.image(), **outputs}


def _started(result: FinetuneResult) -> str:
    """What the run really started from and trained (the notice says it instead when that was not what was asked)."""
    start = result.imagenet_start
    return describe_start(result.variant, result.config.mode, start, at_hand=start)


def _pair(before, after):
    if before is None:
        return None
    gap = 24
    image = Image.new("RGB", (before.width + after.width + gap, max(before.height, after.height)), "white")
    image.paste(before, (0, 0))
    image.paste(after, (before.width + gap, 0))
    return image


@user_errors
def misclassified(true_class, predicted_class, request: gr.Request = None):
    """The validation images of ``true_class`` the model took for ``predicted_class``."""
    run = JOBS.last_run(session_of(request))
    if run is None:
        raise ValueError("Train a model first: the misclassified images come from your last run.")
    found, total = run.mistakes(true_class, predicted_class)
    items = [(picture, f"{true_class} → {predicted_class} ({confidence:.0%})") for picture, confidence in found]
    shown = f" (showing the {len(items)} most confident)" if len(items) < total else ""
    note = (
        f"{total} validation image(s) of **{true_class}** taken for **{predicted_class}**{shown}."
        if true_class != predicted_class
        else "The diagonal holds the correct answers; pick a cell off it."
    )
    return items, note


@user_errors
def pick_cell(table, evt: gr.SelectData):
    """A click on the confusion matrix chooses (true, predicted)."""
    row, column = evt.index
    if column == 0 or table is None:
        return gr.skip(), gr.skip()
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    return frame.iloc[row, 0], frame.columns[column]


@user_errors
def model_chosen(model="alexnet", mode="head"):
    """A model chosen: the ImageNet switch names it, ticked only where its weights are here, and the note on what
    the run will start from and the learning rate and epochs that start calls for follow."""
    label, possible = pretrained_choice(model)
    return gr.update(label=label, value=possible, interactive=possible), *start_chosen(model, mode, possible)


@user_errors
def model_on_load(model="alexnet", mode="head", lr=None, epochs=None):
    """As :func:`model_chosen`, as a page loads: a learning rate or epochs that stay the same are left alone (a
    link may have set them since this event read them)."""
    switch, note, new_lr, new_epochs = model_chosen(model, mode)
    same = lr is not None and epochs is not None and float(new_lr) == float(lr) and int(new_epochs) == int(epochs)
    return (switch, note, gr.skip(), gr.skip()) if same else (switch, note, new_lr, new_epochs)


@user_errors
def start_chosen(model="alexnet", mode="head", pretrained=True):
    """What the run will really start from and train (a sentence), and its start's learning rate and epochs."""
    defaults = recipe(model, bool(pretrained), mode)
    return describe_start(model, mode, bool(pretrained)), defaults["lr"], defaults["epochs"]


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown, upload: gr.State | None = None) -> SimpleNamespace:
    """Lay out the tab. ``upload``: the page's record of the session's last upload, shared with the other tabs
    that read it (see :func:`ui.folders.wire`)."""
    gr.Markdown(HELP)
    folders.install(demo)
    c = _layout()
    _wire(c, chooser, upload if upload is not None else folders.shared_upload())
    # ImageNet weights may arrive after the page was built (an online app fetches them as it starts).
    demo.load(model_on_load, [c.model, c.mode, c.lr, c.epochs], [c.pretrained, c.start_note, c.lr, c.epochs],
              show_progress="hidden", api_visibility="private")  # fmt: skip
    return c


def _layout() -> SimpleNamespace:
    """The tab's components, by name (settings on the left, progress on the right, results below)."""
    c = SimpleNamespace()
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            c.zip_file = controls.File(file_types=[".zip"], label="Zip of class folders", elem_id="train-zip")
            c.folder, c.folder_paths = folders.folder_input("train")
            c.dataset = controls.Dropdown(DATASET_CHOICES, value=ZIP, label="Dataset", elem_id="train-dataset")
            c.upload_note = gr.Markdown(elem_id="train-upload-note")
            c.limit = controls.Slider(
                100, 10_000, value=1000, step=100, label="At most this many images (built-in datasets)"
            )
            c.model = controls.Dropdown(MODEL_CHOICES, value="alexnet", label="Model", elem_id="train-model")
            with gr.Row():
                c.mode = controls.Radio([("head only", "head"), ("full", "full")], value="head", label="What learns")
                label, possible = pretrained_choice("alexnet")  # refreshed as a page loads (see build_tab)
                c.pretrained = controls.Checkbox(
                    possible, label=label, interactive=possible, elem_id="train-pretrained"
                )
            c.start_note = gr.Markdown(describe_start("alexnet", "head", possible), elem_id="train-start-note")
            with gr.Row():
                start = recipe(
                    "alexnet", possible, "head"
                )  # what the page's load would set (so it leaves a link's alone)
                c.epochs = controls.Slider(1, 50, value=start["epochs"], step=1, label="Epochs", elem_id="train-epochs")
                c.batch_size = controls.Slider(1, 256, value=16, step=1, label="Batch size")
            with gr.Row():
                c.lr = controls.Number(
                    start["lr"], label="Learning rate", minimum=1e-6, maximum=1.0, elem_id="train-lr"
                )
                c.optimizer = controls.Radio(["adam", "sgd"], value="adam", label="Optimizer")
            c.weight_decay = controls.Number(
                0.0, label="Weight decay (the paper: 0.0005, with SGD)", minimum=0.0, maximum=1.0, elem_id="train-decay"
            )
            with gr.Row():
                c.crop = controls.Checkbox(True, label="Random crops")
                c.flip = controls.Checkbox(True, label="Flips")
                c.color_jitter = controls.Checkbox(False, label="Colour jitter")
            with gr.Row():
                c.train_button = gr.Button("Train", variant="primary", elem_id="train-button")
                c.stop_button = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=2):
            c.status = gr.HTML(label="Progress", elem_id="train-status")
            c.report = gr.Markdown(label="Dataset", elem_id="train-report")
            c.curves = result_image(label="Loss and accuracy", elem_id="train-curves")
    _results_layout(c)
    c.save_work = long_jobs.session_note("train")
    return c


def _results_layout(c: SimpleNamespace) -> None:
    with gr.Row():
        c.confusion = gr.Dataframe(
            label="Confusion matrix (validation; click a cell)", interactive=False, elem_id="train-confusion"
        )
        c.per_class = gr.Dataframe(label="Accuracy per class", interactive=False, elem_id="train-per-class")
    with gr.Row():
        c.true_class = controls.Textbox(label="True class", elem_id="train-true")
        c.predicted_class = controls.Textbox(label="Predicted class", elem_id="train-predicted")
    c.mistakes_note = gr.Markdown(label="Misclassified", elem_id="train-mistakes-note")
    c.mistakes = gr.Gallery(label="Misclassified validation images", columns=8, height="auto", elem_id="train-mistakes")
    c.filters = result_image(label="conv1 filters: before (left) and after (right) training", elem_id="train-filters")
    c.downloads = controls.File(
        label="Downloads: weights (safetensors), description (JSON), ONNX",
        file_count="multiple",
        elem_id="train-downloads",
    )


# train()'s parameters, in its order: the HTTP API's /train takes them positionally.
TRAIN_INPUTS = ("zip_file", "dataset", "model", "mode", "pretrained", "epochs", "batch_size", "lr", "optimizer",
                "crop", "flip", "color_jitter", "limit", "weight_decay", "folder", "folder_paths")  # fmt: skip
TRAIN_OUTPUTS = ("status", "report", "curves", "confusion", "per_class", "filters", "downloads")
PICKED = ("true_class", "predicted_class", "mistakes", "mistakes_note")  # the misclassified view: cleared at a start


def _wire(c: SimpleNamespace, chooser: gr.Dropdown, upload: gr.State) -> None:
    outputs = {name: getattr(c, name) for name in TRAIN_OUTPUTS} | {"chooser": chooser}
    outputs |= {name: getattr(c, name) for name in PICKED}
    handler = keyed(train, outputs)
    training = c.train_button.click(
        handler,
        inputs=[getattr(c, name) for name in TRAIN_INPUTS],
        outputs=list(outputs.values()),
        api_name="train",
        concurrency_limit=1 if torch.cuda.is_available() else get_limits().long_jobs_running,  # others queue
        concurrency_id=LONG,
        validator=admits_long_jobs(handler),  # refused at the door, before it takes a place in the queue
    )
    c.stop_button.click(long_jobs.stop_handler(LONG), api_name="stop_training", cancels=[training])
    start = [c.start_note, c.lr, c.epochs]
    c.model.input(model_chosen, [c.model, c.mode], [c.pretrained, *start], api_name="train_model_chosen")
    gr.on([c.mode.input, c.pretrained.input], start_chosen, [c.model, c.mode, c.pretrained], start,
          api_name="train_start_chosen")  # fmt: skip
    folders.wire("Train", "remember", upload, dataset=c.dataset, note=c.upload_note, zip_file=c.zip_file,
                 folder=c.folder, folder_paths=c.folder_paths)  # fmt: skip
    c.confusion.select(
        pick_cell,
        inputs=c.confusion,
        outputs=[c.true_class, c.predicted_class],
        api_name="pick_cell",
        api_visibility="undocumented",
    ).then(
        misclassified,
        inputs=[c.true_class, c.predicted_class],
        outputs=[c.mistakes, c.mistakes_note],
        api_name="misclassified_after_click",
        api_visibility="undocumented",
    )
    gr.on(
        [c.true_class.submit, c.predicted_class.submit],
        misclassified,
        inputs=[c.true_class, c.predicted_class],
        outputs=[c.mistakes, c.mistakes_note],
        api_name="misclassified",
    )
