"""Links to a view: every key read, every bad value named in a sentence, and a link made of a view opens it."""

from __future__ import annotations

import gradio as gr
import pytest

from ui import links
from ui.photos import example_paths


def test_a_lab_link_sets_every_setting():
    view, problems = links.parse({"tab": "lab", "example": "cat", "kernel": "sobel_y", "stride": "2", "padding": "1",
                                  "dilation": "1", "pool": "max", "pool_size": "3", "pool_stride": "2", "color": "rgb"})  # fmt: skip
    assert problems == []
    assert view == links.View("lab", {"photo": 1, "kernel": "sobel_y", "stride": 2, "padding": 1, "dilation": 1,
                                      "pooling": "max", "pool_size": 3, "pool_stride": 2, "color": "rgb"})  # fmt: skip


def test_a_kernel_of_numbers_becomes_the_custom_kernel():
    view, problems = links.parse({"tab": "lab", "kernel": "0,1,0;1,-4,1;0,1,0"})
    assert problems == [] and view.values == {"kernel": "custom", "custom_kernel": "0 1 0\n1 -4 1\n0 1 0"}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"tab": "lab", "stride": "1e308"}, "stride='1e308' is not a whole number from 1 to 8"),
        ({"tab": "lab", "stride": "two"}, "stride='two' is not a number"),
        ({"tab": "lab", "kernel": "1 2 x"}, "kernel='1 2 x'"),
        ({"tab": "lab", "example": "/etc/passwd"}, "example='/etc/passwd' is not one of cup, cat"),
        ({"tab": "explain", "method": "magic"}, "method='magic' is not one of saliency"),
        ({"tab": "architecture", "model": "resnet"}, "model='resnet' is not one of alexnet"),
        ({"tab": "filters", "stride": "2"}, "stride is not a setting of the filters tab"),
        ({"tab": "units", "channel": "-5"}, "channel='-5' is not a whole number from -1"),
        ({"tab": "experiments", "preset": "x' OR 1=1"}, 'preset="x\' OR 1=1" is not one of'),
    ],
)
def test_a_bad_value_is_named_and_the_tab_still_opens(query, says):
    view, problems = links.parse(query)
    assert view is not None and view.tab == query["tab"]
    assert any(says in p and p.endswith("left as it was.") for p in problems), problems


def test_no_tab_opens_the_page_as_usual_and_a_bad_tab_says_so():
    assert links.parse({}) == (None, [])
    view, problems = links.parse({"tab": "nope"})
    assert view is None and "tab='nope' is not one of lessons, lab" in problems[0]


@pytest.mark.parametrize(
    "view",
    [
        links.View("lab", {"photo": 0, "kernel": "custom", "custom_kernel": "1 0 -1\n2 0 -2\n1 0 -1", "stride": 3}),
        links.View("activations", {"model": "alexnet2012", "photo": 4, "layer": "conv3", "channel": 7}),
        links.View("explain", {"model": "alexnet", "photo": 2, "method": "gradcam", "target": "tabby"}),
        links.View("units", {"model": "alexnet_compact", "layer": "conv5", "channel": 12}),
        links.View("experiments", {"preset": "dropout"}),
        links.View("lessons", {"chooser": 4}),
    ],
)
def test_a_link_made_of_a_view_opens_that_view(view):
    address = links.address("http://127.0.0.1:7860/?old=1", view)
    assert address.startswith("http://127.0.0.1:7860/?tab=" + view.tab)
    query = dict(pair.split("=", 1) for pair in address.split("?", 1)[1].split("&"))
    from urllib.parse import unquote_plus

    opened, problems = links.parse({k: unquote_plus(v) for k, v in query.items()})
    assert problems == [] and opened == view


def test_the_current_view_knows_an_example_from_an_upload():
    view, note = links.current_view("lab", ["photo", "kernel", "custom_kernel", "stride"],
                                    [f"/tmp/gradio/abc/{example_paths()[1].split('/')[-1]}", "sobel_x", "1 2 3", 2.0])  # fmt: skip
    assert view == links.View("lab", {"photo": 1, "kernel": "sobel_x", "stride": 2}) and note == ""
    view, note = links.current_view("lab", ["photo", "kernel"], ["/tmp/gradio/abc/my_holiday.jpg", "laplacian"])
    assert view.values == {"kernel": "laplacian"} and "uploads it again" in note


def test_a_view_sets_only_its_own_tabs_controls():
    class Layout:
        def __getattr__(self, name):
            return f"component:{name}"

    every = links.targets({"lab": Layout(), "explain": Layout()}, {"lab": {"photo", "stride"}, "explain": {"method"}})
    tab, model, *values = links.values_for(links.View("explain", {"model": "alexnet", "method": "saliency"}), every)
    assert tab.selected == "explain" and model == "alexnet"
    assert dict(zip([(t, f) for t, f, _ in every], values)) == {
        ("explain", "method"): "saliency", ("lab", "photo"): gr.skip(), ("lab", "stride"): gr.skip()
    }  # fmt: skip


def test_train_units_and_experiments_links_carry_their_settings():
    view, problems = links.parse({"tab": "train", "dataset": "five-flowers", "images": "500", "network": "alexnet2012",
                                  "mode": "full", "epochs": "12", "batch_size": "32", "lr": "0.01", "optimizer": "sgd",
                                  "weight_decay": "0.0005"})  # fmt: skip
    assert problems == []
    assert view.values == {"dataset": "five-flowers", "limit": 500, "network": "alexnet2012", "mode": "full",
                           "epochs": 12, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "weight_decay": 0.0005}  # fmt: skip
    view, problems = links.parse({"tab": "units", "layer": "conv5", "channel": "3", "method": "guided_backprop"})
    assert problems == [] and view.values == {"layer": "conv5", "channel": 3, "method": "guided_backprop"}
    view, problems = links.parse({"tab": "experiments", "preset": "dropout", "seeds": "3", "epochs": "0",
                                  "vary": "lr", "values": "0.1, 0.01", "target": "40", "dataset": "synthetic"})  # fmt: skip
    assert problems == []
    assert view.values == {"preset": "dropout", "seeds": 3, "epochs": 0, "vary": "lr", "values": "0.1, 0.01",
                           "target": 40, "dataset": "synthetic"}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"tab": "train", "lr": "nan"}, "lr='nan' is not a number from 1e-06 to 1"),
        ({"tab": "train", "epochs": "0"}, "epochs='0' is not a whole number from 1 to 50"),
        ({"tab": "train", "dataset": "/etc"}, "dataset='/etc' is not one of synthetic"),
        ({"tab": "units", "method": "gradcam"}, "method='gradcam' is not one of deconvnet, guided_backprop"),
        ({"tab": "experiments", "seeds": "50"}, "seeds='50' is not a whole number from 1 to 5"),
        ({"tab": "experiments", "vary": "rm -rf"}, "vary='rm -rf' is not one of activation"),
    ],
)
def test_bad_train_units_and_experiments_values_are_named(query, says):
    view, problems = links.parse(query)
    assert view.tab == query["tab"] and any(says in p for p in problems), problems


def test_a_train_link_round_trips_and_leaves_an_upload_out():
    view, note = links.current_view(
        "train", ["dataset", "network", "lr", "epochs"], ["your zip", "alexnet", 0.003, 8.0]
    )
    assert view.values == {"network": "alexnet", "lr": 0.003, "epochs": 8} and "uploads them again" in note
    query = dict(item.split("=") for item in links.address("http://h/", view).split("?")[1].split("&"))
    assert links.parse(query) == (view, [])
