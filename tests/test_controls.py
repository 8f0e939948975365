"""The hardened inputs: a refusal names the input and quotes a short prefix of what was sent, and never says
where the server keeps an upload."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio.data_classes import FileData, ListFiles

from ui import controls


def test_a_refused_upload_is_named_by_the_name_it_came_with_never_by_its_server_path():
    with gr.Blocks():
        folder = controls.File(file_count="directory", file_types=[".png"], label="Folder")
    sent = ListFiles([FileData(path="/tmp/gradio/3a37a159c0688bee/notes.txt", orig_name="notes.txt")])
    with pytest.raises(gr.Error) as refused:
        folder.preprocess(sent)
    assert "notes.txt" in refused.value.message and "/tmp/gradio" not in refused.value.message


def test_a_long_value_is_quoted_short():
    assert len(controls.short("x" * 10_000)) == 40
    assert controls.short(FileData(path="/srv/uploads/abc/cat.png", orig_name="cat.png")) == "'cat.png'"
