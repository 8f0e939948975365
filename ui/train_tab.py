"""Tab 6, Train: fine-tune on a zip of your photos or a built-in dataset, watch it learn, then use the
model in every other tab (for this browser session only)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from playground import data, models
from playground.export import write_bundle
from playground.filters import filter_grid
from playground.models import ModelInfo
from playground.training import FinetuneConfig, FinetuneResult, Progress, finetune
from ui.common import result_image, uploaded_path
from ui.model_panel import STORE, refresh_choices, session_of

ZIP = "your zip"
DATASET_CHOICES = [ZIP, "synthetic", "fashion-mnist", "five-flowers", "cifar10"]
MODEL_CHOICES = [*models.MODELS, *models.BASELINES]
MAX_SECONDS = float(os.environ.get("PLAYGROUND_TRAIN_MAX_SECONDS", "900"))  # per job, wall clock
MAX_THUMBNAILS = 500  # misclassified validation images kept for browsing
MAX_RUNS = 16  # finished runs kept across sessions (API callers never close a tab)
HELP = """
Upload a **zip of class folders** (`daisy/1.jpg`, `rose/7.jpg`, …, or all inside one top folder) or pick a
dataset, then press **Train**. The defaults are the course's recipe: ImageNet-pretrained AlexNet, a new
final layer for your classes, Adam at 0.001, batch 16, 10 epochs. *Head only* trains just that final
layer on features computed once (fast, even on a CPU); *full* trains every layer with augmentation.
"""


@dataclasses.dataclass
class Run:
    """What a session keeps of its last finished run (server side; freed when the session ends)."""

    result: FinetuneResult
    thumbnails: dict  # dataset index -> small PIL image, for the misclassified validation images
    folder: str  # where the downloads were written


class Jobs:
    """One training job per session; the last finished run per session."""

    def __init__(self):
        self._lock = threading.Lock()
        self.running: dict[str, threading.Event] = {}  # session -> stop flag
        self.runs: dict[str, Run] = {}

    def claim(self, session: str) -> threading.Event:
        with self._lock:
            if session in self.running:
                raise gr.Error("You already have a training job running; stop it or wait for it to finish.")
            flag = self.running[session] = threading.Event()
            return flag

    def release(self, session: str) -> None:
        with self._lock:
            self.running.pop(session, None)

    def stop(self, session: str) -> None:
        with self._lock:
            flag = self.running.get(session)
        if flag:
            flag.set()

    def keep(self, session: str, run: Run) -> None:
        with self._lock:
            dropped = [self.runs.pop(session)] if session in self.runs else []
            self.runs[session] = run
            while len(self.runs) > MAX_RUNS:  # the oldest run of any session goes first
                dropped.append(self.runs.pop(next(iter(self.runs))))
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)

    def forget(self, session: str) -> None:
        self.stop(session)
        with self._lock:
            run = self.runs.pop(session, None)
        if run:
            shutil.rmtree(run.folder, ignore_errors=True)


JOBS = Jobs()


def _dataset(choice, zip_file, limit, should_stop):
    if choice in (None, "", ZIP):
        if zip_file is None:
            raise gr.Error("Upload a zip of class folders, or choose one of the built-in datasets.")
        name = os.path.splitext(os.path.basename(str(zip_file)))[0]
        return data.read_zip(uploaded_path(zip_file), name=name, should_stop=should_stop)
    if choice not in data.DATASETS:
        raise gr.Error(f"Unknown dataset {choice!r}.")
    return data.open_dataset(choice, limit=int(limit) if limit else None)


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


def _curves(points):
    frame = pd.DataFrame(points, columns=["step", "value", "series"])
    return frame[frame.series == "training loss"], frame[frame.series != "training loss"]


def _confusion_table(result: FinetuneResult) -> pd.DataFrame:
    table = pd.DataFrame(result.confusion, columns=list(result.classes))
    table.insert(0, "true \\ predicted", list(result.classes))
    return table


def train(
    zip_file=None, dataset=ZIP, model="alexnet", mode="head", pretrained=True, epochs=10, batch_size=16, lr=1e-3,
    optimizer="adam", crop=True, flip=True, color_jitter=False, limit=1000, request: gr.Request = None,
):
    """Fine-tune and stream progress; at the end, the results and the model in this session's chooser."""
    session = session_of(request)
    stop = JOBS.claim(session)
    deadline = time.monotonic() + MAX_SECONDS  # the cap covers reading the data too
    skip = gr.skip()
    try:
        try:
            chosen = _dataset(dataset, zip_file, limit, lambda: stop.is_set() or time.monotonic() > deadline)
            config = FinetuneConfig(
                model=model, pretrained=bool(pretrained), mode=mode, optimizer=optimizer, lr=float(lr), epochs=int(epochs),
                batch_size=int(batch_size), image_size=64 if model in models.BASELINES else 224, crop=bool(crop),
                flip=bool(flip), color_jitter=bool(color_jitter), max_seconds=MAX_SECONDS,
            )
            config.validate()
        except gr.Error:
            raise  # already worded for the user (gr.Error is a ValueError too)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        report = chosen.report.summary() if chosen.report else f"{chosen.name}: {len(chosen)} images, {len(chosen.classes)} classes."
        points, shown, last_val_epoch = [], 0.0, 0
        run = finetune(config, chosen)
        try:
            for record in run:
                if stop.is_set():
                    run.close()  # stops within this step and frees the model
                    yield "<p>Stopped. Nothing from this run was kept; your earlier results are unchanged.</p>", *[skip] * 8
                    return
                if isinstance(record, Progress):
                    if record.total_steps:
                        points += [(record.step, record.loss, "training loss"), (record.step, record.accuracy, "training accuracy")]
                        if record.val_accuracy is not None and record.epoch != last_val_epoch:
                            last_val_epoch = record.epoch  # one point per finished epoch
                            points.append((record.step - 1, record.val_accuracy, "validation accuracy"))
                    if time.monotonic() - shown > 0.5 or record.step == record.total_steps:
                        shown = time.monotonic()
                        loss, accuracy = _curves(points)
                        yield _progress_html(record), report, loss, accuracy, skip, skip, skip, skip, skip
                    continue
                if stop.is_set():  # the session ended while the last epoch ran: keep nothing
                    return
                yield _finish(record, chosen, session, report, points, request)
        except gr.Error:
            raise  # already worded for the user (gr.Error is a ValueError too)
        except ValueError as error:  # the engine's messages (e.g. out of GPU memory)
            raise gr.Error(str(error)) from None
        finally:
            run.close()
    finally:
        JOBS.release(session)


def _finish(result: FinetuneResult, dataset, session, report, points, request):
    thumbnails = {}
    for index, *_ in result.misclassified[:MAX_THUMBNAILS]:
        pixels = dataset.images[index]
        pixels = pixels.expand(3, -1, -1) if pixels.shape[0] == 1 else pixels
        thumbnails[index] = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((112, 112))
    folder = tempfile.mkdtemp(prefix="alexnet-playground-run-")
    files = [str(p) for p in write_bundle(result, folder, stem=f"{result.variant}-{dataset.name}".replace(" ", "_").replace("/", "_"))]
    # The weights now live in the files and in the chooser; the run record needs only the numbers.
    JOBS.keep(session, Run(dataclasses.replace(result, state_dict={}), thumbnails, folder))
    summary = (
        f"<p><b>Done</b>: validation accuracy <b>{result.val_accuracy:.1%}</b> after {len(result.history)} epoch(s) in "
        f"{result.seconds:.1f} s ({result.images_per_second:,.0f} images/s).</p>"
        + (f"<div class='notice'>⚠️ {result.notice}</div>" if result.notice else "")
    )
    per_class = pd.DataFrame({"class": list(result.classes), "accuracy": [f"{a:.0%}" for a in result.per_class_accuracy],
                              "validation images": result.confusion.sum(axis=1).tolist()})
    before = after = None
    chooser = gr.skip()
    if result.variant in models.MODELS:
        before = filter_grid(result.initial_first_conv)
        after = filter_grid(result.state_dict["features.0.weight"])
        info = ModelInfo(result.variant, "file", f"trained here on {dataset.name} ({result.val_accuracy:.0%} val.)", result.classes)
        key = STORE.add(session, result.model(), info)
        chooser = refresh_choices(key, request)
        summary += "<p>Your model is now in the model chooser at the top: look at its filters, activations and explanations.</p>"
        if result.config.mode == "head":
            summary += "<p>Head only: conv1 was frozen, so its filters before and after are the same. Train in full mode to watch them move.</p>"
    else:
        summary += "<p>The baselines have no convolutional layers to look at; download the checkpoint to use it.</p>"
    if points and result.history:
        points = points + [(points[-1][0], result.history[-1]["val_accuracy"], "validation accuracy")]
    loss, accuracy = _curves(points)
    return summary, report, loss, accuracy, _confusion_table(result), per_class, _pair(before, after), files, chooser


def _pair(before, after):
    if before is None:
        return None
    gap = 24
    image = Image.new("RGB", (before.width + after.width + gap, max(before.height, after.height)), "white")
    image.paste(before, (0, 0))
    image.paste(after, (before.width + gap, 0))
    return image


def misclassified(true_class, predicted_class, request: gr.Request = None):
    """The validation images of ``true_class`` the model took for ``predicted_class``."""
    run = JOBS.runs.get(session_of(request))
    if run is None:
        raise gr.Error("Train a model first: the misclassified images come from your last run.")
    classes = list(run.result.classes)
    if true_class not in classes or predicted_class not in classes:
        raise gr.Error("Choose a true and a predicted class from your dataset.")
    t, p = classes.index(true_class), classes.index(predicted_class)
    cell = [(i, confidence) for i, truth, guess, confidence in run.result.misclassified if truth == t and guess == p]
    items = [(run.thumbnails[i], f"{true_class} → {predicted_class} ({confidence:.0%})") for i, confidence in cell if i in run.thumbnails]
    shown = f" (showing the {len(items)} most confident)" if len(items) < len(cell) else ""
    note = (f"{len(cell)} validation image(s) of **{true_class}** taken for **{predicted_class}**{shown}." if t != p
            else "The diagonal holds the correct answers; pick a cell off it.")
    return items, note


def pick_cell(table, evt: gr.SelectData):
    """A click on the confusion matrix chooses (true, predicted)."""
    row, column = evt.index
    if column == 0 or table is None:
        return gr.skip(), gr.skip()
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    return frame.iloc[row, 0], frame.columns[column]


def request_stop(request: gr.Request = None):
    JOBS.stop(session_of(request))


def forget(request: gr.Request):
    JOBS.forget(session_of(request))


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown) -> None:
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            zip_file = gr.File(file_types=[".zip"], label="Zip of class folders", elem_id="train-zip")
            dataset = gr.Dropdown(DATASET_CHOICES, value=ZIP, label="Dataset", elem_id="train-dataset")
            limit = gr.Slider(100, 10_000, value=1000, step=100, label="At most this many images (built-in datasets)")
            model = gr.Dropdown(MODEL_CHOICES, value="alexnet", label="Model", elem_id="train-model")
            with gr.Row():
                mode = gr.Radio([("head only", "head"), ("full", "full")], value="head", label="What learns")
                pretrained = gr.Checkbox(True, label="Start from ImageNet weights (alexnet)")
            with gr.Row():
                epochs = gr.Slider(1, 50, value=10, step=1, label="Epochs", elem_id="train-epochs")
                batch_size = gr.Slider(1, 256, value=16, step=1, label="Batch size")
            with gr.Row():
                lr = gr.Number(1e-3, label="Learning rate", minimum=1e-6, maximum=1.0)
                optimizer = gr.Radio(["adam", "sgd"], value="adam", label="Optimizer")
            with gr.Row():
                crop = gr.Checkbox(True, label="Random crops")
                flip = gr.Checkbox(True, label="Flips")
                color_jitter = gr.Checkbox(False, label="Colour jitter")
            with gr.Row():
                train_button = gr.Button("Train", variant="primary", elem_id="train-button")
                stop_button = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=2):
            status = gr.HTML(label="Progress", elem_id="train-status")
            report = gr.Markdown(label="Dataset", elem_id="train-report")
            with gr.Row():
                loss_plot = gr.LinePlot(x="step", y="value", color="series", label="Loss", height=240, elem_id="train-loss")
                accuracy_plot = gr.LinePlot(x="step", y="value", color="series", label="Accuracy", y_lim=[0, 1], height=240, elem_id="train-accuracy")
    with gr.Row():
        confusion = gr.Dataframe(label="Confusion matrix (validation; click a cell)", interactive=False, elem_id="train-confusion")
        per_class = gr.Dataframe(label="Accuracy per class", interactive=False, elem_id="train-per-class")
    with gr.Row():
        true_class = gr.Textbox(label="True class", elem_id="train-true")
        predicted_class = gr.Textbox(label="Predicted class", elem_id="train-predicted")
    mistakes_note = gr.Markdown(label="Misclassified", elem_id="train-mistakes-note")
    mistakes = gr.Gallery(label="Misclassified validation images", columns=8, height="auto", elem_id="train-mistakes")
    filters = result_image(label="conv1 filters: before (left) and after (right) training", elem_id="train-filters")
    downloads = gr.File(label="Downloads: weights (safetensors), description (JSON), ONNX", file_count="multiple", elem_id="train-downloads")

    training = train_button.click(
        train,
        inputs=[zip_file, dataset, model, mode, pretrained, epochs, batch_size, lr, optimizer, crop, flip, color_jitter, limit],
        outputs=[status, report, loss_plot, accuracy_plot, confusion, per_class, filters, downloads, chooser],
        api_name="train",
        concurrency_limit=1 if torch.cuda.is_available() else 2,  # one GPU job at a time; others queue
        concurrency_id="training",
    )
    stop_button.click(request_stop, api_name="stop_training", cancels=[training])
    confusion.select(pick_cell, inputs=confusion, outputs=[true_class, predicted_class], api_name="pick_cell", api_visibility="undocumented").then(
        misclassified, inputs=[true_class, predicted_class], outputs=[mistakes, mistakes_note], api_name="misclassified_after_click", api_visibility="undocumented"
    )
    gr.on([true_class.submit, predicted_class.submit], misclassified, inputs=[true_class, predicted_class], outputs=[mistakes, mistakes_note], api_name="misclassified")
    demo.unload(forget)
