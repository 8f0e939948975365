"""Save my work / Open my work: a session's work as one project file (:mod:`playground.sharing.project`), and back.

The page's buttons save and restore everything: every tab's settings (kept as link queries, and read back
through :func:`ui.links.parse`, value by value), the photos of the learner's own that the tabs show, the lesson
progress, the session's models, its last training's numbers and its last experiment. Over HTTP,
``/save_project`` and ``/open_project`` do the same for what the server holds (models, training, experiment);
a script has no page whose settings could be saved.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from playground import models
from playground.images import load_image
from playground.serving import jobs
from playground.sharing import project
from playground.weights import checkpoints
from ui import links, long_jobs
from ui.handlers import bounded, user_errors
from ui.model_panel import refresh_choices
from ui.photos import uploaded_path
from ui.queueing import address
from ui.state import JOBS, STORE, session_of

FILE_NAME = "alexnet-playground-project.zip"
PHOTO_TABS = project.PHOTO_TABS  # the tabs with a photo of their own, in this order
GOES_WITH_THE_SESSION = long_jobs.GOES_WITH_THE_SESSION


# --- saving ---------------------------------------------------------------------------------------------------


def saved_work(session: str, folder: Path, *, chosen: str = "", views=None, photos=None, lessons=None) -> project.Work:
    """What ``session`` holds on the server (its models, last training and experiment) and what the page sent."""
    work = project.Work(views=dict(views or {}), photos=dict(photos or {}), lessons=dict(lessons or {}))
    for n, (key, model, info) in enumerate(STORE.own(session)):
        path = checkpoints.save_checkpoint(model, folder / f"model-{n}.safetensors", variant=info.name,
                                           classes=info.classes, options=dict(info.options))  # fmt: skip
        work.models.append(project.SavedModel(info.description, path))
        if key == chosen:
            work.chosen = f"model-{n}"
    if not work.chosen and chosen in models.MODELS:
        work.chosen = chosen
    training = JOBS.last_run(session, "train")
    if training is not None and training.summary is not None:
        work.training = training.summary
    experiment = JOBS.last_run(session, "experiment")
    if experiment is not None and experiment.result is not None:
        work.experiment = experiment.result
        work.runs = {
            index: project.SavedModel(experiment.descriptions[index], Path(path))
            for index, path in experiment.checkpoints.items()
            if Path(path).is_file()
        }
    return work


def _what(work: project.Work) -> str:
    parts = []
    if work.models:
        parts.append(f"{len(work.models)} model{'s' * (len(work.models) != 1)}")
    if work.training:
        parts.append("your last training's numbers")
    if work.experiment:
        parts.append(f"your experiment ({len(work.experiment.outcomes)} runs, {len(work.runs)} with their weights)")
    if work.views:
        parts.append(f"the settings of {len(work.views)} tabs")
    if work.photos:
        parts.append(f"{len(work.photos)} photo{'s' * (len(work.photos) != 1)} of yours")
    if work.lessons.get("answers") or work.lessons.get("done"):
        parts.append("your lesson progress")
    return ", ".join(parts) or "nothing yet (train a model, run an experiment or change a setting first)"


def save(session: str, **page) -> tuple[str, str]:
    """Write the session's project file; (its path, a sentence saying what is in it)."""
    from ui import guard

    if not session:
        raise ValueError("A session is needed to save your work.")
    out = Path(tempfile.mkdtemp(prefix="project-", dir=get_upload_folder()))  # swept like every result
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        work = saved_work(session, Path(scratch), **page)
        size = sum(m.path.stat().st_size for m in [*work.models, *work.runs.values()])
        if not guard.sweep(size):
            shutil.rmtree(out, ignore_errors=True)
            raise ValueError("The server's disk is full right now; please try again in a few minutes.")
        path = out / FILE_NAME
        left_out = project.write(work, path)
    size = path.stat().st_size
    shown = f"{size / 2**20:,.1f} MB" if size >= 2**20 else f"{max(1, round(size / 1024))} KB"
    said = f"Saved {_what(work)} in {FILE_NAME} ({shown})."
    return str(path), " ".join([said, *left_out])


def _page_views(fields: list[tuple[str, str]], values: list, chooser: str) -> dict[str, str]:
    """Every tab's settings as a link's query (an uploaded photo is saved as a photo instead)."""
    views = {}
    for tab in links.FIELDS:
        mine = [(field, value) for (t, field), value in zip(fields, values, strict=True) if t == tab]
        settings = [field for field, _ in mine] + (["model"] if tab in links.MODEL_TABS else [])
        view, _ = links.current_view(tab, settings, [value for _, value in mine] + [chooser])
        if tab in links.MODEL_TABS and chooser not in models.MODELS:
            view.values.pop("model", None)  # a model of the session's own is restored as a model, not a setting
        views[tab] = links.address("", view).split("?", 1)[1]
    return views


def _own_photo(value) -> bytes | None:
    """A tab's photo as PNG when it is the learner's own (an example is a setting, not a photo)."""
    path = uploaded_path(value) if value is not None else None
    if not path or links.example_of(path) is not None:
        return None
    buffer = io.BytesIO()
    load_image(path).save(buffer, format="PNG")
    return buffer.getvalue()


# --- opening --------------------------------------------------------------------------------------------------


def restore(session: str, path, visitor: str) -> tuple[project.Work, str, list[str]]:
    """Read the project file at ``path`` into ``session``: its models join the chooser, its training and
    experiment become the session's last; (the work read, the chosen model's key, sentences on what happened).

    Raises:
        ValueError: the file is refused (nothing of it is kept).
    """
    from ui import guard

    if not session:
        raise ValueError("A session is needed to open your work.")
    if path is None:
        raise ValueError("Choose a project file first (one that Save my work wrote).")
    size = os.path.getsize(path)
    if not guard.sweep(size):
        raise ValueError("The server's disk is full right now; please try again in a few minutes.")
    folder = Path(jobs.new_run_folder())
    work = project.read(path, folder)
    said, keys = [], []
    for saved in work.models:

        def loader(admit, saved=saved):  # charged to the store from the file's headers, before it is built
            model, info = checkpoints.load_user_checkpoint(saved.path, admit=admit)
            return model, checkpoints.ModelInfo(info.name, "file", saved.description, info.classes,
                                                options=info.options)  # fmt: skip

        try:
            keys.append(STORE.load(session, loader, visitor=visitor))
        except ValueError as error:
            keys.append(None)
            said.append(f"The model “{saved.description}” was not opened: {error}")
        finally:
            saved.path.unlink(missing_ok=True)
    chosen = work.chosen
    if chosen.startswith("model-"):
        index = int(chosen.split("-")[1])
        chosen = keys[index] if index < len(keys) and keys[index] else ""
    if work.training is not None:
        JOBS.keep(session, jobs.TrainingRun(None, {}, jobs.new_run_folder(), work.training), "train")
    if work.experiment is not None:
        run = jobs.ExperimentRun(
            work.experiment,
            {index: str(saved.path) for index, saved in work.runs.items()},
            {index: saved.description for index, saved in work.runs.items()},
            str(folder),
        )
        JOBS.keep(session, run, "experiment")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    opened = sum(1 for key in keys if key)
    what = _what(
        project.Work(views=work.views, photos=work.photos, lessons=work.lessons, training=work.training,
                     experiment=work.experiment, runs=work.runs, models=[m for m, k in zip(work.models, keys) if k])
    )  # fmt: skip
    said.insert(
        0,
        f"Opened {what}."
        if opened or work.training or work.experiment or work.views
        else "Opened: the file holds no work.",
    )
    return work, chosen, said


@user_errors
def save_project(request: gr.Request = None):
    """``/save_project``: the calling session's project file (its models, last training and experiment)."""
    return save(session_of(request))


@user_errors
def open_project(file, request: gr.Request = None):
    """``/open_project``: restore a project file into the calling session; what was restored (or why not),
    then the session's model chooser and its experiment's runs, so its later calls may name them."""
    from ui.tabs.experiments import _run_choices

    session = session_of(request)
    try:
        _, chosen, said = restore(session, uploaded_path(file), address(request))
    except ValueError as error:
        return bounded(f"Not opened. {error}"), gr.skip(), gr.skip()
    choice = refresh_choices(chosen, request) if chosen else gr.update(choices=STORE.choices(session))
    return bounded(" ".join(said)), choice, _run_choices(JOBS.last_run(session, "experiment"))


# --- the page -------------------------------------------------------------------------------------------------


def build_panel() -> SimpleNamespace:
    """The "My work" row under the model chooser (wired by :func:`wire` once every tab exists)."""
    p = SimpleNamespace()
    with gr.Accordion("My work: save it in one file, open it again", open=False, elem_id="my-work"):
        gr.Markdown(GOES_WITH_THE_SESSION)
        with gr.Row():
            with gr.Column():
                p.save = gr.Button("Save my work", variant="primary", elem_id="save-work")
                p.saved = gr.File(label="Your project file (download it)", interactive=False, elem_id="saved-work")
            with gr.Column():
                p.open = gr.File(label="Open my work (a project file)", file_types=[".zip"], elem_id="open-work")
        p.said = gr.Markdown(elem_id="work-said")
    with gr.Row(visible=False):  # the HTTP endpoints' own values: a script sends and reads only these
        p.api_button = gr.Button("api", visible=False)
        p.api_file = gr.File(visible=False)
        p.api_saved = gr.File(visible=False)
        p.api_said = gr.Textbox(visible=False)
    return p


UNSAVED_JS = """
() => {
  if (!window.__playgroundUnsavedHook) {
    window.__playgroundUnsavedHook = true;
    window.addEventListener('beforeunload', (event) => {
      if (window.__playgroundUnsaved) { event.preventDefault(); event.returnValue = ''; }
    });
  }
}
"""
MARK_JS = "(value) => { if (String(value || '').startsWith('mine:')) window.__playgroundUnsaved = true; }"
SAVED_JS = "() => { window.__playgroundUnsaved = false; }"


def wire(demo, panel, chooser, views: dict, lessons, train, experiments, save_buttons: list) -> None:
    """Save and open every tab's settings and photos, the progress, the models and the runs."""
    every = [(tab, field, c) for tab, field, c in links.all_targets(views) if field != "photo"]  # photos: their own
    photos = [getattr(views[tab], "image", None) or views[tab].photo for tab in PHOTO_TABS]
    fields = [(tab, field) for tab, field, _ in every]
    train_outputs = [train.status, train.curves, train.confusion, train.per_class]
    experiment_keys = ("status", "curves", "table", "notes", "downloads", "runs")
    experiment_outputs = [experiments.outputs[key] for key in experiment_keys]

    from ui.tabs.lessons import reopen as reopen_lessons

    @user_errors
    def save_page(request: gr.Request, chooser_key, progress, *values):  # the request first: *values takes the rest
        from ui.tabs.lessons import clean_progress

        shots, settings = values[: len(PHOTO_TABS)], list(values[len(PHOTO_TABS) :])
        own = {tab: png for tab, value in zip(PHOTO_TABS, shots, strict=True) if (png := _own_photo(value))}
        path, said = save(session_of(request), chosen=chooser_key or "", views=_page_views(fields, settings, chooser_key),
                          photos=own, lessons=clean_progress(progress))  # fmt: skip
        return path, said

    @user_errors
    def open_page(file, request: gr.Request = None):
        from ui.tabs.experiments import shown_run
        from ui.tabs.lessons import clean_progress
        from ui.tabs.train import shown_summary

        skip = [gr.skip()] * (2 + len(PHOTO_TABS) + len(every) + len(train_outputs) + len(experiment_outputs))
        if file is None:
            return ["", *skip]
        try:
            work, chosen, said = restore(session_of(request), uploaded_path(file), address(request))
        except ValueError as error:
            gr.Warning(bounded(f"Not opened. {error}"))
            return [bounded(f"Not opened. {error}"), *skip]
        parsed = {}
        for tab, query in work.views.items():
            view, problems = links.parse(dict(urllib.parse.parse_qsl(query)))
            if view is not None and view.tab == tab:
                parsed[tab] = view
            said.extend(f"{tab}: {p}" for p in problems)
        settings = [parsed[t].values[f] if t in parsed and f in parsed[t].values else gr.skip() for t, f, _ in every]
        shots = []
        for tab in PHOTO_TABS:
            if tab in work.photos:
                shots.append(Image.open(io.BytesIO(work.photos[tab])).convert("RGB"))
            elif tab in parsed and "photo" in parsed[tab].values:
                shots.append(links.example_paths()[int(parsed[tab].values["photo"])])
            else:
                shots.append(gr.skip())
        trained = shown_summary(work.training) if work.training else {}
        run = JOBS.last_run(session_of(request), "experiment") if work.experiment else None
        shown = shown_run(run) if run is not None else {}
        progress = clean_progress(work.lessons) if work.lessons else gr.skip()
        session = session_of(request)
        choice = refresh_choices(chosen, request) if chosen else gr.update(choices=STORE.choices(session))
        return [
            bounded(" ".join(said)), choice, progress, *shots, *settings,
            *[trained.get(k, gr.skip()) for k in ("status", "curves", "confusion", "per_class")],
            *[shown.get(k, gr.skip()) for k in experiment_keys],
        ]  # fmt: skip

    inputs = [chooser, lessons.progress, *photos, *[c for _, _, c in every]]
    for button in [panel.save, *save_buttons]:
        button.click(save_page, inputs, [panel.saved, panel.said], api_visibility="private").then(
            None, js=SAVED_JS, api_visibility="private"
        )
    outputs = [panel.said, chooser, lessons.progress, *photos, *[c for _, _, c in every], *train_outputs,
               *experiment_outputs]  # fmt: skip
    opened = panel.open.upload(open_page, panel.open, outputs, api_visibility="private")
    reopen_lessons(opened, chooser, lessons)
    panel.api_button.click(save_project, None, [panel.api_saved, panel.api_said], api_name="save_project")
    panel.api_button.click(open_project, panel.api_file, [panel.api_said, chooser, experiments.outputs["runs"]],
                           api_name="open_project")  # fmt: skip
    demo.load(None, js=UNSAVED_JS, api_visibility="private")
    chooser.change(None, chooser, None, js=MARK_JS, api_visibility="private")
