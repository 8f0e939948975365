import io

import numpy as np
from PIL import Image

from playground.training.curves import Curves


def test_every_series_is_drawn_with_its_name_in_the_legend():
    curves = Curves()
    for step in range(1, 41):
        curves.add("loss", "training loss", step, 2.0 / step)
        curves.add("accuracy", "training accuracy", step, step / 50)
        if step % 10 == 0:  # validation arrives once an epoch, after the first points were drawn
            curves.add("accuracy", "validation accuracy", step, step / 45)
    loss_axes, accuracy_axes = curves.figure().axes
    assert [text.get_text() for text in loss_axes.get_legend().get_texts()] == ["training loss"]
    assert [text.get_text() for text in accuracy_axes.get_legend().get_texts()] == [
        "training accuracy",
        "validation accuracy",
    ]
    validation = accuracy_axes.get_lines()[1]
    assert list(validation.get_xdata()) == [10, 20, 30, 40] and validation.get_marker() == "o"
    assert accuracy_axes.get_ylim() == (0, 1)
    image = curves.image()
    assert image.mode == "RGB" and image.size == (900, 300)


def test_an_empty_panel_is_drawn_without_a_legend():
    curves = Curves()
    curves.add("loss", "training loss", 1, 1.0)
    _, accuracy_axes = curves.figure().axes
    assert accuracy_axes.get_legend() is None and not accuracy_axes.get_lines()


def test_chance_is_dashed_on_the_accuracy_panel_and_named_in_its_legend():
    curves = Curves(classes=4)
    curves.add("accuracy", "training accuracy", 1, 0.3)
    loss_axes, accuracy_axes = curves.figure().axes
    chance = [line for line in accuracy_axes.get_lines() if line.get_linestyle() == "--"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.25, 0.25]
    assert "chance: 1/4 = 25%" in [text.get_text() for text in accuracy_axes.get_legend().get_texts()]
    assert not [line for line in loss_axes.get_lines() if line.get_linestyle() == "--"]  # no chance for a loss


def test_the_picture_is_the_png_savefig_writes():
    curves = Curves(classes=5)
    for step in range(1, 21):
        curves.add("loss", "training loss", step, 1.0 / step)
        curves.add("accuracy", "training accuracy", step, step / 25)
    buffer = io.BytesIO()
    curves.figure().savefig(buffer, format="png")
    png = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(np.asarray(curves.image()), png)
