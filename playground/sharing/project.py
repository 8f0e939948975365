"""A learner's work in one file: "Save my work" writes it, "Open my work" reads it back, here or on another server.

A project file is a zip::

    project.json                  the manifest: format and version, every tab's settings (as link queries),
                                  the lesson progress, which model was chosen, and what the other members are
    models/model-<n>.safetensors  the session's own models (weights + variant, classes and options in the metadata)
    training.json                 the last training's numbers: curves, per-class accuracy, confusion matrix
    experiment/results.json       the last experiment: every run and seed with its history
    experiment/run-<i>.safetensors  its runs' weights, to open in the other tabs
    experiment/results.csv, summary.csv, curves.png   the same experiment, for people (not read back)
    photos/<tab>.png              a photo of the learner's own that a tab showed

Opening one treats it as untrusted: the directory is checked before it is read (members, sizes, names, links,
encryption, compression ratios: the same checks as a zip of images), every member must be one of the names
above, members are read one at a time and never past the size they declare, JSON is parsed only from small
members, weights only through the safe checkpoint reader (:mod:`playground.weights.checkpoints`: nothing is
executed, headers checked before any value is read), photos only through the image intake, and an
experiment's table is recomputed from its runs (:func:`playground.training.report.result_of`). Nothing is
written outside the folder the caller gives.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

from playground.config import Limits, get_limits
from playground.data.uploads import _check_directory, _check_member
from playground.images import load_image
from playground.training.experiments import PRESETS
from playground.training.report import ExperimentResult, result_of, write_results
from playground.weights.checkpoints import check_convolutional_checkpoint

FORMAT = "alexnet-playground-project"
VERSION = 1
MANIFEST = "project.json"
TRAINING = "training.json"
RESULTS = "experiment/results.json"
PHOTO_TABS = ("lab", "activations", "units", "explain")
MAX_MEMBERS = 64  # 3 models, 24 runs' weights, 4 photos and the JSON fit with room to spare
JSON_BYTES = 8 * 1024**2  # a manifest, a training's numbers or an experiment's runs
PHOTO_BYTES = 16 * 1024**2  # a working-size photo as PNG takes ~2 MB
NAMES = re.compile(
    r"(project\.json|training\.json|models/model-\d{1,2}\.safetensors|photos/(lab|activations|units|explain)\.png"
    r"|experiment/(results\.json|results\.csv|summary\.csv|curves\.png|run-\d{1,3}\.safetensors))"
)


@dataclasses.dataclass
class SavedModel:
    description: str  # how the model chooser names it
    path: Path  # its weights: a safetensors file with the variant, classes and options in its metadata


@dataclasses.dataclass
class Work:
    """What a session made, as a project file holds it."""

    views: dict[str, str] = dataclasses.field(default_factory=dict)  # tab -> a link's query, "tab=lab&stride=2"
    photos: dict[str, bytes] = dataclasses.field(default_factory=dict)  # tab -> the photo as PNG
    lessons: dict = dataclasses.field(default_factory=dict)  # the lesson progress record (the UI cleans it)
    models: list[SavedModel] = dataclasses.field(default_factory=list)
    chosen: str = ""  # the model chooser: a variant's name, or "model-<n>" for models[n]
    training: dict | None = None  # the last training's numbers (see :func:`training_summary`)
    experiment: ExperimentResult | None = None
    runs: dict[int, SavedModel] = dataclasses.field(default_factory=dict)  # planned run -> its weights
    left_out: list[str] = dataclasses.field(default_factory=list)  # sentences: what could not be kept, and why


# --- saving -------------------------------------------------------------------------------------------------


def write(work: Work, path: str | Path, *, max_bytes: int | None = None) -> list[str]:
    """Write ``work`` as a project file at ``path``; returns a sentence for everything left out.

    ``max_bytes`` (by default the uploads this server accepts): weights that would take the file past it are
    left out, the experiment's runs first, then the models other than the chosen one, so the file can always
    be opened again.
    """
    max_bytes = max_bytes or get_limits().max_upload_bytes
    left_out = list(work.left_out)
    with tempfile.TemporaryDirectory() as scratch:
        small: dict[str, bytes] = {}
        if work.experiment is not None:
            for written in write_results(work.experiment, Path(scratch)):
                small[f"experiment/{written.name}"] = written.read_bytes()
        if work.training is not None:
            small[TRAINING] = json.dumps(work.training).encode()
        for tab, png in work.photos.items():
            if tab in PHOTO_TABS:
                small[f"photos/{tab}.png"] = png
        room = max_bytes - sum(len(b) for b in small.values()) - 64 * 1024  # the manifest and the zip's headers
        models, runs = _fitting(work, room, left_out)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "saved": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "views": dict(work.views),
            "lessons": work.lessons,
            "chosen": work.chosen if not work.chosen.startswith("model-") or work.chosen in models else "",
            "models": [
                {"file": f"models/{key}.safetensors", "description": m.description} for key, m in models.items()
            ],
            "training": TRAINING if work.training is not None else None,
            "experiment": None
            if work.experiment is None
            else {
                "file": RESULTS,
                "runs": [
                    {"index": index, "file": f"experiment/run-{index}.safetensors", "description": run.description}
                    for index, run in runs.items()
                ],
            },
            "photos": {tab: f"photos/{tab}.png" for tab in work.photos if tab in PHOTO_TABS},
        }
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
            for name, content in small.items():
                archive.writestr(name, content)
            # weights barely compress (float mantissas): stored as they are, which saves seconds per model
            for key, model in models.items():
                archive.write(model.path, f"models/{key}.safetensors", compress_type=zipfile.ZIP_STORED)
            for index, run in runs.items():
                archive.write(run.path, f"experiment/run-{index}.safetensors", compress_type=zipfile.ZIP_STORED)
    return left_out


def _fitting(work: Work, room: int, left_out: list[str]) -> tuple[dict[str, SavedModel], dict[int, SavedModel]]:
    """The models and runs whose weights fit ``room`` bytes: the chosen model first, then the others, then the
    experiment's runs (weights barely compress, so a file's size is its weights' size)."""
    order = sorted(range(len(work.models)), key=lambda n: f"model-{n}" != work.chosen)
    models, runs = {}, {}
    for n in order:
        size = work.models[n].path.stat().st_size
        if size <= room:
            models[f"model-{n}"], room = work.models[n], room - size
        else:
            left_out.append(f"The model “{work.models[n].description}” was left out: the file would pass the "
                            f"{get_limits().max_upload_bytes / 2**20:,.0f} MB this server accepts.")  # fmt: skip
    for index, run in sorted(work.runs.items()):
        size = run.path.stat().st_size
        if size <= room:
            runs[index], room = run, room - size
        else:
            left_out.append(f"The weights of run {index} ({run.description}) were left out: the file would pass "
                            "the size this server accepts; its numbers and curves are kept.")  # fmt: skip
    return dict(sorted(models.items(), key=lambda item: int(item[0].split("-")[1]))), runs


def training_summary(
    *, dataset: str, variant: str, mode: str, classes, history, val_accuracy, per_class_accuracy, confusion,
    images_per_second: float, seconds: float, notice: str = "",
) -> dict:  # fmt: skip
    """A training's numbers as a project keeps them (and the class board publishes them)."""
    return {
        "dataset": dataset, "variant": variant, "mode": mode, "classes": list(classes), "history": list(history),
        "val_accuracy": float(val_accuracy), "per_class_accuracy": [float(a) for a in per_class_accuracy],
        "confusion": [[int(c) for c in row] for row in confusion], "images_per_second": float(images_per_second),
        "seconds": float(seconds), "notice": notice,
    }  # fmt: skip


# --- opening ------------------------------------------------------------------------------------------------


def _bad(sentence: str) -> ValueError:
    return ValueError(f"This project file cannot be opened: {sentence}")


def read(source, folder: str | Path, *, limits: Limits | None = None) -> Work:
    """Read a project file into a :class:`Work`; its weights are written into ``folder`` (the caller's, private).

    Everything is checked before anything is kept: the caller restores the result (models through the model
    store's budget, photos into the tabs). ``folder`` should be new: a refused file's folder is removed.

    Raises:
        ValueError: a sentence saying why the file is refused (nothing of it is kept).
    """
    limits = limits or get_limits()
    folder = Path(folder)
    try:
        return _read_project(source, folder, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing of a refused file is kept
        raise


def _read_project(source, folder: Path, limits: Limits) -> Work:
    try:
        _check_directory(source, limits)
        archive = zipfile.ZipFile(source)
    except ValueError as error:
        raise _bad(str(error)) from None
    except (zipfile.BadZipFile, OSError, EOFError, struct.error):
        raise _bad("it is not a readable zip archive.") from None
    with archive:
        members = _checked_members(archive, limits)
        manifest = _json(archive, members, MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _bad("it is not an AlexNet Playground project (its project.json does not say so).")
        if manifest.get("version") != VERSION:
            raise _bad(f"it was saved in format version {str(manifest.get('version'))[:10]}; this app reads {VERSION}.")
        work = Work(views=_views(manifest.get("views")), lessons=_lessons(manifest.get("lessons")))
        entries = _list(manifest.get("models"), "models", 8)
        work.models = [SavedModel(_description(entry), _weights(archive, members, entry, folder)) for entry in entries]
        chosen = manifest.get("chosen", "")
        files = [entry["file"] for entry in entries]
        if isinstance(chosen, str) and f"models/{chosen}.safetensors" in files:  # now the n-th model read
            work.chosen = f"model-{files.index(f'models/{chosen}.safetensors')}"
        else:
            work.chosen = chosen if isinstance(chosen, str) and len(chosen) <= 40 and "-" not in chosen else ""
        if manifest.get("training") is not None:
            work.training = _training(_json(archive, members, TRAINING))
        experiment = manifest.get("experiment")
        if experiment is not None:
            if not isinstance(experiment, dict):
                raise _bad("its experiment entry is not a record.")
            work.experiment = result_of(_json(archive, members, RESULTS), PRESETS.values())
            for entry in _list(experiment.get("runs"), "experiment runs", limits.experiment_runs):
                index = entry.get("index")
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < limits.experiment_runs:
                    raise _bad("an experiment run has no valid number.")
                work.runs[index] = SavedModel(_description(entry), _weights(archive, members, entry, folder))
        photos = manifest.get("photos") or {}
        if not isinstance(photos, dict):
            raise _bad("its photos entry is not a record.")
        for tab, name in photos.items():
            if tab not in PHOTO_TABS or name != f"photos/{tab}.png":
                raise _bad(f"it names a photo it cannot hold ({str(name)[:60]!r}).")
            work.photos[tab] = _photo(_read(archive, members, name, PHOTO_BYTES), limits)
    return work


def _checked_members(archive: zipfile.ZipFile, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _bad(f"it has {len(infos):,} members; a project has at most {MAX_MEMBERS}.")
    members = {}
    for info in infos:
        try:
            _check_member(info, limits)
        except ValueError as error:
            raise _bad(str(error)) from None
        if info.is_dir():
            continue
        if not NAMES.fullmatch(info.filename):
            raise _bad(f"it holds {info.filename[:80]!r}, which is not part of a project (only the files its "
                       "README lists are).")  # fmt: skip
        if info.filename in members:
            raise _bad(f"it holds {info.filename!r} twice.")
        members[info.filename] = info
    total = sum(info.file_size for info in members.values())
    if total > limits.max_zip_bytes:
        raise _bad(f"it would expand to {total / 1e6:,.0f} MB; the limit is {limits.max_zip_bytes / 1e6:,.0f} MB.")
    if MANIFEST not in members:
        raise _bad("it has no project.json (was it saved by Save my work?).")
    return members


def _read(archive: zipfile.ZipFile, members: dict, name: str, most: int) -> bytes:
    info = members.get(name)
    if info is None:
        raise _bad(f"its project.json names {name!r}, which it does not hold.")
    if info.file_size > most:
        raise _bad(f"{name} takes {info.file_size / 2**20:,.1f} MB; at most {most / 2**20:,.0f} MB are accepted.")
    try:
        with archive.open(info) as handle:
            content = handle.read(info.file_size + 1)  # never more than the directory promised
    except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError, RuntimeError):
        raise _bad(f"{name} is damaged inside the archive.") from None
    if len(content) != info.file_size:
        raise _bad(f"{name} is not the size the archive's directory says.")
    return content


def _json(archive, members, name: str):
    try:
        return json.loads(_read(archive, members, name, JSON_BYTES), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _bad(f"{name} is not valid JSON.") from None


def _no_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def _list(value, what: str, most: int) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > most or not all(isinstance(entry, dict) for entry in value):
        raise _bad(f"its {what} are not a list of at most {most} records.")
    return value


def _description(entry: dict) -> str:
    text = entry.get("description")
    if not isinstance(text, str) or not 0 < len(text) <= 300:
        raise _bad("a model has no description of at most 300 characters.")
    return "".join(ch for ch in text if ch.isprintable())


def _weights(archive, members, entry: dict, folder: Path) -> Path:
    """A weights member, copied into ``folder`` a piece at a time (never past its declared size), then checked
    from its headers: the safetensors format, and the names and shapes of an AlexNet variant."""
    name = entry.get("file")
    if not isinstance(name, str) or not NAMES.fullmatch(name) or not name.endswith(".safetensors"):
        raise _bad(f"it names weights it cannot hold ({str(name)[:60]!r}).")
    info = members.get(name)
    if info is None:
        raise _bad(f"its project.json names {name!r}, which it does not hold.")
    limits = get_limits()
    if info.file_size > limits.max_checkpoint_bytes:
        raise _bad(f"{name} takes {info.file_size / 2**20:,.0f} MB; at most "
                   f"{limits.max_checkpoint_bytes / 2**20:,.0f} MB of weights are accepted.")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{len(list(folder.iterdir()))}-{Path(name).name}"  # our name, never the archive's path
    written = 0
    try:
        with archive.open(info) as handle, target.open("wb") as out:
            while chunk := handle.read(1024**2):
                written += len(chunk)
                if written > info.file_size:
                    raise _bad(f"{name} is larger than the archive's directory says.")
                out.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError, RuntimeError):
        raise _bad(f"{name} is damaged inside the archive.") from None
    try:
        check_convolutional_checkpoint(target)
    except ValueError as error:
        raise _bad(f"{name}: {error}") from None
    return target


def _photo(content: bytes, limits: Limits) -> bytes:
    """A photo through the image intake (header checked before decoding), saved again as a plain PNG."""
    try:
        image = load_image(content, limits=limits)
    except ValueError as error:
        raise _bad(f"a photo: {error}") from None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _views(value) -> dict[str, str]:
    """Every tab's settings as a link's query (the UI reads them as it reads a link, value by value)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 20:
        raise _bad("its settings are not a record of tabs.")
    views = {}
    for tab, query in value.items():
        if not isinstance(tab, str) or not isinstance(query, str) or len(tab) > 20 or len(query) > 4000:
            raise _bad("a tab's settings are not a short text.")
        views[tab] = query
    return views


def _lessons(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(json.dumps(value)) > 200_000:
        raise _bad("its lesson progress is not a record.")
    return value


def _need(condition: bool) -> None:
    """A check that holds under ``python -O`` too (an assert would not be run there)."""
    if not condition:
        raise ValueError("not a training's numbers")


def _training(value) -> dict:
    try:
        return checked_training(value)
    except ValueError:
        raise _bad("training.json does not hold a training's numbers.") from None


def checked_training(value) -> dict:
    """A training's numbers, checked to be what :func:`training_summary` writes (a project file's, a class
    board's entry).

    Raises:
        ValueError: they are not.
    """
    if not isinstance(value, dict):
        raise ValueError("A training's summary is not a record.")
    try:
        classes = [str(c)[:100] for c in value["classes"]][:100]
        k = len(classes)
        confusion = [[int(c) for c in row] for row in value["confusion"]]
        per_class = [float(a) for a in value["per_class_accuracy"]]
        history = value["history"]
        _need(k >= 2 and len(confusion) == k and all(len(row) == k for row in confusion))
        _need(len(per_class) == k and all(0 <= a <= 1 for a in per_class))
        _need(all(c >= 0 for row in confusion for c in row))
        _need(isinstance(history, list) and 1 <= len(history) <= 1000)
        for number, epoch in enumerate(history, start=1):
            _need(isinstance(epoch, dict) and epoch.get("epoch") == number)
            for key in ("loss", "accuracy", "val_accuracy", "seconds"):
                item = epoch.get(key)
                _need(item is None or (isinstance(item, int | float) and not isinstance(item, bool)))
            _need(
                0 <= epoch["accuracy"] <= 1 and (epoch.get("val_accuracy") is None or 0 <= epoch["val_accuracy"] <= 1)
            )
        accuracy = float(value["val_accuracy"])
        _need(0 <= accuracy <= 1)
        summary = training_summary(
            dataset=str(value["dataset"])[:200], variant=str(value["variant"])[:40], mode=str(value["mode"])[:10],
            classes=classes, history=[{k2: epoch.get(k2) for k2 in ("epoch", "loss", "accuracy", "val_accuracy", "seconds")}
                                      for epoch in history],
            val_accuracy=accuracy, per_class_accuracy=per_class, confusion=confusion,
            images_per_second=float(value.get("images_per_second", 0.0)), seconds=float(value.get("seconds", 0.0)),
            notice=str(value.get("notice", ""))[:2000],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            "These are not a training's numbers (classes, curves, accuracies, confusion matrix)."
        ) from None
    return summary


def discard(work: Work) -> None:
    """Delete the weights files of a work that was read but will not be kept."""
    for saved in [*work.models, *work.runs.values()]:
        saved.path.unlink(missing_ok=True)
