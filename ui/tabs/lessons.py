"""Tab 0, Lessons: the course in ten lessons, the page's first view. Each lesson has its words, a picture drawn
live, "Show me" (the right tab, already set up), and exercises the app checks (:mod:`playground.lessons`).

Progress (lessons done, each exercise's last reply and whether it was right) is kept in the learner's browser
(``gr.BrowserState``, local storage), so it survives a reload and a server restart; "My notes" downloads it
as a printable HTML page with the lessons' pictures. HTTP API: ``/lessons`` and ``/check_answer``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import io
import tempfile
import threading
from pathlib import Path

import gradio as gr

from playground import lessons as L
from playground import models
from playground.config import get_limits
from playground.images import load_image
from ui import course, links
from ui.handlers import user_errors
from ui.model_panel import DEFAULT_MODEL, get_model, notice_markdown
from ui.photos import example_paths, result_image

SLOTS = 3  # exercises shown at once: the most any lesson has
STORAGE_KEY = "alexnet-playground-lessons"
# Progress is the learner's own and not secret; a fixed key lets it survive a server restart (a random one,
# Gradio's default, would make every stored progress unreadable after one).
STORAGE_SECRET = "alexnet-playground-lesson-progress"
NOTES_DIR = Path(tempfile.gettempdir()) / "alexnet-playground-notes"
NOTES_KEPT = 200  # notes files kept for their download; older ones are removed as new ones are written

INTRO = """
## Start here: the course
Ten short lessons, from what one kernel does to a coffee cup to fine-tuning AlexNet on your own photos.
Each has a picture drawn live, a **Show me** button that opens the right tab already set up, and a few
questions the app checks. Your progress stays in this browser.
"""


def empty_progress() -> dict:
    return {"done": [], "answers": {}}


def clean_progress(progress) -> dict:
    """A progress record as stored, whatever the browser sent (a hand-edited one is not trusted)."""
    progress = progress if isinstance(progress, dict) else {}
    done = [n for n in progress.get("done", []) if isinstance(n, int) and n in course.BY_NUMBER]
    answers = progress.get("answers", {})
    answers = {
        str(k)[:40]: {"reply": str(v.get("reply", ""))[:400], "right": bool(v.get("right"))}
        for k, v in (answers.items() if isinstance(answers, dict) else [])
        if isinstance(v, dict)
    }
    return {"done": sorted(set(done)), "answers": dict(list(answers.items())[:200])}


@functools.cache
def _course_for(model_key: str) -> L.Course:
    """The course whose "look" exercises ask about ``model_key`` (the shared variant; read only)."""
    return L.course(lambda: get_model(model_key)[0])


def _model_key(key) -> str:
    return key if key in models.MODELS else DEFAULT_MODEL


def _lesson(number) -> course.Lesson:
    try:
        return course.BY_NUMBER[int(number)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"There is no lesson {number!r}; the lessons are 1 to {len(course.LESSONS)}.") from None


# --- the HTTP API ---------------------------------------------------------------------------------------------


@user_errors
def list_lessons() -> list[dict]:
    """The lessons in order: number, title, and their exercises (key, kind, question, choices)."""
    exercises = _course_for(DEFAULT_MODEL).exercises
    return [
        {
            "number": lesson.number,
            "title": lesson.title,
            "exercises": [
                {"key": e.key, "kind": e.kind, "question": e.question, "choices": list(e.choices)}
                for e in exercises.get(lesson.number, ())
            ],
        }
        for lesson in course.LESSONS
    ]


@user_errors
def check_answer(lesson: int, exercise: str, answer: str) -> str:
    """The verdict on ``answer`` to one exercise: a sentence starting with "Right" or "Not yet"."""
    number = _lesson(lesson).number
    try:
        return _course_for(DEFAULT_MODEL).check_answer(number, str(exercise), str(answer))
    except KeyError as error:
        raise ValueError(error.args[0]) from None


# --- drawing a lesson -----------------------------------------------------------------------------------------

_pictures_lock = threading.Lock()


@functools.lru_cache(maxsize=64)
def _picture(number: int, model_key: str):
    return course.BY_NUMBER[number].picture(get_model(model_key)[0])


def lesson_picture(number: int, model_key: str):
    """The lesson's picture for the model in front of the learner (drawn once per model, then kept)."""
    with _pictures_lock:  # a class opening the same lesson at once draws it once
        return _picture(int(number), _model_key(model_key))


def _exercises(number: int, model_key: str) -> tuple[L.Exercise, ...]:
    return _course_for(_model_key(model_key)).exercises.get(number, ())


def _progress_line(progress: dict) -> str:
    done = progress["done"]
    right = sum(1 for a in progress["answers"].values() if a["right"])
    total = sum(len(group) for group in _course_for(DEFAULT_MODEL).exercises.values())
    lessons = ", ".join(str(n) for n in done) or "none yet"
    return f"**Your progress:** {len(done)} of {len(course.LESSONS)} lessons done ({lessons}); {right} of {total} answers right."


def _lesson_markdown(lesson: course.Lesson, model_key: str, progress: dict) -> str:
    _, info = get_model(_model_key(model_key))
    notice = ""
    if lesson.needs_weights and info.notice:
        notice = (
            f"\n\n<div class='notice'>⚠️ The model in front of you has no trained weights, and {lesson.needs_weights}. "
            "The exercises below ask about the model as it is.</div>"
        )
    done = " ✓ done" if lesson.number in progress["done"] else ""
    return f"### Lesson {lesson.number}: {lesson.title}{done}\n\n{lesson.text}{notice}"


@user_errors
def open_lesson(number=1, model_key=DEFAULT_MODEL, progress=None):
    """The lesson's words, its exercises (with the learner's last replies), and the progress line."""
    lesson, progress = _lesson(number), clean_progress(progress)
    exercises = _exercises(lesson.number, model_key)
    updates = []
    for slot in range(SLOTS):
        if slot >= len(exercises):
            updates += [gr.update(visible=False), "", gr.update(value=""), gr.update(value=None), ""]
            continue
        exercise = exercises[slot]
        saved = progress["answers"].get(f"{lesson.number}/{exercise.key}", {})
        choice = exercise.kind == "prediction"
        said = ("✓ " if saved.get("right") else "") + ("(your last answer) " if saved else "")
        updates += [
            gr.update(visible=True),
            f"**{slot + 1}.** {exercise.question}",
            gr.update(value=saved.get("reply", "") if not choice else "", visible=not choice),
            gr.update(choices=list(exercise.choices), value=saved.get("reply") if choice else None, visible=choice),
            f"{said}" if saved else "",
        ]
    return [_lesson_markdown(lesson, model_key, progress), lesson.caption, *updates, _progress_line(progress)]


@user_errors
def draw_lesson_picture(number=1, model_key=DEFAULT_MODEL):
    return lesson_picture(_lesson(number).number, model_key)


@user_errors
def check_slot(slot: int, number, model_key, reply, choice, progress):
    """Check one exercise's reply; the verdict, and the progress with the reply kept."""
    lesson, progress = _lesson(number), clean_progress(progress)
    exercises = _exercises(lesson.number, model_key)
    if slot >= len(exercises):
        raise ValueError("This lesson has no such exercise.")
    exercise = exercises[slot]
    answer = choice if exercise.kind == "prediction" else reply
    if answer is None or not str(answer).strip():
        raise ValueError("Type an answer (or choose one) first.")
    verdict = exercise.check(str(answer)[:2000])
    progress["answers"][f"{lesson.number}/{exercise.key}"] = {"reply": str(answer)[:400], "right": verdict.right}
    if all(progress["answers"].get(f"{lesson.number}/{e.key}", {}).get("right") for e in exercises):
        progress["done"] = sorted(set(progress["done"]) | {lesson.number})  # every exercise right: lesson done
    mark = "✓ " if verdict.right else "✗ "
    return mark + html.escape(verdict.sentence), progress, _progress_line(progress)


@user_errors
def reveal_slot(slot: int, number, model_key):
    exercises = _exercises(_lesson(number).number, model_key)
    if slot >= len(exercises):
        raise ValueError("This lesson has no such exercise.")
    answer, working = exercises[slot].solve()
    shown = f"{answer:,}" if isinstance(answer, int) else str(answer).replace("\n", " / ")
    return f"**The answer: {html.escape(shown)}.** {html.escape(working)}".replace("\n", "<br>")


@user_errors
def mark_done(number, progress):
    progress = clean_progress(progress)
    progress["done"] = sorted(set(progress["done"]) | {_lesson(number).number})
    return progress, _progress_line(progress)


@user_errors
def reset_progress():
    progress = empty_progress()
    return progress, _progress_line(progress)


# --- My notes -------------------------------------------------------------------------------------------------


def _data_url(picture) -> str:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def notes_html(progress: dict, model_key: str) -> str:
    """The learner's notes: each lesson done or answered, their answers and verdicts, and its picture."""
    progress = clean_progress(progress)
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>My AlexNet Playground notes</title>",
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.45}"
        "img{max-width:100%}li{margin:.4em 0}.right{color:#1b5e20}.wrong{color:#8b1a1a}</style>",
        "<h1>My AlexNet Playground notes</h1>",
        f"<p>{html.escape(_progress_line(progress).replace('**', ''))}</p>",
    ]
    for lesson in course.LESSONS:
        exercises = _exercises(lesson.number, model_key)
        answered = [(e, progress["answers"].get(f"{lesson.number}/{e.key}")) for e in exercises]
        if lesson.number not in progress["done"] and not any(saved for _, saved in answered):
            continue
        done = " (done)" if lesson.number in progress["done"] else ""
        parts.append(f"<h2>Lesson {lesson.number}: {html.escape(lesson.title)}{done}</h2><ol>")
        for exercise, saved in answered:
            if saved:
                mark = "<span class='right'>right</span>" if saved["right"] else "<span class='wrong'>not yet</span>"
                reply = html.escape(saved["reply"]).replace("\n", " / ")
                parts.append(f"<li>{html.escape(exercise.question)}<br>My answer: <b>{reply}</b> ({mark})</li>")
            else:
                parts.append(f"<li>{html.escape(exercise.question)}<br><i>not answered</i></li>")
        parts.append("</ol>")
        alt = html.escape(lesson.caption, quote=True)
        parts.append(f"<figure><img alt='{alt}' src='{_data_url(lesson_picture(lesson.number, model_key))}'>"
                     f"<figcaption>{html.escape(lesson.caption)}</figcaption></figure>")  # fmt: skip
    parts.append("</html>")
    return "\n".join(parts)


@user_errors
def my_notes(progress=None, model_key=DEFAULT_MODEL) -> str:
    """Write the notes to a file for its download (the folder keeps the newest ``NOTES_KEPT``)."""
    text = notes_html(progress, _model_key(model_key))
    NOTES_DIR.mkdir(parents=True, exist_ok=True)
    old = sorted(NOTES_DIR.glob("*.html"), key=lambda p: p.stat().st_mtime)
    for path in old[: max(0, len(old) - NOTES_KEPT + 1)]:
        path.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=NOTES_DIR, prefix="my-notes-", suffix=".html", delete=False,
                                     encoding="utf-8") as handle:  # fmt: skip
        handle.write(text)
    return handle.name


# --- for teachers ---------------------------------------------------------------------------------------------


def lesson_plan() -> str:
    rows = [
        f"| [{lesson.number}. {lesson.title}](?lesson={lesson.number}) | {lesson.minutes} min | {lesson.prepare} |"
        for lesson in course.LESSONS
    ]
    total = sum(lesson.minutes for lesson in course.LESSONS)
    return (
        f"**Lesson plan** ({total} minutes in all; each lesson's link opens it):\n\n"
        "| lesson | time | what to prepare |\n| --- | --- | --- |\n" + "\n".join(rows)
    )


def _opens(path: str) -> bool:
    try:
        load_image(path)
    except (OSError, ValueError):
        return False
    return True


@user_errors
def checklist() -> str:
    """The before-class checklist, checked now on this server."""
    import torch

    limits = get_limits()
    _, info = get_model(DEFAULT_MODEL)
    weights = ("✓ ImageNet weights are present: the filters, maps and top-5 mean something."
               if not info.notice else f"⚠️ No ImageNet weights: {notice_markdown(info)}")  # fmt: skip
    device = (f"✓ GPU: {torch.cuda.get_device_name(0)}." if torch.cuda.is_available()
              else "ℹ️ No GPU: fine-tuning runs on the CPU (minutes, not seconds; head only is quick).")  # fmt: skip
    broken = [path for path in example_paths() if not _opens(path)]
    examples = ("✓ The example photos load." if not broken
                else f"✗ {len(broken)} of the example photos do not load: restart the app.")  # fmt: skip
    learners = (
        f"ℹ️ By its limits this server holds {limits.sessions_kept} sessions, runs {limits.concurrency} requests "
        f"at once and {limits.long_jobs_running} trainings at a time (more wait in line, at most "
        f"{limits.long_jobs_waiting} waiting); the README's Performance section says what 40 learners measured."
    )
    return "\n\n".join(["**Before class** (checked just now):", weights, device, examples, learners])


# --- layout and wiring ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Slot:
    group: gr.Group
    question: gr.Markdown
    reply: gr.Textbox
    choice: gr.Radio
    verdict: gr.Markdown
    check: gr.Button
    reveal: gr.Button

    def parts(self) -> list:
        return [self.group, self.question, self.reply, self.choice, self.verdict]


@dataclasses.dataclass
class LessonsLayout:
    chooser: gr.Radio
    text: gr.Markdown
    picture: gr.Image
    show_me: gr.Button
    slots: list[Slot]
    done: gr.Button
    progress_line: gr.Markdown
    reset: gr.Button
    notes_button: gr.Button
    notes: gr.File
    checklist: gr.Markdown
    recheck: gr.Button
    progress: gr.BrowserState


def _lay_out_slot(slot: int) -> Slot:
    with gr.Group(visible=slot < 2) as group:
        question = gr.Markdown(elem_id=f"lesson-question-{slot}")
        reply = gr.Textbox(label="Your answer", lines=1, max_lines=12, max_length=2000, elem_id=f"lesson-reply-{slot}")
        choice = gr.Radio([], label="Your prediction", visible=False, elem_id=f"lesson-choice-{slot}")
        with gr.Row():
            check = gr.Button("Check", variant="primary", elem_id=f"lesson-check-{slot}", min_width=100)
            reveal = gr.Button("Show the answer", elem_id=f"lesson-reveal-{slot}", min_width=100)
        verdict = gr.Markdown(elem_id=f"lesson-verdict-{slot}")
    return Slot(group, question, reply, choice, verdict, check, reveal)


def _lay_out() -> LessonsLayout:
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            chooser = gr.Radio([(f"{lesson.number}. {lesson.title}", lesson.number) for lesson in course.LESSONS],
                               value=1, label="Lessons", elem_id="lesson-list")  # fmt: skip
            progress_line = gr.Markdown(elem_id="lesson-progress")
            done = gr.Button("Mark this lesson done", elem_id="lesson-done")
            notes_button = gr.Button("My notes (download)", elem_id="lesson-notes-button")
            notes = gr.File(label="My notes", interactive=False, height=90, elem_id="lesson-notes")
            reset = gr.Button("Reset my progress", variant="stop", elem_id="lesson-reset")
        with gr.Column(scale=3, min_width=320):
            text = gr.Markdown(elem_id="lesson-text")
            picture = result_image(label="Drawn live by the app", elem_id="lesson-picture", height=300)
            show_me = gr.Button("Show me", variant="primary", elem_id="lesson-show-me")
            gr.Markdown("#### Exercises")
            slots = [_lay_out_slot(slot) for slot in range(SLOTS)]
    with gr.Accordion("For teachers: the lesson plan and a before-class checklist", open=False,
                      elem_id="lesson-teachers"):  # fmt: skip
        gr.Markdown(lesson_plan())
        checklist_md = gr.Markdown(elem_id="lesson-checklist")
        recheck = gr.Button("Check again")
    progress = gr.BrowserState(empty_progress(), storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    return LessonsLayout(chooser, text, picture, show_me, slots, done, progress_line, reset, notes_button, notes,
                         checklist_md, recheck, progress)  # fmt: skip


@user_errors
def lesson_from_link(progress=None, request: gr.Request = None):
    """The lesson a link names (``?lesson=3``), else the first the learner has not done."""
    asked = (getattr(request, "query_params", None) or {}).get("lesson") if request else None
    if asked is not None:
        try:
            return _lesson(asked).number
        except ValueError:
            gr.Warning(f"There is no lesson {str(asked)[:20]!r}; opening lesson 1.")
            return 1
    done = set(clean_progress(progress)["done"])
    return next((lesson.number for lesson in course.LESSONS if lesson.number not in done), 1)


def _wire(demo: gr.Blocks, model: gr.Dropdown, t: LessonsLayout) -> None:
    shown = [t.text, t.picture, *[part for slot in t.slots for part in slot.parts()], t.progress_line]
    opened = gr.on([t.chooser.change], open_lesson, [t.chooser, model, t.progress], shown,
                   show_progress="hidden", api_visibility="private")  # fmt: skip
    opened.then(draw_lesson_picture, [t.chooser, model], t.picture, api_visibility="private")
    loaded = demo.load(lesson_from_link, [t.progress], t.chooser, api_visibility="private")
    loaded.then(open_lesson, [t.chooser, model, t.progress], shown, api_visibility="private").then(
        draw_lesson_picture, [t.chooser, model], t.picture, api_visibility="private"
    )
    model.change(draw_lesson_picture, [t.chooser, model], t.picture, api_visibility="private")
    for index, slot in enumerate(t.slots):
        slot.check.click(user_errors(functools.partial(check_slot, index)), [t.chooser, model, slot.reply, slot.choice, t.progress],
                         [slot.verdict, t.progress, t.progress_line], api_visibility="private", show_progress="minimal")  # fmt: skip
        slot.reply.submit(user_errors(functools.partial(check_slot, index)), [t.chooser, model, slot.reply, slot.choice, t.progress],
                          [slot.verdict, t.progress, t.progress_line], api_visibility="private", show_progress="minimal")  # fmt: skip
        slot.reveal.click(user_errors(functools.partial(reveal_slot, index)), [t.chooser, model], slot.verdict,
                          api_visibility="private")  # fmt: skip
    t.done.click(mark_done, [t.chooser, t.progress], [t.progress, t.progress_line], api_visibility="private")
    t.reset.click(reset_progress, None, [t.progress, t.progress_line], api_visibility="private").then(
        open_lesson, [t.chooser, model, t.progress], shown, api_visibility="private"
    )
    t.notes_button.click(my_notes, [t.progress, model], t.notes, api_visibility="private")
    gr.on([demo.load, t.recheck.click], checklist, None, t.checklist, api_visibility="private")
    gr.api(list_lessons, api_name="lessons")
    gr.api(check_answer, api_name="check_answer")


def reopen(event, model: gr.Dropdown, t: LessonsLayout) -> None:
    """After ``event`` set the progress (a project file opened), show the lesson with it."""
    shown = [t.text, t.picture, *[part for slot in t.slots for part in slot.parts()], t.progress_line]
    event.then(open_lesson, [t.chooser, model, t.progress], shown, api_visibility="private").then(
        draw_lesson_picture, [t.chooser, model], t.picture, api_visibility="private"
    )


def build_tab(demo: gr.Blocks, model: gr.Dropdown) -> LessonsLayout:
    """Lay out the tab inside ``demo`` and wire it (endpoints: ``/lessons``, ``/check_answer``); "Show me" is
    wired by :func:`wire_show_me` once the other tabs exist."""
    layout = _lay_out()
    _wire(demo, model, layout)
    return layout


# --- Show me --------------------------------------------------------------------------------------------------


def show_me_targets(views: dict[str, object]) -> list:
    """(tab, field, component) for every control some lesson's "Show me" sets."""
    wanted: dict[str, set[str]] = {}
    for lesson in course.LESSONS:
        wanted.setdefault(lesson.show_me.tab, set()).update(f for f in lesson.show_me.values if f != "model")
    return links.targets(views, wanted)


def show_me_values(number, targets: list) -> list:
    """What "Show me" sends: the lesson's view, as a link to it would open it (:func:`ui.links.values_for`)."""
    return links.values_for(_lesson(number).show_me, targets)


def wire_show_me(layout: LessonsLayout, tabs: gr.Tabs, model: gr.Dropdown, views: dict[str, object]) -> None:
    """Each lesson's "Show me": select its tab and set that tab's controls (``views``: each tab's layout)."""
    targets = show_me_targets(views)
    layout.show_me.click(
        user_errors(functools.partial(show_me_values, targets=targets)),
        layout.chooser,
        [tabs, model, *[component for _, _, component in targets]],
        api_visibility="private",
    )
