"""The course's ten lessons as the Lessons tab tells them: the words, the picture each draws live, what its
"Show me" opens, and the teacher's plan. What is checked (the exercises and their right answers) lives in
:mod:`playground.lessons`; here are only words, layout and pictures drawn by the same code the tabs use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from PIL import Image, ImageDraw
from torch import nn

from playground import activations as A
from playground import architecture, filters, lab, render
from playground import lessons as L
from playground.explain.attributions import attribute
from playground.explain.views import attribution_image
from playground.images import load_image
from playground.layers import resolve
from ui.links import View
from ui.photos import example_paths

CUP = 0  # the coffee cup: the first example photo, the course's running example


@dataclasses.dataclass(frozen=True)
class Lesson:
    number: int
    title: str
    text: str  # Markdown, a few paragraphs in our own words
    caption: str  # what the live picture shows
    picture: Callable[[nn.Module], Image.Image]  # drawn live, from the model in front of the learner
    show_me: View
    minutes: int  # in class, exercises included
    prepare: str  # what a teacher readies beforehand
    needs_weights: str = ""  # what the lesson's point needs trained weights for ("" : nothing)


def cup() -> Image.Image:
    """The coffee cup as the tabs open it (RGB, at most the working size)."""
    return load_image(example_paths()[CUP])


def _row(pictures: list[Image.Image], labels: list[str], height: int = 220) -> Image.Image:
    """Pictures side by side at one height, each labelled underneath."""
    scaled = [p.convert("RGB").resize((max(1, round(p.width * height / p.height)), height)) for p in pictures]
    gap, label_h = 12, 22
    sheet = Image.new("RGB", (sum(p.width for p in scaled) + gap * (len(scaled) - 1), height + label_h), "white")
    draw, x, font = ImageDraw.Draw(sheet), 0, render.label_font(14)
    for picture, label in zip(scaled, labels):
        sheet.paste(picture, (x, 0))
        draw.text((x + picture.width / 2, height + 3), label, fill="black", font=font, anchor="ma")
        x += picture.width + gap
    return sheet


def _lab(kernel: str, **settings) -> lab.LabResult:
    return lab.run_lab(cup(), lab.LabSettings(kernel=kernel, **settings))


def _result_label(result: lab.LabResult, what: str) -> str:
    height, width = result.output.shape[:2]
    return f"{what}: {width} x {height}"


def kernel_picture(_model=None) -> Image.Image:
    photo = cup()
    result = _lab("sobel_x")
    return _row([photo, result.image], [f"the cup: {photo.width} x {photo.height}", _result_label(result, "Sobel x")])


def light_picture(_model=None) -> Image.Image:
    kernels = ("sobel_y", "flashlight_down", "outline_center", "outline_periphery")
    names = ("Sobel y", "flashlight from above", "outline from the centre", "outline from the periphery")
    return _row([_lab(k).image for k in kernels], list(names), height=180)


def stride_picture(_model=None) -> Image.Image:
    runs = [
        (_lab("sobel_x"), "stride 1"),
        (_lab("sobel_x", stride=4), "stride 4"),
        (_lab("sobel_x", stride=4, pooling="max", pool_size=3, pool_stride=2), "stride 4, max pool 3/2"),
    ]
    return _row([r.image for r, _ in runs], [_result_label(r, what) for r, what in runs], height=200)


def _bars(names: list[str], values: list[float], *, title: str, unit: str, marked: set[str]) -> Image.Image:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), dpi=100)
    axes = figure.subplots()
    colours = ["#c0392b" if name in marked else "#2c6fbb" for name in names]
    axes.bar(names, values, color=colours)
    axes.set_title(title, fontsize=11)
    axes.set_ylabel(unit)
    axes.grid(axis="y", alpha=0.3)
    for x, value in enumerate(values):
        axes.text(x, value, f"{value:,.0f}" if value >= 10 else f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    render.fixed_margins(figure, left=0.9, bottom=0.45)
    return render.figure_image(figure)


def _weighted(name: str) -> list[architecture.LayerRow]:
    return [row for row in L.traced(name) if row.kind in ("Conv2d", "Linear")]


def _course_names(rows: list[architecture.LayerRow]) -> list[str]:
    return [f"conv{i + 1}" for i in range(5)] + [f"fc{i + 6}" for i in range(len(rows) - 5)]


def parameters_picture(_model=None) -> Image.Image:
    rows = _weighted("alexnet")
    names = _course_names(rows)
    total = sum(row.params for row in rows)
    return _bars(names, [row.params / 1e6 for row in rows], unit="millions of parameters",
                 title=f"torchvision AlexNet: {total:,} parameters, most in fc6–fc8 (red)",
                 marked={"fc6", "fc7", "fc8"})  # fmt: skip


def layers_picture(_model=None) -> Image.Image:
    rows = _weighted("alexnet2012")
    return _bars(_course_names(rows), [row.output_shape[-1] for row in rows[:5]] + [1] * (len(rows) - 5),
                 title="The paper's net (224 px in, conv1 padded by 2): each layer's maps, pixels across",
                 unit="pixels across", marked=set())  # fmt: skip


def filters_picture(model: nn.Module) -> Image.Image:
    return filters.conv1_grid(model, tile_px=40)


def maps_picture(model: nn.Module) -> Image.Image:
    x = A.preprocess(cup())
    layers = {course: resolve(model, f"relu{course[-1]}") for course in ("conv1", "conv3", "conv5")}
    _, captured = A.forward_with_activations(model, x)
    grids = [A.channel_grid(captured[name][0], k=9, tile_px=80).image for name in layers.values()]
    return _row(grids, [f"{course}: 9 busiest maps" for course in layers], height=250)


def saliency_picture(model: nn.Module) -> Image.Image:
    x = A.preprocess(cup())
    result = attribute(model, x, "saliency", None)
    return attribution_image(result.values, A.network_view(x), zoom=2)


def finetune_picture(_model=None) -> Image.Image:
    rows = _weighted("alexnet")
    names = _course_names(rows)
    return _bars(names, [row.params / 1e6 for row in rows], unit="millions of parameters",
                 title="Head only trains fc8 (red), made afresh for your classes; full trains every bar",
                 marked={"fc8"})  # fmt: skip


def activation_picture(_model=None) -> Image.Image:
    from matplotlib.figure import Figure

    z = torch.linspace(-4, 4, 401, requires_grad=True)
    figure = Figure(figsize=(8, 3), dpi=100)
    left, right = figure.subplots(1, 2)
    for name, fn in (("ReLU", torch.relu), ("tanh", torch.tanh)):
        y = fn(z)
        (slope,) = torch.autograd.grad(y.sum(), z)
        left.plot(z.detach(), y.detach(), label=name)
        right.plot(z.detach(), slope, label=name)
    left.set_title("the activation", fontsize=10)
    right.set_title("its slope: what the gradient is multiplied by", fontsize=10)
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_xlabel("input")
    render.fixed_margins(figure, between=0.7)
    return render.figure_image(figure)


def _lab_view(kernel: str, **changes) -> View:
    """The Convolution lab on the cup with ``kernel``, every other setting at its plain default unless changed."""
    settings = {"stride": 1, "padding": 0, "dilation": 1, "pooling": "none", "color": "gray", **changes}
    return View("lab", {"photo": CUP, "kernel": kernel, **settings})


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        1,
        "What a kernel does",
        "A photo is a grid of numbers: the coffee cup below is about 0.2 million of them per colour. A **kernel** "
        "is a small grid of weights, here 3 × 3, that slides over the photo. At each position it multiplies "
        "every weight by the pixel under it and adds the nine products: that sum is one pixel of the result.\n\n"
        "Sobel x weighs the column left of the centre −1, −2, −1 and the column right of it +1, +2, +1. On a "
        "flat wall the two cancel and the answer is 0; where the photo gets brighter from left to right the "
        "answer is large and positive (red), darker gives negative (blue). So the result is a map of vertical "
        "edges: the cup's rim and handle light up, the table does not.\n\n"
        "**Show me** opens the Convolution lab on the cup with Sobel x: click any pixel of the result to see "
        "the nine multiplications that made it.",
        "The cup and what Sobel x makes of it (red: brighter to the right, blue: darker).",
        kernel_picture,
        _lab_view("sobel_x"),
        10,
        "Nothing: the example photos come with the app.",
    ),
    Lesson(
        2,
        "Edges and the light-ray picture",
        "Turn Sobel x on its side and you get Sobel y, which answers to horizontal edges: the cup's top and the "
        "saucer's rim. Every edge kernel is a question: *is it brighter on this side than on that one?*\n\n"
        "The flashlight kernels tell it as light. Imagine a lamp shining from one side: a kernel that is "
        "positive on the lit side and negative on the other draws surfaces facing the lamp bright and the "
        "others in shadow, so the flat photo looks embossed. Two more outline the cup: from the centre "
        "(positive in the middle, negative around it: a spot brighter than its surroundings lights up) or from "
        "the periphery (the other way round: the outline is drawn from the outside in).\n\n"
        "Try it: write your own kernel in the lab's editor. Its weights should add up to 0 if flat areas are "
        "to stay dark.",
        "Sobel y, the flashlight from above, and the outlines from the centre and from the periphery.",
        light_picture,
        _lab_view("flashlight_down"),
        15,
        "Nothing.",
    ),
    Lesson(
        3,
        "Stride, padding and pooling",
        "A kernel need not visit every pixel. With **stride** *s* it jumps *s* pixels at a time, so the result "
        "is about *s* times smaller each way. **Padding** adds *p* rows and columns of zeros around the photo so "
        "the kernel can sit on the border; **dilation** spreads its weights apart. The size of the result is\n\n"
        "**out = ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1**\n\n"
        "for an input of *n* pixels and a kernel of *k* (with dilation *d* = 1 it is ⌊(n + 2p − k) / s⌋ + 1).\n\n"
        "**Pooling** shrinks a map further: max pooling keeps the largest value of each window. AlexNet pools "
        "3 × 3 windows every 2 pixels, so neighbouring windows overlap; the paper found that overlapping "
        "pooling lowered its error a little (0.4 points top-1) and made it overfit less.",
        "Sobel x at stride 1, at stride 4, and at stride 4 followed by AlexNet's overlapping max pool.",
        stride_picture,
        _lab_view("sobel_x", stride=4, pooling="max", pool_size=3, pool_stride=2),
        15,
        "Nothing.",
    ),
    Lesson(
        4,
        "Parameters by hand",
        "A convolution layer with *C_out* filters of *k × k* over *C_in* input channels learns "
        "*C_out × C_in × k × k* weights and *C_out* biases: the same filter is reused at every position, so the "
        "count does not depend on the photo's size. A fully connected layer from *n* inputs to *m* outputs "
        "learns *n × m + m*: every input joins every output.\n\n"
        "That is why AlexNet's parameters sit at its end. conv1 has 96 (torchvision: 64) small filters; fc6 "
        "joins the 9,216 values of the last pooled maps to 4,096 units, nearly 38 million weights on its own. "
        "The paper's 60 million parameters are mostly three fully connected layers.\n\n"
        "**Show me** opens the Architecture tab, which writes every layer's count as its formula.",
        "Where torchvision AlexNet's parameters live, layer by layer.",
        parameters_picture,
        View("architecture", {"model": "alexnet"}),
        15,
        "Nothing.",
    ),
    Lesson(
        5,
        "AlexNet's eight layers",
        "AlexNet is five convolution layers and three fully connected ones, with ReLU after each, max pooling "
        "after conv1, conv2 and conv5, and dropout in fc6 and fc7. The paper trained it on two GTX 580 GPUs "
        "with 3 GB each: half the filters on each, talking only at conv3 and the fully connected layers, which "
        "is why the paper's conv2, conv4 and conv5 see only half of the maps before them.\n\n"
        "Two details differ from what you may find elsewhere. The paper's **local response normalisation** "
        "(LRN) divides each response by its neighbours' after conv1 and conv2; later networks dropped it. And "
        "the paper says 224 × 224 inputs, but its sizes only work out for 227: ⌊(227 − 11) / 4⌋ + 1 = 55. "
        "torchvision's AlexNet, and the paper's net as this app builds it, take 224 and pad conv1 by 2 instead: "
        "⌊(224 + 4 − 11) / 4⌋ + 1 = 55 too.\n\n"
        "**Show me** opens the Architecture tab on the paper's two-GPU net (choose *alexnet* to compare).",
        "The paper's net as built here: how many pixels across each layer's maps are (fc layers: one value per unit).",
        layers_picture,
        View("architecture", {"model": "alexnet2012"}),
        15,
        "Nothing.",
    ),
    Lesson(
        6,
        "What the first layer learned",
        "Nobody wrote AlexNet's kernels: conv1's 64 filters of 11 × 11 × 3 were learned from 1.2 million "
        "photos. Trained, many of them look like the classics of lesson 2, edges at every angle and blobs of "
        "colour, because those are what the first step of seeing needs.\n\n"
        "The Filters tab lays the filters out and ranks them by how much each resembles a classic kernel "
        "(Sobel x, a Laplacian, …): the closest learned filter is drawn beside the classic one.",
        "conv1's filters of the model in front of you.",
        filters_picture,
        View("filters", {"model": "alexnet", "kernel": "sobel_x"}),
        15,
        "ImageNet weights on the server (see the checklist): without them the filters are noise.",
        needs_weights="learned filters look like edges and colour blobs only with ImageNet's weights; random "
        "weights give noise, and the closest 'Sobel-like' filter is only the least unlike it",
    ),
    Lesson(
        7,
        "Edges, textures, parts",
        "Each layer's filters run over the maps of the layer before, so deeper layers combine what earlier ones "
        "found: conv1 answers to edges and colours, conv3 to textures and repeated patterns, conv5 to parts "
        "of objects (a rim, an eye, a wheel). The maps also shrink (55, 27, 13 pixels across) while their "
        "number grows, and each value sees more of the photo: a conv5 unit's receptive field covers most of it.\n\n"
        "The Activations tab shows every map of a layer for your photo; the Units tab finds what one unit "
        "answers to most across many photos.",
        "The cup through conv1, conv3 and conv5 (after their ReLUs): the nine busiest maps of each.",
        maps_picture,
        View("activations", {"model": "alexnet", "photo": CUP, "layer": "features.7", "channel": -1}),
        15,
        "ImageNet weights, for maps that mean something.",
        needs_weights="the maps of a random network still respond to edges at conv1, but its deeper maps are "
        "not textures or parts",
    ),
    Lesson(
        8,
        "Why it said that",
        "An **attribution** says which pixels a class's score depended on. The simplest, **saliency**, is the "
        "gradient of the score with respect to each input pixel: how much the score would change if that "
        "pixel changed. Integrated Gradients, Grad-CAM, occlusion and the others ask the same question in "
        "other ways, and they do not always agree.\n\n"
        "How do we know a map explains the network rather than just the photo? The **sanity check** "
        "randomises the weights layer by layer from the top: a map that stays the same was never about the "
        "weights. Captum computes every method here; its own convergence check is shown for Integrated "
        "Gradients.",
        "Saliency of the cup for the model's top class (blue: where the score is most sensitive).",
        saliency_picture,
        View("explain", {"model": "alexnet", "photo": CUP, "method": "saliency"}),
        15,
        "ImageNet weights, so that the top class is 'coffee mug' or 'cup'.",
        needs_weights="the top class is right only with ImageNet's weights; a random network's map explains a "
        "random guess (the sanity check still shows the method's behaviour)",
    ),
    Lesson(
        9,
        "Fine-tuning on five flowers",
        "You do not need 1.2 million photos to use AlexNet. Keep what it learned and retrain only its last "
        "layer (**head only**) for your classes, or let every layer move a little (**full**). The course's "
        "recipe: Adam at a learning rate of 1e-3, batches of 16, 10 epochs, random crops and flips.\n\n"
        "On five kinds of flower, a few hundred photos each, the head alone gets most of the way; the Train "
        "tab shows the curves as it learns, then the accuracy per class and the confusion matrix. Put your own "
        "photos in folders, one per class, zip them, and train on them.",
        "What each mode trains: head only moves fc8 alone; full moves every layer.",
        finetune_picture,
        View(
            "train",
            {
                "dataset": "five-flowers",
                "model": "alexnet",
                "mode": "head",
                "epochs": 10,
                "batch_size": 16,
                "lr": 1e-3,
                "optimizer": "adam",
            },
        ),  # fmt: skip
        25,
        "The five-flowers data on the server (or a zip of class folders), and ImageNet weights for head only.",
        needs_weights="head-only fine-tuning reaches good accuracy only from ImageNet's weights; from random "
        "weights it learns from features that mean nothing",
    ),
    Lesson(
        10,
        "The ladder and the paper's ablations",
        "The course's own article climbed a ladder on five kinds of flower: about 40 % validation accuracy "
        "for a small network trained from scratch, stuck near 50 % whatever it tried next, 80 % the moment it "
        "started from a network pretrained on ImageNet, and about 90 % after regularisation, dropout, early "
        "stopping and patience. Each rung is a setting you can change in the Train tab.\n\n"
        "The paper also measured its own choices. **ReLU** reached 25 % training error six times faster than "
        "tanh; **dropout** stopped the network overfitting at the cost of twice the iterations; **LRN** and "
        "overlapping pooling each took a fraction of a point off the error. The Experiments tab reruns these "
        "comparisons on the data in front of you, with several seeds, and says when a difference is smaller "
        "than the noise between seeds. Predict first, then run.",
        "ReLU and tanh, and their slopes: tanh's flattens away from 0, ReLU's stays 1.",
        activation_picture,
        View("experiments", {"preset": "relu-vs-tanh", "seeds": 1}),
        30,
        "A few minutes of CPU per learner, or a GPU; the synthetic data works offline.",
    ),
)

BY_NUMBER = {lesson.number: lesson for lesson in LESSONS}
