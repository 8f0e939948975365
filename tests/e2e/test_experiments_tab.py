"""The Experiments tab and folder uploads in a real browser: choose a folder of class folders, run a tiny
preset, watch the queue and curves, read the table, open a run in another tab; drop a folder on Train."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.test_app_experiments import COLOURS, make_folder

pytestmark = pytest.mark.e2e
TIMEOUT = 240_000


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def test_a_chosen_folder_runs_an_experiment_and_a_run_opens_in_the_other_tabs(page, screenshot, tmp_path):
    make_folder(tmp_path, top="pets")
    page.get_by_role("tab", name="Experiments").click()
    page.locator("#experiment-folder input[type=file]").set_input_files(str(tmp_path / "pets"))
    page.locator("#experiment-folder").get_by_text(".jpg", exact=True).nth(17).wait_for(timeout=TIMEOUT)  # all 18 up
    recorded = json.loads(page.locator("#experiment-folder-paths textarea").input_value())
    assert sorted(recorded) == sorted(f"pets/{label}/{i}.jpg" for label in COLOURS for i in range(6))
    _choose(page, "experiment-dataset", "your folder")
    _number(page, "experiment-epochs", "2")
    page.locator("#experiment-about").get_by_text("Theirs, not ours").wait_for(timeout=TIMEOUT)
    page.locator("#experiment-button").click()
    status = page.locator("#experiment-status")
    status.get_by_text("Done").wait_for(timeout=TIMEOUT)
    assert "✓ ReLU" in status.inner_text() and "✓ tanh" in status.inner_text()
    page.locator("#experiment-report").get_by_text("3 classes, 18 images").wait_for(timeout=TIMEOUT)
    table = page.locator("#experiment-table")
    table.get_by_text("activation=tanh").wait_for(timeout=TIMEOUT)
    table.get_by_text("reference").wait_for(timeout=TIMEOUT)
    page.locator("#experiment-curves img").wait_for(timeout=TIMEOUT)
    page.locator("#experiment-notes").get_by_text("six times faster").wait_for(timeout=TIMEOUT)
    page.locator("#experiment-downloads").get_by_text("summary.csv").wait_for(timeout=TIMEOUT)
    screenshot("experiments_done")

    page.locator("#experiment-open").click()  # the last finished run: tanh
    page.locator("#experiment-opened").get_by_text("tanh (seed 0) on pets").wait_for(timeout=TIMEOUT)
    page.get_by_role("tab", name="Architecture").click()
    page.locator("#model-status").get_by_text("experiment: tanh").wait_for(timeout=TIMEOUT)
    # (a hidden copy of the table sizes its columns: the first match is in it)
    page.locator("#arch-table >> text=Tanh >> visible=true").first.wait_for(timeout=TIMEOUT)
    screenshot("experiments_run_in_architecture")


def _png_base64(colour) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 32), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# A folder dropped on the upload, as the browser hands it to the page: entries to walk (webkitGetAsEntry),
# one directory per class, each file a real File. A page script cannot make the browser's own entries, so the
# drop event carries look-alikes with the same methods; everything after that is the page's real code path.
DROP = """
([pictures]) => {
  const file = (name, data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const made = new File([bytes], name, { type: "image/png" });
    return { isFile: true, isDirectory: false, name, fullPath: "", file: (ok) => ok(made) };
  };
  const folder = (name, children, parent) => {
    const entry = { isFile: false, isDirectory: true, name, fullPath: `${parent}/${name}` };
    children.forEach((child) => { child.fullPath = child.fullPath || `${entry.fullPath}/${child.name}`; });
    let read = false;
    entry.createReader = () => ({ readEntries: (ok) => { ok(read ? [] : children); read = true; } });
    return entry;
  };
  const classes = Object.entries(pictures).map(([label, data]) =>
    [label, [0, 1, 2, 3].map((i) => file(`${i}.png`, data))]);
  const top = folder("shapes", [], "");
  const inner = classes.map(([label, files]) => folder(label, files, top.fullPath));
  top.createReader = () => { let read = false; return { readEntries: (ok) => { ok(read ? [] : inner); read = true; } }; };
  const target = document.querySelector("#train-folder .upload-container") || document.querySelector("#train-folder");
  const event = new Event("drop", { bubbles: true, cancelable: true });
  Object.defineProperty(event, "dataTransfer", { value: { items: [{ webkitGetAsEntry: () => top }], files: [] } });
  target.dispatchEvent(event);
}
"""


def test_a_folder_dropped_on_the_train_tab_trains(page, screenshot):
    page.get_by_role("tab", name="Train").click()
    pictures = {
        "red": _png_base64((220, 20, 20)),
        "green": _png_base64((20, 200, 20)),
        "blue": _png_base64((20, 20, 220)),
    }
    page.locator("#train-folder").wait_for(timeout=TIMEOUT)
    page.evaluate(DROP, [pictures])
    page.locator("#train-folder").get_by_text(".png", exact=True).nth(11).wait_for(timeout=TIMEOUT)  # all 12 up
    recorded = json.loads(page.locator("#train-folder-paths textarea").input_value())
    assert sorted(recorded) == sorted(f"shapes/{label}/{i}.png" for label in pictures for i in range(4))
    _choose(page, "train-dataset", "your folder")
    _choose(page, "train-model", "alexnet_compact")
    _number(page, "train-epochs", "1")
    page.locator("#train-button").click()
    page.locator("#train-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
    page.locator("#train-report").get_by_text("3 classes, 12 images: blue (4), green (4), red (4)").wait_for(
        timeout=TIMEOUT
    )
    screenshot("train_dropped_folder")
