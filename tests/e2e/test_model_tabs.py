"""Architecture, Filters and Activations in a real browser, with screenshots of each."""

from __future__ import annotations

import pytest
import torch

from playground.models import build
from playground.weights.checkpoints import save_checkpoint

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000


def _open_tab(page, name):
    page.get_by_role("tab", name=name).click()


def test_architecture_tab(page, screenshot):
    _open_tab(page, "Architecture")
    table = page.locator("#arch-table")
    table.get_by_text("64 × 3 × 11 × 11 + 64", exact=True).first.wait_for(timeout=TIMEOUT)
    table.get_by_text("23,296", exact=True).first.wait_for(timeout=TIMEOUT)
    page.locator("#arch-summary").get_by_text("61,100,840 parameters").wait_for(timeout=TIMEOUT)
    page.locator("#arch-chart").get_by_text("6 fc6 · classifier.1").first.wait_for(timeout=TIMEOUT)
    # Every row, down to the total, is drawn in the box, and nothing scrolls inside it (#19.4).
    table.get_by_text("conv1 · features.0", exact=True).first.wait_for(timeout=TIMEOUT)
    table.get_by_text("fc8 · classifier.6", exact=True).first.wait_for(timeout=TIMEOUT)
    table.get_by_text("total", exact=True).first.wait_for(timeout=TIMEOUT)
    table.get_by_text("61,100,840", exact=True).first.wait_for(timeout=TIMEOUT)
    scrolling = table.evaluate(
        """box => [box, ...box.querySelectorAll('*')].filter(e => {
            const y = getComputedStyle(e).overflowY;
            return (y === 'auto' || y === 'scroll') && e.scrollHeight > e.clientHeight + 1;
        }).length"""
    )
    assert scrolling == 0
    screenshot("architecture_alexnet")

    page.locator("#model-chooser input").click()
    page.get_by_role("option", name="alexnet2012", exact=False).first.click()
    page.locator("#arch-summary").get_by_text("60,965,224 parameters").wait_for(timeout=TIMEOUT)


def test_filters_tab(page, screenshot):
    _open_tab(page, "Filters")
    page.locator("#filters-grid img").wait_for(timeout=TIMEOUT)
    page.locator("#filters-matches").get_by_text("flashlight_up").wait_for(timeout=TIMEOUT)
    page.locator("#filters-caption").get_by_text("untrained").wait_for(timeout=TIMEOUT)
    page.locator("#filters-difference img").wait_for(timeout=TIMEOUT)
    page.locator("#filters-comparison").get_by_text("sobel_x against learned filter").wait_for(timeout=TIMEOUT)
    screenshot("filters")


def test_activations_tab(page, screenshot):
    _open_tab(page, "Activations & predictions")
    page.locator("#act-grid img").wait_for(timeout=TIMEOUT)
    page.locator("#act-caption").get_by_text("features.1").first.wait_for(timeout=TIMEOUT)
    page.locator("#act-top5").get_by_text("%").first.wait_for(timeout=TIMEOUT)
    page.locator("#act-layer input").click()
    page.get_by_role("option", name="conv4 · features.8").click()
    page.locator("#act-caption").get_by_text("features.8 (256 × 13 × 13)").wait_for(timeout=TIMEOUT)
    screenshot("activations")


def test_uploaded_checkpoint_shows_up_in_the_chooser_and_the_tabs(page, screenshot, tmp_path):
    torch.manual_seed(0)
    model = build("alexnet_compact", num_classes=3)
    path = save_checkpoint(
        model, tmp_path / "my_flowers.safetensors", variant="alexnet_compact", classes=["daisy", "rose", "tulip"]
    )
    page.get_by_text("Load a checkpoint of your own").click()
    page.locator("#checkpoint-file input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="Load checkpoint").click()
    page.locator("#model-status").get_by_text("my_flowers.safetensors").wait_for(timeout=TIMEOUT)
    _open_tab(page, "Activations & predictions")
    page.locator("#act-top5").get_by_text("daisy").first.wait_for(timeout=TIMEOUT)
    _open_tab(page, "Filters")
    page.locator("#filters-caption").get_by_text("48 filters").wait_for(timeout=TIMEOUT)
    screenshot("checkpoint_filters")
