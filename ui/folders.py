"""The learner's own data for the Train, Experiments and Units tabs: a zip or a folder of class folders,
one upload per session, which every tab reads (:class:`SessionUploads`, :func:`wire`).

Gradio 6's directory upload (``gr.File(file_count="directory")``) sends every file of the folder, but each
under its bare name (``1.jpg``): the front end copies each file into a new ``File`` before uploading it,
which drops the browser's ``webkitRelativePath`` (``flowers/daisy/1.jpg``), and a folder dropped on it is
not opened at all. So a small script (:data:`FOLDER_JS`) writes the path of every chosen file, in order,
into a hidden box beside the upload; for a dropped folder it walks the folder itself (the browser's
``webkitGetAsEntry``) and hands the files to the same upload. :func:`pair` then matches each uploaded file
with its path, and :func:`playground.data.uploads.read_files` reads them under the same checks as a zip.
"""

from __future__ import annotations

import json
import os
import re
import time

import gradio as gr
from gradio_client.utils import strip_invalid_filename_characters

from playground.config import get_limits
from playground.data import sources
from playground.data.sources import DatasetSource
from playground.images import IMAGE_EXTENSIONS
from playground.serving import jobs
from ui import controls
from ui.handlers import user_errors
from ui.photos import uploaded_path
from ui.state import UPLOADS, SessionUploads, session_of

FOLDER_JS = r"""
() => {
  if (window.playgroundFolders) return;  // one hook for every folder upload of the page
  window.playgroundFolders = true;
  const keep = (holder, paths) => {
    const box = document.querySelector(`#${holder.id}-paths textarea, #${holder.id}-paths input`);
    if (!box) return;
    box.value = JSON.stringify(paths);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };
  // Chosen in the file picker: the browser knows each file's path inside the folder. Captured before
  // Gradio's own handler, which copies the files without it.
  document.addEventListener("change", (event) => {
    const input = event.target;
    const holder = input instanceof HTMLInputElement && input.type === "file" && input.closest(".folder-upload");
    const files = holder ? Array.from(input.files || []) : [];
    if (files.length && files.every((file) => file.webkitRelativePath)) {
      keep(holder, files.map((file) => file.webkitRelativePath));
    }
  }, true);
  // Dropped: walk the folder, then give its files to the same upload, with their paths.
  const walk = async (entry, found) => {
    if (entry.isFile) {
      found.push([entry.fullPath.replace(/^\/+/, ""), await new Promise((ok, fail) => entry.file(ok, fail))]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const child of batch) await walk(child, found);
      }
    }
  };
  document.addEventListener("drop", async (event) => {
    const holder = event.target.closest && event.target.closest(".folder-upload");
    const items = holder && event.dataTransfer ? Array.from(event.dataTransfer.items || []) : [];
    const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
    if (!entries.some((entry) => entry.isDirectory)) return;  // plain files: Gradio's own drop takes them
    event.preventDefault();
    event.stopPropagation();
    const found = [];
    for (const entry of entries) await walk(entry, found);
    const input = holder.querySelector("input[type=file]");
    const transfer = new DataTransfer();
    found.forEach(([, file]) => transfer.items.add(file));
    keep(holder, found.map(([path]) => path));
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }, true);
}
"""


class Paths(gr.Textbox):
    """The hidden box of paths inside the folder: a JSON list, bounded by the folder limits (a path is at
    most 1,024 characters), not by a text box's."""

    is_template = True

    def preprocess(self, payload):
        limits = get_limits()
        bound = limits.max_zip_members * 1030 + 2
        accepted = payload is None or (isinstance(payload, str) and len(payload) <= bound)
        return controls.preprocess_checked(self, payload, accepted, "the folder's file paths", super().preprocess)


def folder_input(prefix: str) -> tuple[gr.File, Paths]:
    """The folder upload and its hidden box of paths (elem ids ``{prefix}-folder`` and ``{prefix}-folder-paths``)."""
    files = controls.File(
        file_count="directory",
        file_types=list(IMAGE_EXTENSIONS),  # the page leaves out other files (a stray .DS_Store) before uploading
        label="Or a folder of class folders (choose it, or drop it here)",
        elem_id=f"{prefix}-folder",
        elem_classes=["folder-upload"],
        height=200,  # a folder lists many files: they scroll
    )
    paths = Paths(label="Paths inside the folder", visible="hidden", elem_id=f"{prefix}-folder-paths")
    return files, paths


def install(demo: gr.Blocks) -> None:
    """Put the folder script on the page (each tab with a folder upload calls this; the script runs once)."""
    demo.load(None, js=FOLDER_JS)


ZIP, FOLDER = "your zip", "your folder"  # the dataset choices for the learner's own data, in both tabs
CHOICE = {sources.ZIP: ZIP, sources.FOLDER: FOLDER}  # an upload's kind, as the dataset choice that reads it


def source(dataset, zip_file, folder, folder_paths, limit, last: DatasetSource | None = None) -> DatasetSource:
    """The data a training or an experiment reads: a zip at its checked server path, a folder's files paired
    with their paths, or a built-in dataset (at most ``limit`` images of it, when given). With no upload in
    the tab's own boxes, "your zip" or "your folder" reads ``last``, the session's last upload of that kind
    from any tab.

    Raises:
        ValueError: no upload for the choice, a folder that does not pair, or an unknown dataset.
    """
    if dataset == FOLDER:
        if not folder and last is not None and last.kind == sources.FOLDER:
            return last
        return zip_or_folder(None, folder, folder_paths)
    if dataset in (None, "", ZIP):
        if zip_file is None and last is not None and last.kind == sources.ZIP:
            return last
        if zip_file is None:
            raise ValueError("Upload a zip of class folders, choose a folder, or pick one of the built-in datasets.")
        return zip_or_folder(zip_file, None, None)
    return DatasetSource.built_in(dataset, limit=int(limit) if limit else None)


def zip_or_folder(zip_file, folder, folder_paths) -> DatasetSource:
    """An upload as a source: the zip (at its checked server path) if given, else the folder's files paired
    with their paths.

    Raises:
        ValueError: a folder that does not pair (see :func:`pair`).
    """
    if zip_file is not None:
        name = os.path.splitext(os.path.basename(str(zip_file)))[0]
        return DatasetSource.zip(uploaded_path(zip_file), name=name)
    files = pair(folder, folder_paths)
    return DatasetSource.folder(files, name=files[0][0].split("/")[0])


def pair(uploaded, paths_json) -> tuple[tuple[str, str | None], ...]:
    """(path inside the folder, server path) for every file the page listed; None for files it did not send.

    The uploads come in the order the page listed the folder's files, less the files it left out (other
    kinds than images), each under its bare name as the server stored it; so each upload is matched with
    the next listed path of the same name.

    Raises:
        ValueError: no folder, paths missing or malformed, or uploads that do not match the paths.
    """
    if not uploaded:
        raise ValueError("Choose (or drop) a folder of class folders, or choose one of the built-in datasets.")
    limits = get_limits()
    try:
        paths = json.loads(paths_json or "null")
    except json.JSONDecodeError:
        paths = None
    if not isinstance(paths, list) or not all(isinstance(p, str) and 0 < len(p) <= 1024 for p in paths):
        raise ValueError(
            "The folder's files came without their paths inside the folder, so their classes are unknown. Choose "
            "the folder again (API clients: send folder_paths, a JSON list of each file's path, in order)."
        )
    if max(len(uploaded), len(paths)) > limits.max_zip_members:
        raise ValueError(
            f"The folder has {max(len(uploaded), len(paths)):,} files; the limit is {limits.max_zip_members:,}."
        )
    stored, at = [None] * len(paths), 0
    for upload in uploaded:
        server_path = uploaded_path(upload)
        name = os.path.basename(server_path)
        while at < len(paths) and strip_invalid_filename_characters(re.split(r"[/\\]", paths[at])[-1]) != name:
            at += 1
        if at == len(paths):
            raise ValueError("The folder's files do not match the list of their paths; please choose the folder again.")
        stored[at] = server_path
        at += 1
    return tuple(zip(paths, stored))


# --- one upload per session, for every tab ----------------------------------------------------------------


def describe(upload: DatasetSource | None, where: str = "") -> str:
    """What a tab says of the session's upload ("" for none); ``where``: the tab it came from, if another."""
    if upload is None:
        return ""
    name = re.sub(r"([\\`*_{}\[\]()#+.!|<>~-])", r"\\\1", upload.name)  # a file name, read as plain text
    if upload.kind == sources.ZIP:
        what = f"the zip **{name}.zip**"
    else:
        what = f"the folder **{name}** ({len(upload.files):,} files)"
    from_tab = f", uploaded in the {where} tab" if where else ""
    return (
        f"Your upload: {what}{from_tab}. *{CHOICE[upload.kind]}* reads it in Train and Experiments, and "
        "*my upload* in Units; a new upload, in any of them, replaces it."
    )


def announce(store: SessionUploads, session: str, upload: DatasetSource, tab: str) -> dict:
    """``upload``, made in ``tab``, becomes the session's; returns the page's shared record of it (each upload a
    new one, so every tab follows even the same file uploaded again)."""
    store.remember(session, upload)
    return {"tab": tab, "kind": upload.kind, "at": time.monotonic_ns()}


def follow(store: SessionUploads, tab: str, shared: dict | None, session: str) -> tuple:
    """An upload landed (``shared`` says in which tab): ``tab``'s (dataset choice, note, zip box, folder box,
    folder paths). The choice switches to the upload's kind and the note names it; an upload made in another
    tab empties this tab's boxes, so that what this tab reads is the last upload, whichever tab it came from."""
    upload = store.last(session)
    if upload is None or not shared:
        return (gr.skip(),) * 5
    here = shared.get("tab") == tab
    boxes = (gr.skip(),) * 3 if here else (None, None, "")
    return (CHOICE[upload.kind], describe(upload, "" if here else shared.get("tab", "")), *boxes)


def shared_upload() -> gr.State:
    """The page's record of the session's last upload, which every tab with a dataset chooser follows (app.py
    makes one and hands it to each such tab; a tab built alone makes its own)."""
    return gr.State(None)


def wire(tab: str, api_name: str, shared: gr.State, *, dataset, note, zip_file, folder, folder_paths) -> None:
    """An upload in ``tab`` (a zip in ``zip_file``, a folder in ``folder`` with its ``folder_paths``) becomes the
    session's (HTTP endpoints ``{api_name}_zip`` and ``{api_name}_folder``) and is recorded in ``shared``;
    whenever any tab's upload lands there, ``dataset`` switches to it and ``note`` names it (see :func:`follow`)."""

    @user_errors
    def remember_zip(zip_file, request: gr.Request = None):
        """An uploaded zip becomes this session's upload, for every tab, trained on or not."""
        if zip_file is None:
            return gr.skip()
        return announce(UPLOADS, session_of(request), zip_or_folder(zip_file, None, None), tab)

    @user_errors
    def remember_folder(folder, folder_paths, request: gr.Request = None):
        """An uploaded folder becomes this session's upload, for every tab."""
        if not folder:
            return gr.skip()
        return announce(UPLOADS, session_of(request), zip_or_folder(None, folder, folder_paths), tab)

    @user_errors
    def follow_upload(record, request: gr.Request = None):
        return follow(UPLOADS, tab, record, session_of(request))

    zip_file.upload(remember_zip, inputs=zip_file, outputs=shared, api_name=f"{api_name}_zip",
                    api_visibility="undocumented")  # fmt: skip
    folder.upload(remember_folder, inputs=[folder, folder_paths], outputs=shared, api_name=f"{api_name}_folder",
                  api_visibility="undocumented")  # fmt: skip
    shared.change(follow_upload, inputs=shared, outputs=[dataset, note, zip_file, folder, folder_paths],
                  api_visibility="private")  # fmt: skip


def once_read(records, session: str, upload: DatasetSource):
    """A long job's records on ``upload``, which becomes the session's upload once the worker has read it (an
    API client's zip, sent with its training; one refused as unreadable is not offered to the other tabs)."""
    for record in records:
        if isinstance(record, jobs.DatasetReady):
            UPLOADS.remember(session, upload)
        yield record
