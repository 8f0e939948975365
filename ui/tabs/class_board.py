"""Tab 9, Class board: join a class with its code, see what the class published (live), and, as its teacher,
start a class, hide an entry, close it and download it. The database and the pooling live in
:mod:`playground.sharing.board`; the endpoints and the session's latest results in :mod:`ui.class_board`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from playground.lab import kernel_on
from playground.sharing.board import UNREACHABLE, pooled_curves
from ui import class_board
from ui.course import cup
from ui.handlers import keyed, user_errors

HELP = """
Your teacher writes a **class code** on the board. Type it with the name the class should see you by, press
**Join**, then use **Publish to my class** in the Train, Experiments or Convolution lab tab: your result
appears here for everyone, beside your classmates'. Experiments of the same preset and settings are
**pooled**: everyone's seeds in one table, which is how a class of forty can say whether a difference is more
than noise when one learner's three seeds cannot. Only numbers and pictures the app drew are published,
never your photos. The board refreshes itself every few seconds.
"""
TEACHER = """
Start a class: you get its code (for the board) and a **teacher key, shown once**: keep the teacher link (it
carries the key after `#`, which never reaches a server's logs). With the key you can hide an entry, close the
class and download the board.
"""
REFRESH_SECONDS = 5
# The pooled table's columns the board shows (the teacher's download has them all, as results.csv does).
SHOWN_COLUMNS = ("run", "differs in", "seeds", "val. accuracy", "chance", "top-1 error", "train accuracy",
                 "epochs to target", "against the first run")  # fmt: skip
DOWNLOADS = Path(tempfile.gettempdir()) / "alexnet-playground-board"  # the teacher's CSV/JSON, swept after an hour
# The board's pictures as PNG files, written once per change of a board and handed to every page that shows it
# (a picture handed over as an image would be encoded again for each page). The newest KEPT boards stay.
DRAWN = Path(tempfile.gettempdir()) / "alexnet-playground-board-drawn" / str(os.getpid())
KEPT = 64
GALLERY, CURVES = 24, 6  # the newest kernels drawn on the cup; the pooled experiments whose curves are drawn
PARTS = ("curves", "trainings", "kernels", "entries")  # hidden while empty
EMPTY = {"summary": "", "pooled": "", "curves": None, "trainings": None, "kernels": None, "entries": None}


def _plain(text) -> str:
    """A learner's or class's text inside Markdown: shown as written, never as a link, heading or HTML."""
    text = " ".join(str(text).split())
    for mark in "\\`*_{}[]()<>#+-.!|~":
        text = text.replace(mark, "\\" + mark)
    return text


def _note(text: str) -> str:
    """A pooled table's note: the report's own Markdown (bold, ×), but a run's label in it never a link or HTML."""
    for mark in "\\[]<>":
        text = text.replace(mark, "\\" + mark)
    return text


def _what(entry: dict) -> tuple[str, str]:
    result = entry["result"]
    if entry["kind"] == "training":
        checked = sum(map(sum, result["confusion"]))  # the validation images the accuracy is over
        return (
            f"{result['variant']} ({result['mode']}) on {result['dataset']}",
            f"{result['val_accuracy']:.1%} of {checked} validation images",
        )
    if entry["kind"] == "experiment":
        return f"{result['experiment']} on {result['dataset']}", f"{len(result['runs'])} runs"
    rows = result["kernel"]
    return f"kernel {result['name']}", f"{len(rows)} × {len(rows[0])}"


def _pooled_markdown(tables: list[dict]) -> str:
    if not tables:
        return "*No experiment published yet.*"
    parts = []
    for table in tables:
        parts.append(
            f"#### {_plain(table['experiment'])}: {table['learners']} learner{'s' * (table['learners'] != 1)}, "
            f"{table['seeds']} runs pooled"
        )
        columns = [c for c in table["table"][0] if c in SHOWN_COLUMNS] if table["table"] else []
        parts.append("| " + " | ".join(_plain(c) for c in columns) + " |")
        parts.append("|" + "---|" * len(columns))
        parts.extend("| " + " | ".join(_plain(row[c]) for c in columns) + " |" for row in table["table"])
        parts.extend(f"- {_note(note)}" for note in table["notes"])
    return "\n".join(parts)


@functools.lru_cache(maxsize=256)
def _kernel_picture(rows: tuple, name: str):
    import numpy as np

    return kernel_on(cup(), np.array(rows, dtype=np.float32), name)


def _folder(version: str) -> Path:
    """A new folder for one version's pictures; the oldest beyond the newest KEPT go (more than the cache holds)."""
    folder = DRAWN / hashlib.sha256(version.encode()).hexdigest()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(DRAWN.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _saved(picture, path: Path) -> str:
    """``picture`` as a PNG at ``path``, written whole before it appears (two pages may draw one version at once)."""
    partial = path.with_name(f".{path.name}.{threading.get_ident()}")
    picture.save(partial, format="png", compress_level=1)
    os.replace(partial, path)
    return str(path)


@functools.lru_cache(maxsize=32)
def _drawn(version: str) -> dict:
    """The board as the tab shows it, drawn once per change of the class's board (``version``), however many
    learners' pages are watching it."""
    code = version.split(":")[0]
    shown = class_board.board().board(code)
    entries = shown["entries"]
    ends = dt.datetime.fromisoformat(shown["ends"])
    summary = (
        f"### {_plain(shown['class'])}\nClass code **{shown['code']}** · {shown['learners']} learner"
        f"{'s' * (shown['learners'] != 1)} · {len(entries)} entr{'ies' if len(entries) != 1 else 'y'} · open until "
        f"{ends:%Y-%m-%d}"
    )
    experiments = [e for e in entries if e["kind"] == "experiment"]
    trainings = pd.DataFrame(
        [{"dataset": t["dataset"], "model": t["model"], "mode": t["mode"], "trainings": t["trainings"],
          "mean accuracy": f"{t['mean']:.1%}", "spread": "" if t["spread"] is None else f"± {t['spread']:.1%}",
          "lowest": f"{t['lowest']:.1%}", "highest": f"{t['highest']:.1%}"} for t in shown["trainings"]],
        columns=["dataset", "model", "mode", "trainings", "mean accuracy", "spread", "lowest", "highest"],
    )  # fmt: skip
    folder = _folder(version)
    newest = [e for e in entries if e["kind"] == "kernel"][-GALLERY:]
    kernels = [
        (_saved(_kernel_picture(tuple(map(tuple, e["result"]["kernel"])), e["result"]["name"]), folder / f"k{e['entry']}.png"),
         f"{e['learner']}: {e['result']['name']} (entry {e['entry']})")
        for e in newest
    ]  # fmt: skip
    listed = pd.DataFrame(
        [{"entry": e["entry"], "learner": e["learner"], "kind": e["kind"], "what": _what(e)[0], "result": _what(e)[1],
          "published (UTC)": dt.datetime.fromisoformat(e["published"]).strftime("%H:%M:%S")} for e in reversed(entries)],
        columns=["entry", "learner", "kind", "what", "result", "published (UTC)"],
    )  # fmt: skip
    return {
        "summary": summary,
        "pooled": _pooled_markdown(shown["pooled"]),
        "curves": [
            (_saved(plot.image(), folder / f"curves-{n}.png"), plot.title)
            for n, plot in enumerate(pooled_curves(experiments)[:CURVES])
        ]
        or None,  # fmt: skip
        "trainings": trainings,
        "kernels": kernels or None,
        "entries": listed,
    }


def show(code: str) -> dict:
    """Everything the tab shows of the class ``code``, and the version it shows (for the live refresh).

    Raises:
        ValueError: no such class, or it is closed or over.
    """
    version = class_board.board().version(code)
    return {**_shown(_drawn(version)), "seen": version, "timer": gr.Timer(active=True)}


def _shown(drawn: dict) -> dict:
    """The drawn board as updates: a part with nothing in it yet is hidden."""
    return {
        name: gr.update(value=value, visible=value is not None and len(value) > 0) if name in PARTS else value
        for name, value in drawn.items()
    }


@user_errors
def refresh(code: str, seen: str) -> dict:
    """The timer's tick: the board again when it changed since this page last drew it, nothing otherwise; a
    sentence (and no more ticks) once the class is closed or over."""
    if not code:
        return {"timer": gr.Timer(active=False)}
    try:
        version = class_board.board().version(code)
    except ValueError as error:
        if str(error) == UNREACHABLE:  # a passing outage: say so, keep asking, redraw once it is back
            return {"summary": _plain(str(error)), "seen": ""}
        return {**_shown(EMPTY), "summary": _plain(str(error)), "seen": "", "timer": gr.Timer(active=False)}
    if version == seen:
        return {}
    return {**_shown(_drawn(version)), "seen": version}


@user_errors
def look(code: str, request: gr.Request) -> dict:
    """Show a class's board without joining it (a teacher's, or a visitor's with the code)."""
    code = str(code or "").strip().upper()
    return class_board.looked_up(code, request, lambda: show(code))


@user_errors
def join(code: str, learner: str, request: gr.Request) -> dict:
    """Join with the code and a display name; the board, and who this page publishes as."""
    said = class_board.join_class(code, learner, request)
    code = str(code).strip().upper()
    member = {"code": code, "learner": " ".join(str(learner).split())}
    return {**show(code), "said": said + " Publish from the Train, Experiments or Convolution lab tab.",
            "membership": member}  # fmt: skip


@user_errors
def create(name: str, href: str) -> dict:
    """Start a class: its code, the teacher key (shown once) and the learners' and teacher's links."""
    code, key = class_board.create_class(name)
    base = str(href or "").split("?")[0].split("#")[0]
    learners, teacher = f"{base}?tab=board&class={code}", f"{base}?tab=board&class={code}#key={key}"
    made = (
        f"Class code **{code}**: write it on the board. Learners' link: `{learners}`\n\n"
        f"Teacher key (shown once; keep it): `{key}`\n\nTeacher link (keep it private): `{teacher}`"
    )
    return {**show(code), "made": made, "code": code, "key": key}


@user_errors
def hide(code: str, key: str, entry) -> str:
    if entry is None:
        raise ValueError("Type the number of the entry to hide (the first column of the entries).")
    number = int(entry) if isinstance(entry, int | float) and float(entry).is_integer() else entry
    return class_board.hide_entry(code, key, number)


@user_errors
def close(code: str, key: str) -> dict:
    said = class_board.close_class(code, key)
    return {**_shown(EMPTY), "teacher_said": said, "summary": said, "seen": "", "timer": gr.Timer(active=False)}


@user_errors
def download(form: str, code: str, key: str) -> tuple[str, str]:
    """The board as a CSV or JSON file for the teacher."""
    text = class_board.export_board(code, key, form)
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOADS.iterdir():  # the downloads of an hour ago have been fetched
        if old.stat().st_mtime < time.time() - 3600:
            old.unlink(missing_ok=True)
    path = Path(tempfile.mkstemp(prefix=f"board-{str(code).strip().upper()}-", suffix=f".{form}", dir=DOWNLOADS)[1])
    path.write_text(text, encoding="utf-8")
    return str(path), f"The board as {form.upper()}: {len(text) / 1024:,.1f} KB."


def publisher(kind: str):
    """A tab's "Publish to my class": the session's latest result of ``kind``, as the learner this page joined as."""

    @user_errors
    def publish(member, request: gr.Request) -> str:
        if not member:
            return "Join your class first: the Class board tab, with your class's code and your name."
        return class_board.publish_result(member["code"], member["learner"], kind, request)

    return publish


def membership() -> gr.State:
    """Which class this page joined, and as whom (the Train, Experiments and lab tabs publish through it)."""
    return gr.State(None)


def publish_row(kind: str, tab: str) -> SimpleNamespace:
    """A tab's "Publish to my class" button and its sentence."""
    with gr.Row():
        button = gr.Button("Publish to my class", size="sm", scale=0, min_width=180, elem_id=f"{tab}-publish")
        said = gr.Markdown(elem_id=f"{tab}-publish-said")
    return SimpleNamespace(kind=kind, button=button, said=said)


def build_tab(demo: gr.Blocks, member: gr.State, rows: list[SimpleNamespace]) -> SimpleNamespace:
    """Lay out the tab and wire it, and the other tabs' publish ``rows``."""
    gr.Markdown(HELP)
    with gr.Row():
        code = gr.Textbox(label="Class code", max_length=12, elem_id="board-code", scale=1)
        learner = gr.Textbox(label="Your name on the board", max_length=60, elem_id="board-learner", scale=2)
        join_button = gr.Button("Join", variant="primary", elem_id="board-join", scale=0, min_width=100)
        look_button = gr.Button("Show the board", elem_id="board-show", scale=0, min_width=140)
    said = gr.Markdown(elem_id="board-said")
    with gr.Accordion("Teacher: start a class, hide an entry, close it, download it", open=False):
        gr.Markdown(TEACHER)
        with gr.Row():
            name = gr.Textbox(label="Class name", max_length=60, elem_id="board-class-name", scale=3)
            create_button = gr.Button("Start a class", elem_id="board-create", scale=0, min_width=140)
        made = gr.Markdown(elem_id="board-made")
        key = gr.Textbox(label="Teacher key", type="password", max_length=100, elem_id="board-key")
        with gr.Row():
            entry = gr.Number(None, label="Entry number", precision=0, elem_id="board-entry", scale=1)
            hide_button = gr.Button("Hide this entry", elem_id="board-hide", scale=0, min_width=140)
            close_button = gr.Button("Close the class", variant="stop", elem_id="board-close", scale=0, min_width=140)
        with gr.Row():
            csv_button = gr.Button("Download CSV", elem_id="board-csv", scale=0, min_width=140)
            json_button = gr.Button("Download JSON", elem_id="board-json", scale=0, min_width=140)
            downloaded = gr.File(label="The board, for your records", interactive=False, elem_id="board-download")
        teacher_said = gr.Markdown(elem_id="board-teacher-said")
    summary = gr.Markdown(elem_id="board-summary")
    gr.Markdown("### Experiments, pooled over the class")
    pooled = gr.Markdown(elem_id="board-pooled")
    curves = gr.Gallery(label="Every learner's runs overlaid", columns=4, height=460, object_fit="contain", preview=True, format="png",
                        visible=False, elem_id="board-curves")  # fmt: skip
    trainings = gr.Dataframe(label="Fine-tuning accuracies by setting", interactive=False, visible=False,
                             elem_id="board-trainings")  # fmt: skip
    kernels = gr.Gallery(label="Kernels, each on the coffee cup", columns=4, fit_columns=False, height="auto", format="png",
                         visible=False, elem_id="board-kernels")  # fmt: skip
    entries = gr.Dataframe(label="Entries, newest first", interactive=False, max_height=400, visible=False,
                           elem_id="board-entries")  # fmt: skip
    seen = gr.State("")
    timer = gr.Timer(REFRESH_SECONDS, active=False)
    outputs = {"summary": summary, "pooled": pooled, "curves": curves, "trainings": trainings, "kernels": kernels,
               "entries": entries, "seen": seen, "timer": timer}  # fmt: skip
    layout = SimpleNamespace(code=code, learner=learner, key=key, outputs=outputs)
    _wire(demo, layout, member, rows, said=said, made=made, name=name, entry=entry, teacher_said=teacher_said,
          downloaded=downloaded, buttons=(join_button, look_button, create_button, hide_button, close_button,
                                          csv_button, json_button))  # fmt: skip
    return layout


def _wire(demo, layout, member, rows, *, said, made, name, entry, teacher_said, downloaded, buttons) -> None:
    join_button, look_button, create_button, hide_button, close_button, csv_button, json_button = buttons
    code, key, outputs = layout.code, layout.key, layout.outputs
    shown = list(outputs.values())
    private = {"api_visibility": "private"}
    joined = {**outputs, "said": said, "membership": member}
    join_button.click(keyed(join, joined), [code, layout.learner], list(joined.values()), **private)
    look_button.click(keyed(look, outputs), [code], shown, **private)
    started = {**outputs, "made": made, "code": code, "key": key}
    create_button.click(keyed(create, started), [name, gr.Textbox(visible=False)], list(started.values()),
                        js="(name, href) => [name, window.location.href]", **private)  # fmt: skip
    hide_button.click(hide, [code, key, entry], teacher_said, **private)
    closed = {**outputs, "teacher_said": teacher_said}
    close_button.click(keyed(close, closed), [code, key], list(closed.values()), **private)
    for button, form in ((csv_button, "csv"), (json_button, "json")):
        button.click(user_errors(functools.partial(download, form)), [code, key],
                     [downloaded, teacher_said], **private)  # fmt: skip
    layout.outputs["timer"].tick(keyed(refresh, outputs), [code, outputs["seen"]], shown, **private)
    # A link (?tab=board&class=CODE) opens the board at once; a teacher link's key (after #) fills the key box.
    demo.load(keyed(opened, outputs), None, shown, **private)
    demo.load(None, None, key, js="() => new URLSearchParams(window.location.hash.slice(1)).get('key') || ''")
    for row in rows:
        row.button.click(publisher(row.kind), [member], row.said, **private)


@user_errors
def opened(request: gr.Request) -> dict:
    """The page opened with ``?tab=board&class=CODE``: that class's board (a sentence if it cannot be shown)."""
    query = dict(getattr(request, "query_params", None) or {})
    if query.get("tab") != "board" or not query.get("class"):
        return {}
    try:
        code = str(query["class"]).strip().upper()[:12]
        return class_board.looked_up(code, request, lambda: show(code))
    except ValueError as error:
        return {**_shown(EMPTY), "summary": _plain(str(error))}
