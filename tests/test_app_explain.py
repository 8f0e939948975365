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
