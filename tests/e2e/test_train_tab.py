"""The Train tab in a real browser: upload a zip, train one short epoch, see curves and the confusion
matrix, then find the new model in the Filters tab."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_app_experiments import make_folder
from tests.test_app_train import make_zip

pytestmark = pytest.mark.e2e
TIMEOUT = 180_000


def test_upload_train_and_use_the_model(page, screenshot, tmp_path):
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-zip input[type=file]").set_input_files(str(make_zip(tmp_path / "colours.zip")))
    page.locator("#train-zip").get_by_text("colours.zip").wait_for(timeout=TIMEOUT)
    epochs = page.locator("#train-epochs input[type=number]")
    epochs.fill("1")
    epochs.press("Enter")
    page.locator("#train-button").click()
    page.locator("#train-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
    page.locator("#train-confusion").get_by_text("true \\ predicted").wait_for(timeout=TIMEOUT)
    page.locator("#train-curves img").wait_for(timeout=TIMEOUT)
    page.locator("#train-report").get_by_text("3 classes, 18 images").wait_for(timeout=TIMEOUT)
    page.locator("#train-downloads").get_by_text(".onnx").wait_for(timeout=TIMEOUT)
    screenshot("train_done")

    page.locator("#train-confusion").get_by_text("true \\ predicted").click()  # the header cell: nothing happens
    page.get_by_role("tab", name="Filters").click()
    page.locator("#model-status").get_by_text("trained here on colours").wait_for(timeout=TIMEOUT)
    page.locator("#filters-caption").get_by_text("64 filters").wait_for(timeout=TIMEOUT)
    screenshot("train_model_in_filters")


def test_the_dataset_choice_follows_the_last_upload_in_every_tab(page, screenshot, tmp_path):
    """Issue #19.13: after a folder upload Train still said "your zip"; Experiments had to be given it again."""
    make_folder(tmp_path, top="pets")
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-folder input[type=file]").set_input_files(str(tmp_path / "pets"))
    expect(page.locator("#train-dataset input")).to_have_value("your folder", timeout=TIMEOUT)
    page.locator("#train-upload-note").get_by_text("the folder pets (18 files)").wait_for(timeout=TIMEOUT)
    page.get_by_role("tab", name="Experiments").click()
    expect(page.locator("#experiment-dataset input")).to_have_value("your folder", timeout=TIMEOUT)
    page.locator("#experiment-upload-note").get_by_text("uploaded in the Train tab").wait_for(timeout=TIMEOUT)
    screenshot("upload_followed_in_experiments")
    # A zip in Experiments is now the upload: Train follows it, and its folder box no longer holds the old one.
    page.locator("#experiment-zip input[type=file]").set_input_files(str(make_zip(tmp_path / "colours.zip")))
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-dataset input")).to_have_value("your zip", timeout=TIMEOUT)
    page.locator("#train-upload-note").get_by_text("the zip colours.zip, uploaded in the Experiments").wait_for(
        timeout=TIMEOUT
    )
    expect(page.locator("#train-folder").get_by_text(".jpg", exact=True)).to_have_count(0)
