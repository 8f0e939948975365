"""The course as exercises the app checks: each right answer is computed here, by the same playground code
the tabs use, never typed into a lesson's text, so a lesson cannot disagree with the screen.

An :class:`Exercise` asks one question of one kind (``number``: a whole number; ``design``: a kernel the
learner writes, applied to a test picture; ``look``: a choice the learner makes by looking at the model in
front of them; ``prediction``: a guess made before a reveal, judged against what the paper measured, whose
reveal is an experiment the learner then runs) and answers a learner's reply with a :class:`Verdict` whose sentence starts with "Right" or
"Not yet", a hint on what to look at, and the answer worked out step by step for "show the answer".

Lessons' texts and their "show me" settings are the UI's (they are words and layout); this module holds what
is checked. ``check_answer(lesson, exercise, answer)`` is what the HTTP API's ``/check_answer`` calls.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import torch.nn as nn

from playground import architecture, filters, models
from playground import kernels as K
from playground.training import experiments, finetune

KINDS = ("number", "design", "look", "prediction")


@dataclasses.dataclass(frozen=True)
class Verdict:
    right: bool
    sentence: str  # starts with "Right" or "Not yet"


@dataclasses.dataclass(frozen=True)
class Exercise:
    key: str  # unique within its lesson, e.g. "conv1-size"
    kind: str  # one of KINDS
    question: str
    hint: str  # what to look at after a wrong answer
    solve: Callable[[], tuple[object, str]]  # -> (the right answer, the working, step by step)
    judge: Callable[[object, str], Verdict] | None = None  # (the right answer, the learner's reply) -> verdict
    choices: tuple[str, ...] = ()  # a prediction's possible replies

    def answer(self) -> object:
        return self.solve()[0]

    def working(self) -> str:
        return self.solve()[1]

    def check(self, reply: str) -> Verdict:
        right = self.answer()
        if self.judge is not None:
            return self.judge(right, reply)
        return judge_number(
            right,
            reply,
            "Right: {right:,}.",
            "Not yet: {value:,} is not it. " + self.hint.replace("{", "{{").replace("}", "}}"),
        )


def judge_number(right: int, reply: str, said_right: str, said_wrong: str) -> Verdict:
    """A whole-number reply against ``right``; the sentences are formatted with ``right`` and ``value``."""
    try:
        value = _whole_number(reply)
    except ValueError as error:
        return Verdict(False, f"Not yet: {error}")
    if value == right:
        return Verdict(True, said_right.format(right=right, value=value))
    return Verdict(False, said_wrong.format(right=right, value=value))


def _whole_number(reply: str) -> int:
    text = str(reply).strip().replace(",", "").replace("_", "").replace(" ", "")
    if not text or len(text) > 20:
        raise ValueError("type one whole number, such as 55.")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{str(reply)[:20]!r} is not a number; type one whole number, such as 55.") from None
    if not number.is_integer():
        raise ValueError(f"{number:g} is not a whole number; sizes and counts are whole.")
    return int(number)


# Lesson 1: what a kernel does --------------------------------------------------------------------------------

PATCH = np.array([[10, 10, 200], [10, 10, 200], [10, 10, 200]], dtype=np.float32)  # dark left, bright right


def _sobel_on_patch() -> tuple[int, str]:
    weights = K.preset("sobel_x").weights
    value = K.convolve(PATCH, weights)[0, 0]
    terms = " + ".join(f"{w:g}·{p:g}" for w, p in zip(weights.ravel(), PATCH.ravel()) if w)
    return int(round(float(value))), f"Multiply each weight by the pixel under it and add: {terms} = {value:g}."


def _lab_output_width() -> tuple[int, str]:
    n, k = 640, 3
    width = K.output_size(n, k)
    return width, f"Without padding a {k}×{k} kernel fits {n} − {k} + 1 = {width} times across {n} pixels."


# Lesson 2: edges and light -----------------------------------------------------------------------------------


def square_picture(size: int = 24) -> np.ndarray:
    """A bright square on a dark ground: its top edge is where a "top edge" kernel must answer most."""
    picture = np.full((size, size), 20.0, dtype=np.float32)
    picture[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 220.0
    return picture


def _edge_responses(weights: np.ndarray) -> dict[str, float]:
    """The kernel's strongest answer along each edge of the test picture's square."""
    picture = square_picture()
    out = K.convolve(picture, weights, padding=weights.shape[0] // 2)
    q, h = picture.shape[0] // 4, picture.shape[0] // 2
    rows = {"top": q, "bottom": 3 * q - 1}
    cols = {"left": q, "right": 3 * q - 1}
    band = slice(q + 1, 3 * q - 1)  # the edge's middle, away from the corners
    found = {}
    for name, r in rows.items():
        found[name] = float(max(out[r - 1 : r + 1, band].max(), out[r : r + 2, band].max()))
    for name, c in cols.items():
        found[name] = float(max(out[band, c - 1 : c + 1].max(), out[band, c : c + 2].max()))
    found["inside"] = float(np.abs(out[h - 1 : h + 1, h - 1 : h + 1]).max())
    return found


_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
_HOW = {  # where the positive and negative weights go for each edge of a bright square
    "top": "put positive weights below the centre, negative above",
    "left": "put positive weights right of the centre, negative left",
}


def _judge_edge(edge: str) -> Callable[[object, str], Verdict]:
    """A judge for a kernel that should light the ``edge`` edges of the test picture's square, and nothing else."""

    def judge(_right, reply: str) -> Verdict:
        try:
            weights = K.parse_kernel(str(reply))
        except ValueError as error:
            return Verdict(False, f"Not yet: {error}")
        answers = _edge_responses(weights)
        mine = answers[edge]
        others = {name: value for name, value in answers.items() if name not in (edge, "inside")}
        strongest = max(others, key=others.get)
        if mine > 0 and mine > 1.5 * max(others[strongest], 0) and answers["inside"] < 0.5 * mine:
            return Verdict(
                True, f"Right: it answers {mine:,.0f} on the {edge} edge, at most {others[strongest]:,.0f} elsewhere."
            )
        if mine <= 0:
            why = f"it does not light the {edge} edge at all: {_HOW[edge]}"
            if answers[_OPPOSITE[edge]] > 0:
                why += f" (it lights the {_OPPOSITE[edge]} edge: your signs are the wrong way round)"
        elif answers["inside"] >= 0.5 * mine:
            why = "it lights the flat inside too: make the weights add up to zero"
        else:
            why = f"it lights the {strongest} edge about as much ({others[strongest]:,.0f} against {mine:,.0f})"
        return Verdict(False, f"Not yet: {why}.")

    return judge


def _edge_answer(edge: str, preset: str, label: str, rows: str) -> Callable[[], tuple[str, str]]:
    def solve() -> tuple[str, str]:
        text = K.format_kernel(K.preset(preset).weights)
        return text, (
            f"A {edge} edge of a bright square is dark {rows}: weigh the pixels on the bright side positively and "
            f"the dark side negatively, with weights adding up to zero so flat areas give 0. "
            f"{label} does:\n{text}"
        )

    return solve


# Lessons 3-5: sizes and parameters ---------------------------------------------------------------------------


def _conv1_size() -> tuple[int, str]:
    n, k, s, p = 227, 11, 4, 0
    size = K.output_size(n, k, s, p)
    return size, f"⌊({n} + 2·{p} − {k}) / {s}⌋ + 1 = ⌊{n + 2 * p - k} / {s}⌋ + 1 = {size}."


def _pool1_size() -> tuple[int, str]:
    n, k, s = _conv1_size()[0], 3, 2
    size = K.output_size(n, k, s)
    return size, f"Overlapping pooling, 3×3 windows every 2 pixels: ⌊({n} − {k}) / {s}⌋ + 1 = {size}."


@functools.cache
def traced(name: str) -> tuple[architecture.LayerRow, ...]:
    """Every layer of ``name`` for a 224-pixel photo (as the Architecture tab traces it; the paper's net here
    pads conv1 by 2, as torchvision's does, so 224 gives the paper's 55)."""
    return tuple(architecture.trace(models.build(name, num_classes=1000), (3, 224, 224)))


def _row(name: str, kind: str, index: int) -> architecture.LayerRow:
    return [row for row in traced(name) if row.kind == kind][index]


def _paper_conv2_params() -> tuple[int, str]:
    row = _row("alexnet2012", "Conv2d", 1)
    return row.params, f"conv2: {row.params_formula} = {row.params:,}: each GPU's 128 filters see only its 48 maps."


def _linear_params() -> tuple[int, str]:
    row = _row("alexnet", "Linear", 0)
    return row.params, f"fc6 joins every one of 256 × 6 × 6 inputs to each of 4096 outputs: {row.params_formula}."


def _fc_share() -> tuple[int, str]:
    rows = traced("alexnet")
    fc = sum(row.params for row in rows if row.kind == "Linear")
    total = sum(row.params for row in rows)
    share = round(100 * fc / total)
    return share, f"The three fully connected layers hold {fc:,} of {total:,} parameters: {share} %."


def _receptive_field() -> tuple[int, str]:
    row = _row("alexnet", "Conv2d", 2)
    return row.receptive_field, (
        f"Each layer widens the view by (kernel − 1) × the jump so far; conv3 ({row.name}) sees "
        f"{row.receptive_field} × {row.receptive_field} input pixels."
    )


# Lesson 6: what the first layer learned ----------------------------------------------------------------------


def sobel_like_filter(model: nn.Module) -> tuple[int, str]:
    """The conv1 filter of ``model`` most like Sobel x, as the Filters tab ranks it."""
    match = filters.match_kernel(model, K.preset("sobel_x").weights, top_k=1)[0]
    return match.filter_index, (
        f"Filter {match.filter_index} correlates {match.similarity:+.2f} with Sobel x, the most of all "
        f"{filters.first_conv(model).out_channels} (a negative sign is the same shape, inverted)."
    )


def _filter_weights(model: nn.Module) -> tuple[int, str]:
    conv = filters.first_conv(model)
    kh, kw = conv.kernel_size
    weights = conv.in_channels // conv.groups * kh * kw
    return weights, f"Each conv1 filter is {kh} × {kw} pixels × {conv.in_channels} colour channels = {weights} weights."


def _judge_filter(right, reply: str) -> Verdict:
    return judge_number(
        right,
        reply,
        "Right: filter {right}.",
        "Not yet: filter {value} is not the closest. Open the Filters tab's Sobel x row.",
    )


# Lessons 7-8: what the layers see, and why it said that ----------------------------------------------------


def _conv5_size() -> tuple[int, str]:
    row = _row("alexnet", "Conv2d", 4)
    channels, height, width = row.output_shape
    return height, f"conv5 ({row.name}) gives {channels} maps of {height} × {width} for a 224-pixel photo."


def _conv5_values() -> tuple[int, str]:
    row = _row("alexnet", "Conv2d", 4)
    channels, height, width = row.output_shape
    values = channels * height * width
    return values, f"{channels} maps × {height} × {width} positions = {values:,} numbers for one photo."


def _saliency_values() -> tuple[int, str]:
    channels, size = 3, 224
    values = channels * size * size
    return values, (
        f"Saliency is the gradient of the class's score with respect to every input number: {channels} colour "
        f"channels × {size} × {size} pixels = {values:,}; the picture then sums the channels per pixel."
    )


def _judge_choice(right: str, reply: str, said_right: str, said_wrong: str) -> Verdict:
    chosen = str(reply).strip().lower()
    if chosen == right:
        return Verdict(True, said_right)
    return Verdict(False, said_wrong)


def _sanity_answer() -> tuple[str, str]:
    return "change", (
        "A map that explains the network must depend on its weights: randomise them and the map should change. "
        "Saliency and Integrated Gradients change; a map that stays (guided backprop is the known case) is "
        "showing the photo's edges, not the network's reasons."
    )


def _judge_sanity(right: str, reply: str) -> Verdict:
    return _judge_choice(
        right,
        reply,
        "Right: a faithful map changes when the weights it explains are destroyed. Run the sanity check to see.",
        "Not yet: if the map stayed the same, what would it be explaining? It cannot be the weights.",
    )


# Lessons 9-10: fine-tuning, and the paper's ablations --------------------------------------------------------


def _head_params() -> tuple[int, str]:
    head = models.build("alexnet", num_classes=5).classifier[-1]
    params = sum(p.numel() for p in head.parameters())
    rows = traced("alexnet")
    kept = sum(row.params for row in rows) - rows[-1].params  # all but ImageNet's own fc8
    return params, (
        f"Head only trains the last layer, fc8, made afresh for 5 flowers: {head.in_features} inputs × 5 outputs "
        f"+ 5 biases = {params:,}; the other {kept:,} weights stay as ImageNet left them."
    )


def _recipe_steps() -> tuple[int, str]:
    images, batch, epochs = 400, 16, 10
    per_epoch = finetune.steps_per_epoch(images, batch)
    return per_epoch * epochs, (
        f"{images} images in batches of {batch}: {per_epoch} steps an epoch (the last batch may be smaller); "
        f"× {epochs} epochs = {per_epoch * epochs} steps."
    )


def _paper_says(preset: str, answer: str) -> Callable[[], tuple[str, str]]:
    def solve() -> tuple[str, str]:
        return answer, f"{experiments.PRESETS[preset].theirs} Run the preset to see whether it holds on this data."

    return solve


def _judge_paper(preset: str) -> Callable[[str, str], Verdict]:
    def judge(right: str, reply: str) -> Verdict:
        theirs = experiments.PRESETS[preset].theirs
        return _judge_choice(
            right,
            reply,
            f"Right. {theirs} Now run the preset: does it hold on this data?",
            f"Not yet: the paper found the other. {theirs} Run the preset and see what happens here.",
        )

    return judge


# The course ---------------------------------------------------------------------------------------------------


# Every lesson but 6 asks about arithmetic, the fixed architectures or the paper: the same for every model.
FIXED: dict[int, tuple[Exercise, ...]] = {
    1: (
        Exercise(
            "sobel-patch",
            "number",
            "Sobel x slides over a 3×3 patch that is dark (10) on the left two columns and bright (200) on "
            "the right. What number comes out?",
            "Multiply each of Sobel x's weights by the pixel under it; the middle column counts for nothing.",
            _sobel_on_patch,
        ),
        Exercise(
            "output-width",
            "number",
            "A 3×3 kernel slides over a photo 640 pixels wide, stride 1, no padding. How wide is the result?",
            "The kernel's centre cannot sit on the outermost pixel: count the places it fits.",
            _lab_output_width,
        ),
    ),
    2: (
        Exercise(
            "top-edge",
            "design",
            "Write a 3×3 kernel that lights the top edges of things (dark above, bright below), and nothing "
            "else. The app tries it on a bright square.",
            "Look at Sobel y in the lab: which row is positive?",
            _edge_answer("top", "sobel_y", "Sobel y", "above, bright below"),
            _judge_edge("top"),
        ),
        Exercise(
            "left-edge",
            "design",
            "Now one that lights the left edges of things (dark on the left, bright on the right), and nothing "
            "else. The app tries it on the same bright square.",
            "Turn your top-edge kernel on its side.",
            _edge_answer("left", "sobel_x", "Sobel x", "on the left, bright on the right"),
            _judge_edge("left"),
        ),
    ),
    3: (
        Exercise(
            "conv1-size",
            "number",
            "The paper's conv1 has 11×11 kernels at stride 4 and no padding. How big is its output for a "
            "227-pixel input?",
            "Use the lab's size formula: ⌊(n + 2p − k) / s⌋ + 1.",
            _conv1_size,
        ),
        Exercise(
            "pool1-size",
            "number",
            "Overlapping max pooling (3×3 windows, stride 2) follows conv1. How big is its output?",
            "The pooling window is a kernel too: the same formula, with k = 3 and s = 2.",
            _pool1_size,
        ),
    ),
    4: (
        Exercise(
            "paper-conv2",
            "number",
            "The paper's conv2 has 256 filters of 5×5, split across two GPUs so each sees 48 of conv1's 96 "
            "maps. How many parameters does it have, biases included?",
            "Each filter is 5 × 5 × 48 weights plus one bias; there are 256 filters.",
            _paper_conv2_params,
        ),
        Exercise(
            "fc6",
            "number",
            "torchvision's fc6 takes the 256 × 6 × 6 pooled maps and gives 4096 values. How many parameters?",
            "Every input joins every output once, and each output has one bias.",
            _linear_params,
        ),
    ),
    5: (
        Exercise(
            "fc-share",
            "number",
            "What share of torchvision AlexNet's parameters is in its three fully connected layers, in whole per cent?",
            "Open the Architecture tab: add up fc6, fc7 and fc8 and divide by the total.",
            _fc_share,
        ),
        Exercise(
            "conv3-field",
            "number",
            "How many input pixels across does one unit of torchvision AlexNet's conv3 see (its receptive field)?",
            "The Architecture tab lists each layer's receptive field; work it out from the kernels and strides.",
            _receptive_field,
        ),
    ),
    7: (
        Exercise(
            "conv5-size",
            "number",
            "How many pixels across are conv5's feature maps for a 224-pixel photo in torchvision AlexNet?",
            "Open the Activations tab on conv5 and read the map's size, or follow the sizes down the Architecture tab.",
            _conv5_size,
        ),
        Exercise(
            "conv5-values",
            "number",
            "How many numbers does conv5 give for one photo (all its maps together)?",
            "Channels × height × width: the Architecture tab's output shape of conv5.",
            _conv5_values,
        ),
    ),
    8: (
        Exercise(
            "saliency-values",
            "number",
            "A saliency map is the gradient of one class's score with respect to the input. How many numbers "
            "does it have for a 224 × 224 colour photo, before the picture sums the colour channels?",
            "One number for every number the network was given.",
            _saliency_values,
        ),
        Exercise(
            "sanity",
            "prediction",
            "The sanity check randomises the network's weights from the top down. Should a map that really "
            "explains the network stay the same or change?",
            "If the map stayed the same, what would it be explaining?",
            _sanity_answer,
            _judge_sanity,
            choices=("stay the same", "change"),
        ),
    ),
    9: (
        Exercise(
            "head-params",
            "number",
            "Head-only fine-tuning of AlexNet on five kinds of flower trains a new last layer and nothing else. "
            "How many parameters does it train?",
            "fc8 for five classes: every one of fc7's 4096 outputs joins each of 5 outputs, plus a bias each.",
            _head_params,
        ),
        Exercise(
            "recipe-steps",
            "number",
            "The recipe: batch 16, 10 epochs. How many optimizer steps does it take on 400 training images?",
            "Steps per epoch are batches per epoch: round up, since the last batch may be smaller.",
            _recipe_steps,
        ),
    ),
    10: (
        Exercise(
            "tanh",
            "prediction",
            "Before you run the ReLU vs tanh preset: will tanh reach the target training error faster or slower "
            "than ReLU?",
            "The paper's Figure 1 raced them on CIFAR-10.",
            _paper_says("relu-vs-tanh", "slower"),
            _judge_paper("relu-vs-tanh"),
            choices=("faster", "slower"),
        ),
        Exercise(
            "dropout",
            "prediction",
            "Before you run the Dropout preset: without dropout, will the gap between training and validation "
            "accuracy grow or shrink?",
            "Dropout is a regulariser: what does a network do to its training data without one?",
            _paper_says("dropout", "grow"),
            _judge_paper("dropout"),
            choices=("grow", "shrink"),
        ),
    ),
}


def _looks(model_for_looks: Callable[[], nn.Module]) -> dict[int, tuple[Exercise, ...]]:
    """Lesson 6 asks about the model in front of the learner."""
    return {
        6: (
            Exercise(
                "sobel-filter",
                "look",
                "Which of the model's conv1 filters (by number) is most like Sobel x?",
                "Open the Filters tab and read the Sobel x row of the classic kernels' matches.",
                lambda: sobel_like_filter(model_for_looks()),
                _judge_filter,
            ),
            Exercise(
                "filter-weights",
                "look",
                "How many weights make one of the model's conv1 filters (count all its colour channels, no bias)?",
                "The Filters tab shows each filter's size and colour: height × width × colour channels.",
                lambda: _filter_weights(model_for_looks()),
            ),
        ),
    }


@dataclasses.dataclass(frozen=True)
class Course:
    exercises: dict[int, tuple[Exercise, ...]]

    def exercise(self, lesson: int, key: str) -> Exercise:
        for exercise in self.exercises.get(lesson, ()):
            if exercise.key == key:
                return exercise
        known = ", ".join(f"{n}/{e.key}" for n, group in self.exercises.items() for e in group)
        raise KeyError(f"There is no exercise {key!r} in lesson {lesson}; the exercises are {known}.")

    def check_answer(self, lesson: int, key: str, answer: str) -> str:
        """The verdict sentence for a learner's ``answer``: it starts with "Right" or "Not yet"."""
        return self.exercise(lesson, key).check(str(answer)[:2000]).sentence


def course(model_for_looks: Callable[[], nn.Module]) -> Course:
    """The course's exercises; "look" exercises ask about the model ``model_for_looks()`` returns."""
    return Course(dict(sorted({**FIXED, **_looks(model_for_looks)}.items())))
