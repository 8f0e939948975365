"""AlexNet Playground: the Gradio app. It only lays out tabs and wires them to the playground package.

Run ``python app.py`` (or ``make run``); host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from pathlib import Path

import gradio as gr
import torch
from starlette.middleware import Middleware

from playground.config import get_limits
from playground.serving import workers
from ui import a11y, class_board, folders, guard, links, model_panel, my_work, sessions, state
from ui.tabs import activations as activations_tab
from ui.tabs import architecture as architecture_tab
from ui.tabs import class_board as class_board_tab
from ui.tabs import conv_lab as conv_lab_tab
from ui.tabs import experiments as experiments_tab
from ui.tabs import explain as explain_tab
from ui.tabs import filters as filters_tab
from ui.tabs import lessons as lessons_tab
from ui.tabs import train as train_tab
from ui.tabs import units as units_tab

ASSETS = Path(__file__).resolve().parent / "assets"
HEADER = """
# AlexNet Playground
See what a convolutional network does by touching one: slide hand-made kernels over your photo, then
look inside AlexNet: its layers, the filters it learned, what every layer sees, what one unit looks for,
and why it chose a class;
then fine-tune it on your own photos.
"""


def build_demo() -> gr.Blocks:
    """Build the whole app (no server is started)."""
    limits = get_limits()
    # Old uploads and results are swept regularly, so the cache cannot fill the disk.
    with gr.Blocks(
        title="AlexNet Playground", delete_cache=(limits.cache_sweep_seconds, limits.cache_max_age_seconds)
    ) as demo:
        gr.Markdown(HEADER)
        chooser = model_panel.build_panel(demo)
        work = my_work.build_panel()  # Save my work / Open my work
        upload = folders.shared_upload()  # one upload per session, which Train and Experiments both follow
        rows = {}  # each tab's "Link to this view" button and box
        member, publish = class_board_tab.membership(), []  # the class this page joined; "Publish to my class"
        with gr.Tabs() as tabs:
            with gr.Tab("Lessons", id="lessons"):
                lessons = lessons_tab.build_tab(demo, chooser)
                rows["lessons"] = links.link_row("lessons")
            with gr.Tab("Convolution lab", id="lab"):
                lab = conv_lab_tab.build_tab(demo)
                publish.append(class_board_tab.publish_row("kernel", "lab"))
                rows["lab"] = links.link_row("lab")
            with gr.Tab("Architecture", id="architecture"):
                architecture = architecture_tab.build_tab(demo, chooser)
                rows["architecture"] = links.link_row("architecture")
            with gr.Tab("Filters", id="filters"):
                filters = filters_tab.build_tab(demo, chooser)
                rows["filters"] = links.link_row("filters")
            with gr.Tab("Activations & predictions", id="activations"):
                activations = activations_tab.build_tab(demo, chooser)
                rows["activations"] = links.link_row("activations")
            with gr.Tab("Units", id="units") as units:
                units_view = units_tab.build_tab(demo, chooser, activations=activations, tabs=tabs, tab=units)
                rows["units"] = links.link_row("units")
            with gr.Tab("Explain", id="explain"):
                explain = explain_tab.build_tab(demo, chooser)
                rows["explain"] = links.link_row("explain")
            with gr.Tab("Train", id="train"):
                train = train_tab.build_tab(demo, chooser, upload)
                publish.append(class_board_tab.publish_row("training", "train"))
                rows["train"] = links.link_row("train")
            with gr.Tab("Experiments", id="experiments"):
                experiments = experiments_tab.build_tab(demo, chooser, upload)
                publish.append(class_board_tab.publish_row("experiment", "experiments"))
                rows["experiments"] = links.link_row("experiments")
            with gr.Tab("Class board", id="board"):
                board = class_board_tab.build_tab(demo, member, publish)
                rows["board"] = links.link_row("board")
        views = {"lab": lab, "architecture": architecture, "filters": filters, "activations": activations,
                 "explain": explain, "train": train, "experiments": experiments}  # fmt: skip
        lessons_tab.wire_show_me(lessons, tabs, chooser, views)
        every = {**views, "lessons": lessons, "units": units_view, "board": board}
        links.wire(demo, tabs, chooser, every, rows)
        my_work.wire(demo, work, chooser, every, lessons, train,
                     experiments, [train.save_work, experiments.save_work])  # fmt: skip
        class_board.register()  # /create_class, /join_class, /publish_result, /board, /hide_entry, /close_class, ...
        demo.unload(state.forget_session)  # one clean-up for everything a session holds, whichever tabs it used
        hide_share_off_a_space(demo)
    return demo


def hide_share_off_a_space(demo: gr.Blocks) -> None:
    """Take the Share button off every picture and gallery unless the app runs on a Hugging Face Space.

    Gradio shows it by default; it posts the picture to the Space's discussion page, which only a Space has:
    anywhere else it is a button that cannot work.
    """
    if gr.utils.get_space() is not None:
        return
    for block in demo.blocks.values():
        buttons = getattr(block, "buttons", None)
        if buttons and "share" in buttons:
            block.buttons = [button for button in buttons if button != "share"]


def tune_for_many_users() -> None:
    """Process settings for a server that a class of learners shares.

    - One torch thread per request: several requests run at once on few cores, and torch's default (a
      thread per core for each of them) made them fight; a forward pass under load took 20x longer.
    - glibc's allocator: at most two arenas, and large buffers (decoded photos, feature maps) from mmap
      so they go back to the system when freed; by default each request thread grew its own arena and
      the server's memory crept up with every new photo.
    - Gradio's queue rebuilds a pandas table of its last 10,000 events after every event, for a monitoring
      page this app does not serve: under a class's load that cost grew with every click, and the records
      with it. It keeps 500 and summarises every 500 events instead.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    torch.set_num_threads(get_limits().server_threads)
    with contextlib.suppress(RuntimeError):  # only possible before any parallel work has run
        torch.set_num_interop_threads(1)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            m_arena_max, m_mmap_threshold = -8, -3  # mallopt's parameter numbers (malloc.h)
            libc.mallopt(m_arena_max, 2)
            libc.mallopt(m_mmap_threshold, 1024 * 1024)


def launch(demo: gr.Blocks, **kwargs):
    """Start the server with the app's limits, queue and stylesheet."""
    tune_for_many_users()
    limits = get_limits()
    # api_open=False: off a Space Gradio would also answer events at /run/<name> directly, skipping the queue,
    # its concurrency limits and its size bound; the browser and gradio_client both go through the queue.
    sessions.install()  # a new session (each HTTP API call without one) no longer renders the whole page's config
    demo.queue(
        max_size=limits.queue_max_size,
        default_concurrency_limit=limits.concurrency,
        api_open=False,
    )
    guard.start_sweeper(demo)
    return demo.launch(
        max_file_size=limits.max_upload_bytes,
        state_session_capacity=limits.sessions_kept,
        css_paths=[ASSETS / "style.css"],
        theme=a11y.THEME,  # colours every reader can read (WCAG AA contrast)
        head=a11y.HEAD,  # text alternatives, names and keyboard behaviour Gradio leaves out
        app_kwargs={"middleware": [Middleware(guard.Guard, blocks=demo)]},
        **kwargs,
    )


def warm_up() -> None:
    """Load the pretrained model, and start the worker processes' fork server, in the background, so the first
    visitor (and the first job) does not wait for them."""
    threading.Thread(target=state.STORE.get, args=(model_panel.DEFAULT_MODEL, None), daemon=True).start()
    threading.Thread(target=workers.warm_up, daemon=True).start()


if __name__ == "__main__":
    tune_for_many_users()  # before the first model loads
    warm_up()
    launch(build_demo())
