"""Tab 7, Experiments: the lecture's ladder and the paper's ablations, run side by side on your data, with
the paper's or the lecture's number beside ours; every finished run can be opened in the other tabs."""

from __future__ import annotations

import dataclasses
import html
import shutil
import time
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import torch

from playground.config import get_limits
from playground.data import datasets as data
from playground.serving import jobs
from playground.training.experiments import PRESETS, SETTINGS, ExperimentConfig, Queued, Step, plan, vary
from playground.training.report import Overlay, Target, summarise, write_results
from playground.weights import checkpoints
from ui import controls, folders, long_jobs, runner
from ui.handlers import Clock, keyed, user_errors
from ui.model_panel import refresh_choices
from ui.photos import result_image
from ui.queueing import LONG, address, admits_long_jobs
from ui.state import JOBS, STORE, UPLOADS, session_of

ZIP, FOLDER = folders.ZIP, folders.FOLDER
DATASET_CHOICES = [ZIP, FOLDER, *data.DATASETS]
PRESET_CHOICES = [(recipe.title, name) for name, recipe in PRESETS.items()]
HELP = """
Run the lecture's ladder or one of the paper's ablations on **your data** (a zip or a folder of class folders)
or a built-in set: the runs differ in one setting, share one train/validation split and the same seeds, and
train one after another. Or compose your own: pick a setting and the values to compare. Repeats over two or
more seeds give a spread, and the table says when a difference is inside the noise.
"""
STOPPED = "Stopped. The runs that had finished are kept below (and can be opened in the other tabs)."
# Every results panel, empty: a new experiment shows nothing of the last one meanwhile.
CLEARED = {"report": "", "curves": None, "table": None, "notes": "", "downloads": None}


@user_errors
def describe(preset="relu-vs-tanh") -> str:
    """What a preset compares, how, and the number the paper or the lecture gives (labelled as theirs)."""
    recipe = ExperimentConfig(preset=preset).recipe
    config = ExperimentConfig(preset=preset)
    base = config.base_settings()
    runs = "; ".join(f"**{run.label}** ({_settings(run.settings)})" for run in config.arms())  # as they train here
    return (
        f"**{recipe.title}.** {recipe.question}\n\n"
        f"Runs: {runs}. Shared: {_settings(base)}; built-in data: {config.limit() or 'every'} images. "
        f"Epochs to target count epochs to {recipe.target.describe()}.\n\n"
        f"<div class='theirs'><b>Theirs, not ours:</b> {html.escape(recipe.theirs)}</div>"
    )


def _settings(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items()) or "the defaults"


def _config(preset, seeds, setting, values, epochs, target) -> ExperimentConfig:
    recipe = ExperimentConfig(preset=preset).recipe
    base = {"epochs": int(epochs)} if epochs else {}
    goal = Target(float(target) / 100, recipe.target.on) if target else None
    runs = vary(setting, values) if values and str(values).strip() else ()
    config = ExperimentConfig(
        preset=preset,
        runs=runs,
        base=base,
        seeds=int(seeds),
        target=goal,
        max_seconds=get_limits().train_max_seconds,  # the training cap covers the whole experiment
    )
    plan(config)  # a bad combination gets its sentence now, before a worker starts
    (goal or recipe.target).check()
    return config


def _request(config, zip_file, dataset, limit, folder, folder_paths, last=None) -> jobs.ExperimentRequest:
    return jobs.ExperimentRequest(
        config, folders.source(dataset, zip_file, folder, folder_paths, limit, last), jobs.new_run_folder()
    )


def _queue(queued, finished: dict, current: tuple | None) -> str:
    """The experiment's runs in order: done (with the score), running (where it is), waiting."""
    items = []
    for index, (label, seed) in enumerate(queued):
        name = f"{html.escape(label)} <small>(seed {seed})</small>"
        if index in finished:
            items.append(f"<li>✓ {name}: validation accuracy {finished[index].val_accuracy:.1%}</li>")
        elif current and current[0] == index:
            items.append(f"<li><b>▶ {name}</b>: {html.escape(current[1])}</li>")
        else:
            items.append(f"<li>· {name}</li>")
    return f"<ol class='experiment-queue'>{''.join(items)}</ol>"


def _where(step: Step) -> str:
    progress = step.progress
    if not progress.total_steps:
        return progress.message
    return (
        f"epoch {progress.epoch} of {progress.epochs}, step {progress.step} of {progress.total_steps}, "
        f"training accuracy {progress.accuracy:.1%}"
    )


def _table(result) -> pd.DataFrame:
    return pd.DataFrame(result.table())


def _notes(result) -> str:
    theirs = (
        f"<div class='theirs'><b>Theirs, not ours:</b> {html.escape(result.theirs)}</div>\n\n" if result.theirs else ""
    )
    return theirs + "\n".join(f"- {html.escape(note)}" for note in result.notes)


@user_errors
def experiment(
    zip_file=None,
    dataset=ZIP,
    preset="relu-vs-tanh",
    seeds=1,
    vary="activation",
    values="",
    epochs=0,
    target=0,
    limit=0,
    folder=None,
    folder_paths=None,
    request: gr.Request = None,
):
    """Run the experiment in a worker process and stream its queue, curves and table; keep its runs.

    Yields dicts keyed by output name (see :func:`build_tab`); an output a message leaves out keeps its value.
    """
    session = session_of(request)
    config = _config(preset, seeds, vary, values, epochs, target)
    job = _request(config, zip_file, dataset, limit, folder, folder_paths, UPLOADS.last(session))
    if runner.zero_gpu():
        job = dataclasses.replace(job, gpu_seconds=jobs.planned_experiment_gpu_seconds(job))
    progress = _Progress(config, session, job, Clock.start())
    try:
        with long_jobs.LongJob(long_jobs.JobKind(worker_name="experiment"), request) as slot:
            yield {"status": "<p>Starting a worker process and reading the data…</p>", **CLEARED}
            records = slot.run(jobs.experiment_job, job, cap_seconds=config.max_seconds)
            for record in folders.once_read(records, session, job.source):
                if isinstance(record, long_jobs.Stopped):
                    yield progress.stopped()
                    return
                yield progress.update(record)
    finally:
        if progress.kept is None:
            shutil.rmtree(job.folder, ignore_errors=True)  # nothing finished: nothing to keep


class _Progress:
    """What the tab shows of one experiment as its records arrive: the queue, the curves, the table so far."""

    def __init__(self, config: ExperimentConfig, session: str, job: jobs.ExperimentRequest, clock: Clock):
        self.config, self.session, self.job, self.clock = config, session, job, clock
        self.labels = [run.label for run in config.arms()]  # named as they train here (ImageNet weights or not)
        self.goal = config.target or config.recipe.target
        self.overlay = Overlay(self.labels, self.goal, config.recipe.title if not config.runs else "Your experiment")
        self.queued, self.finished, self.outcomes, self.current = (), {}, [], None
        self.shown, self.redraws = 0.0, long_jobs.Redraws()
        self.report = ""
        self.kept: jobs.ExperimentRun | None = None  # this experiment's runs, once one has finished

    def update(self, record) -> dict:
        """The tab's update for one record of the job (may be empty)."""
        if isinstance(record, long_jobs.Waiting):  # why it waits; or, busy, what it last said stays shown
            return {"status": f"<p>{record.text()}</p>"} if record.why else {}
        if isinstance(record, jobs.DatasetReady):
            self.report = record.report
            return {"report": self.report}
        if isinstance(record, Queued):
            self.queued = record.runs
            return {"status": _queue(self.queued, self.finished, None)}
        if isinstance(record, Step):
            return self._step(record)
        if isinstance(record, jobs.RunFinished):
            return self._run_finished(record)
        if isinstance(record, jobs.ExperimentOutcome):
            return self._done(record)
        return {}

    def _step(self, record: Step) -> dict:
        self.overlay.add(record.label, record.seed, record.progress)
        self.current = (record.index, _where(record))
        now = time.monotonic()
        if now - self.shown <= 1.0:
            return {}
        self.shown, update = now, {"status": _queue(self.queued, self.finished, self.current)}
        if self.redraws.due(now):
            update["curves"] = self.redraws.draw(self.overlay.image)
        return update

    def _run_finished(self, record: jobs.RunFinished) -> dict:
        self.overlay.settle(record.outcome)
        self.finished[record.index] = record.outcome
        self.outcomes.append(record.outcome)
        self.kept = _keep(self.session, self.kept, self.job.folder, record)
        partial = summarise(self.config.recipe, self.labels, self.outcomes, self.goal, dataset_name="",
                            planned=len(self.queued), capped=False, seconds=0.0)  # fmt: skip
        return {
            "status": _queue(self.queued, self.finished, None),
            "curves": self.overlay.image(),
            "table": _table(partial),
            "runs": _run_choices(self.kept),
        }

    def _done(self, record: jobs.ExperimentOutcome) -> dict:
        self.kept = self.kept or _keep(self.session, None, self.job.folder, None)
        self.kept.result = result = record.result
        return {
            "status": _queue(self.queued, self.finished, None)
            + f"<p><b>Done</b>: {len(result.outcomes)} of {result.planned} runs; {self._took(result.seconds)}.</p>",
            "report": self.report,  # every output in the last message: an API client reads only that one
            "curves": overlay_image(record.files),
            "table": _table(result),
            "notes": _notes(result),
            "downloads": record.files,
            "runs": _run_choices(self.kept),
        }

    def _took(self, running: float) -> str:
        return self.clock.took(("running them", running), rest="starting, reading the data and writing the files")

    def stopped(self) -> dict:
        """Stop pressed (or the listener left): what finished stays, with its files."""
        job = self.job
        name = job.source.name
        update = _stopped(self.kept, self.config, self.labels, self.outcomes, self.goal, name, self.overlay)
        return {"report": self.report, **update}


def overlay_image(files: list[str]) -> str:
    return next(path for path in files if path.endswith(".png"))


def _keep(
    session, kept: jobs.ExperimentRun | None, folder: str, finished: jobs.RunFinished | None
) -> jobs.ExperimentRun:
    """This session's experiment as runs finish: each run's weights, to open in the other tabs."""
    if kept is None:
        kept = jobs.ExperimentRun(None, {}, {}, folder)
        JOBS.keep(session, kept, "experiment")  # the session's previous experiment (and its files) goes
    if finished is not None and finished.checkpoint:
        kept.checkpoints[finished.index] = finished.checkpoint
        kept.descriptions[finished.index] = finished.description
    return kept


def _stopped(kept, config, labels, outcomes, goal, dataset, overlay) -> dict:
    """Stop pressed (or the listener left): what finished stays, with its files."""
    if not outcomes:
        return {"status": f"<p>{STOPPED}</p>"}
    result = summarise(config.recipe if not config.runs else None, labels, outcomes, goal, dataset_name=dataset,
                       planned=len(outcomes), capped=False, seconds=0.0)  # fmt: skip
    kept.result = result
    files = [str(path) for path in write_results(result, kept.folder)]
    return {
        "status": f"<p>{STOPPED}</p>",
        "curves": overlay.image(),
        "table": _table(result),
        "notes": _notes(result),
        "downloads": files,
        "runs": _run_choices(kept),
    }


def shown_run(kept: jobs.ExperimentRun) -> dict:
    """The tab's results for an experiment opened from a project file (its files written again beside its runs)."""
    result = kept.result
    files = [str(path) for path in write_results(result, kept.folder)]
    return {
        "status": f"<p>Opened from your project: {len(result.outcomes)} of {result.planned} runs of "
        f"{html.escape(result.title)} on {html.escape(result.dataset)}.</p>",
        "curves": overlay_image(files),
        "table": _table(result),
        "notes": _notes(result),
        "downloads": files,
        "runs": _run_choices(kept),
    }


def _run_choices(kept: jobs.ExperimentRun | None):
    choices = [(text, str(index)) for index, text in sorted(kept.descriptions.items())] if kept else []
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)


@user_errors
def open_run(run, request: gr.Request = None):
    """Put a finished run of this session's experiment into the model chooser, for every other tab."""
    session = session_of(request)
    kept = JOBS.last_run(session, "experiment")
    if kept is None or run in (None, "") or not str(run).isdigit() or int(run) not in kept.checkpoints:
        raise ValueError(
            "Choose a finished run of your experiment first (baselines cannot be opened: no convolutions)."
        )
    index = int(run)

    def loader(admit):  # charged to the store from the file's headers, before the model is built
        model, info = checkpoints.load_user_checkpoint(kept.checkpoints[index], admit=admit)
        return model, dataclasses.replace(info, description=f"experiment: {kept.descriptions[index]}")

    key = STORE.load(session, loader, visitor=address(request))
    return refresh_choices(key, request), f"Opened **{kept.descriptions[index]}**: it is now the chosen model."


def build_tab(demo: gr.Blocks, chooser: gr.Dropdown, upload: gr.State | None = None) -> SimpleNamespace:
    """Lay out and wire the tab. ``upload``: the page's record of the session's last upload, shared with the
    other tabs that read it (see :func:`ui.folders.wire`)."""
    gr.Markdown(HELP)
    folders.install(demo)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            zip_file = controls.File(file_types=[".zip"], label="Zip of class folders", elem_id="experiment-zip")
            folder, folder_paths = folders.folder_input("experiment")
            dataset = controls.Dropdown(DATASET_CHOICES, value=ZIP, label="Dataset", elem_id="experiment-dataset")
            upload_note = gr.Markdown(elem_id="experiment-upload-note")
            limit = controls.Slider(
                0, 20_000, value=0, step=100, label="Images of a built-in dataset (0: the preset's)"
            )
            preset = controls.Dropdown(
                PRESET_CHOICES, value="relu-vs-tanh", label="Experiment", elem_id="experiment-preset"
            )
            about = gr.Markdown(describe("relu-vs-tanh"), elem_id="experiment-about")
            with gr.Accordion(
                "Compose your own runs (they replace the preset's; its shared settings stay)", open=False
            ):
                with gr.Row():
                    vary = controls.Dropdown(list(SETTINGS), value="activation", label="Setting to vary")
                    values = controls.Textbox("", label="Values, separated by commas", placeholder="relu, tanh, sigmoid",
                                            elem_id="experiment-values")  # fmt: skip
            with gr.Row():
                seeds = controls.Slider(1, 5, value=1, step=1, label="Seeds (repeats)", elem_id="experiment-seeds")
                epochs = controls.Slider(
                    0, 50, value=0, step=1, label="Epochs (0: the preset's)", elem_id="experiment-epochs"
                )
            target = controls.Number(0, label="Target error in % (0: the preset's)", minimum=0, maximum=99)
            with gr.Row():
                run_button = gr.Button("Run the experiment", variant="primary", elem_id="experiment-button")
                stop_button = gr.Button("Stop", variant="stop", elem_id="experiment-stop")
        with gr.Column(scale=2):
            status = gr.HTML(label="Queue", elem_id="experiment-status")
            report = gr.Markdown(label="Dataset", elem_id="experiment-report")
            curves = result_image(
                label="Training and validation error, every run overlaid", elem_id="experiment-curves"
            )
    # The whole width, so its twelve columns fit a desktop screen (a phone scrolls it sideways): every row shown,
    # no inner scroll hiding the last run; columns sized by their contents, wrapping only between words
    # (assets/style.css).
    table = gr.Dataframe(
        label="Results (mean ± spread over seeds)",
        interactive=False,
        wrap=True,
        max_height="none",
        elem_id="experiment-table",
    )
    notes = gr.Markdown(label="Notes", elem_id="experiment-notes")
    downloads = controls.File(
        label="Downloads: results.json, results.csv (every run and seed), summary.csv (the table), curves.png",
        file_count="multiple",
        elem_id="experiment-downloads",
    )
    with gr.Row():
        runs = controls.Dropdown([], label="A finished run", elem_id="experiment-runs", scale=2)
        open_button = gr.Button("Open it in the other tabs", elem_id="experiment-open")
        opened = gr.Markdown(elem_id="experiment-opened")
    save_work = long_jobs.session_note("experiments")

    outputs = {"status": status, "report": report, "curves": curves, "table": table, "notes": notes,
               "downloads": downloads, "runs": runs}  # fmt: skip
    handler = keyed(experiment, outputs)
    running = run_button.click(
        handler,
        inputs=[zip_file, dataset, preset, seeds, vary, values, epochs, target, limit, folder, folder_paths],
        outputs=list(outputs.values()),
        api_name="experiment",
        concurrency_limit=1 if torch.cuda.is_available() else get_limits().long_jobs_running,
        concurrency_id=LONG,  # one long job per session, training or experiment, admitted at the door
        validator=admits_long_jobs(handler),
    )
    stop_button.click(long_jobs.stop_handler(LONG), api_name="stop_experiment", cancels=[running])
    preset.change(describe, inputs=preset, outputs=about, api_name="describe_experiment")
    folders.wire("Experiments", "remember_experiment", upload if upload is not None else folders.shared_upload(),
                 dataset=dataset, note=upload_note, zip_file=zip_file, folder=folder, folder_paths=folder_paths)  # fmt: skip
    open_button.click(open_run, inputs=runs, outputs=[chooser, opened], api_name="open_run")
    return SimpleNamespace(dataset=dataset, preset=preset, seeds=seeds, epochs=epochs, vary=vary, values=values,
                           limit=limit, target=target, outputs=outputs, save_work=save_work)  # fmt: skip
