"""The Explain tab over real HTTP: /attribute and /compare through gradio_client."""

from __future__ import annotations

import pytest
from PIL import Image

from ui.photos import example_paths

pytestmark = pytest.mark.http


def _file(path):
    from gradio_client import handle_file

    return handle_file(path)


def test_attribute_endpoint(client):
    picture, facts = client.predict(
        "alexnet_compact",
        _file(example_paths()[0]),
        "top-1 prediction",
        "integrated_gradients",
        "overlay",
        "absolute",
        "",
        16,
        api_name="/attribute",
    )
    assert Image.open(picture).mode == "RGB"
    assert "Integrated Gradients" in facts and "Convergence delta" in facts and "n_steps 16" in facts
    assert "untrained" in facts
    picture, facts = client.predict(
        "alexnet",
        _file(example_paths()[1]),
        "tabby",
        "gradcam",
        "heat map",
        "absolute",
        "conv4",  # the course's name for features.8
        32,
        api_name="/attribute",
    )
    assert "class **tabby**" in facts and "layer conv4 · features.8" in facts
    update = client.predict("alexnet", api_name="/gradcam_layers")
    assert update["choices"][0] == ["conv1 · features.0", "features.0"] and update["value"] == "features.10"


def test_attribute_refuses_too_many_steps(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Integrated Gradients steps|1 to 200 steps|maximum"):
        client.predict(
            "alexnet",
            _file(example_paths()[0]),
            "top-1 prediction",
            "integrated_gradients",
            "overlay",
            "absolute",
            "",
            500,
            api_name="/attribute",
        )


def test_compare_endpoint_streams_every_method_and_their_agreement(client):
    gallery, table, status = client.predict(
        "alexnet_compact", _file(example_paths()[0]), "top-1 prediction", "absolute", api_name="/compare"
    )
    assert len(gallery) == 10
    assert table["headers"][0] == "method" and len(table["data"]) == 10
    diagonal = [row[i + 1] for i, row in enumerate(table["data"])]
    assert diagonal == [1.0] * 10
    assert "All 10 methods" in status and "Spearman" in status


def _seconds(text: str) -> float:
    """ "50 ms", "1.2 s", "1,234 s" as seconds (ui.handlers.duration's wording)."""
    number, unit = text.split()
    return float(number.replace(",", "")) / (1000 if unit == "ms" else 1)


def test_a_caption_counts_the_wait_behind_another_learner_from_the_click(app_url):
    """One compare-all runs at a time: the second learner's waits behind the first, and its caption says so
    (the first Grad-CAM under load waited 98 s while its caption said 50 ms)."""
    import re
    import time

    from gradio_client import Client

    photo = _file(example_paths()[0])
    # Without downloading the streamed pictures, the client's clock times the server, not the downloads.
    first, second = (Client(app_url, verbose=False, download_files=False) for _ in range(2))
    ahead = first.submit("alexnet_compact", photo, "top-1 prediction", "absolute", api_name="/compare")
    time.sleep(0.5)  # the first is running by now
    clicked = time.monotonic()
    status = second.submit("alexnet_compact", photo, "top-1 prediction", "absolute", api_name="/compare").result()[2]
    waited_here = time.monotonic() - clicked
    ahead.result()
    found = re.search(r"All 10 methods: ([\d.,]+ m?s) from your click to this result \(([\d.,]+ m?s) waiting for the "
                      r"server, ([\d.,]+ m?s) computing", status)  # fmt: skip
    assert found, status
    total, queued, computing = (_seconds(found.group(i)) for i in (1, 2, 3))
    assert waited_here - 3.0 <= total <= waited_here + 0.1  # what this learner waited (less uploading the photo)
    assert queued >= 0.2 and computing < total  # it waited behind the first, and the caption says so
