"""Every exercise's right answer, re-derived independently (scipy for convolutions, torch for shapes and
parameter counts), and the verdicts a learner reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import signal
from torchvision.models import alexnet

from playground import lessons, models

COURSE = lessons.course(
    lambda: models.build("alexnet_compact", num_classes=10, generator=torch.Generator().manual_seed(0))
)


def right(lesson: int, key: str):
    return COURSE.exercise(lesson, key).answer()


def test_the_sobel_patch_value_is_scipys():
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    assert right(1, "sobel-patch") == signal.correlate2d(lessons.PATCH, sobel_x, mode="valid")[0, 0] == 760


def test_a_valid_convolutions_width_is_scipys():
    assert right(1, "output-width") == signal.correlate2d(np.zeros((3, 640)), np.ones((3, 3)), mode="valid").shape[1]


def test_conv1_and_pool1_sizes_are_torchs():
    x = torch.zeros(1, 3, 227, 227)
    conv = nn.Conv2d(3, 96, 11, stride=4)(x)
    assert right(3, "conv1-size") == conv.shape[-1] == 55
    assert right(3, "pool1-size") == nn.MaxPool2d(3, 2)(conv).shape[-1] == 27


def test_parameter_counts_are_torchs():
    paper_conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
    assert right(4, "paper-conv2") == sum(p.numel() for p in paper_conv2.parameters()) == 307_456
    net = alexnet(weights=None)
    assert right(4, "fc6") == sum(p.numel() for p in net.classifier[1].parameters())
    fc = sum(p.numel() for m in net.classifier if isinstance(m, nn.Linear) for p in m.parameters())
    assert right(5, "fc-share") == round(100 * fc / sum(p.numel() for p in net.parameters()))


def test_conv3s_receptive_field_by_hand():
    # conv1 11 (jump 4), pool 3 (jump 8), conv2 5, pool 3 (jump 16), conv3 3: 1 + 10 + 2*4 + 4*8 + 2*8 + 2*16
    assert right(5, "conv3-field") == 1 + 10 * 1 + 2 * 4 + 4 * 8 + 2 * 8 + 2 * 16 == 99


def test_the_sobel_like_filter_is_the_best_correlation():
    model = models.build("alexnet_compact", num_classes=10, generator=torch.Generator().manual_seed(0))
    shapes = model.features[0].weight.detach().mean(dim=1)  # (C, 11, 11) gray shapes
    template = np.zeros((11, 11))
    template[4:7, 4:7] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    scores = []
    for shape in shapes.numpy():
        best = 0.0
        for scale in (1, 3):
            t = np.kron([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.ones((scale, scale)))
            padded = np.zeros((11, 11))
            start = (11 - t.shape[0]) // 2
            padded[start : start + t.shape[0], start : start + t.shape[1]] = t
            a, b = shape - shape.mean(), padded - padded.mean()
            best = max(best, abs(float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))))
        scores.append(best)
    assert right(6, "sobel-filter") == int(np.argmax(scores))
    assert COURSE.check_answer(6, "sobel-filter", str(int(np.argmax(scores)))).startswith("Right: filter")
    assert "not the closest" in COURSE.check_answer(6, "sobel-filter", str(int(np.argsort(scores)[0])))


@pytest.mark.parametrize("reply", ["55", " 55 ", "55.0", "5_5"])
def test_a_right_number_reads_right(reply):
    assert COURSE.check_answer(3, "conv1-size", reply).startswith("Right")


@pytest.mark.parametrize(
    ("reply", "says"),
    [("56", "Use the lab's size formula"), ("fifty", "not a number"), ("54.5", "not a whole number"), ("", "type one")],
)
def test_a_wrong_number_gets_a_hint(reply, says):
    verdict = COURSE.check_answer(3, "conv1-size", reply)
    assert verdict.startswith("Not yet") and says in verdict


def test_the_top_edge_design_is_tried_on_a_picture():
    assert COURSE.check_answer(2, "top-edge", right(2, "top-edge")).startswith("Right")
    assert COURSE.check_answer(2, "top-edge", "1 2 1\n0 0 0\n-1 -2 -1").startswith("Not yet: it does not light the top")
    assert "flat inside" in COURSE.check_answer(2, "top-edge", "0 0 0\n0 1 0\n0 1 0")
    assert "left edge" in COURSE.check_answer(2, "top-edge", "-2 -1 0\n-1 0 1\n0 1 2")  # top and left alike
    assert COURSE.check_answer(2, "top-edge", "1 2 x").startswith("Not yet")


def test_every_exercise_has_a_working_and_an_unknown_one_is_named():
    for group in COURSE.exercises.values():
        for exercise in group:
            assert exercise.kind in lessons.KINDS and exercise.working()
    with pytest.raises(KeyError, match="no exercise 'nope' in lesson 1"):
        COURSE.check_answer(1, "nope", "1")


def test_conv5s_maps_are_torchvisions():
    out = alexnet(weights=None).features[:11](torch.zeros(1, 3, 224, 224))  # up to conv5's ReLU
    assert right(7, "conv5-size") == out.shape[-1] == 13
    assert right(7, "conv5-values") == out[0].numel() == 43_264


def test_a_saliency_map_has_one_number_per_input_number():
    x = torch.zeros(1, 3, 224, 224, requires_grad=True)
    score = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(5))(x)[0, 1]
    (gradient,) = torch.autograd.grad(score, x)
    assert right(8, "saliency-values") == gradient[0].numel()


def test_the_fine_tuning_numbers_are_torchs():
    fc7 = alexnet(weights=None).classifier[-1].in_features  # what a new fc8 joins
    assert right(9, "head-params") == sum(p.numel() for p in nn.Linear(fc7, 5).parameters()) == 20_485
    loader = torch.utils.data.DataLoader(range(400), batch_size=16)
    assert right(9, "recipe-steps") == sum(1 for _ in range(10) for _ in loader) == 250


@pytest.mark.parametrize(
    ("lesson", "key", "right_reply", "wrong_reply"),
    [(8, "sanity", "change", "stay the same"), (10, "tanh", "slower", "faster"), (10, "dropout", "grow", "shrink")],
)
def test_predictions_are_judged_and_the_reveal_is_named(lesson, key, right_reply, wrong_reply):
    exercise = COURSE.exercise(lesson, key)
    assert right_reply in exercise.choices and wrong_reply in exercise.choices
    assert COURSE.check_answer(lesson, key, right_reply).startswith("Right")
    assert COURSE.check_answer(lesson, key, f" {right_reply.upper()} ").startswith("Right")
    wrong = COURSE.check_answer(lesson, key, wrong_reply)
    assert wrong.startswith("Not yet") and ("preset" in wrong or "explaining" in wrong)


def test_the_paper_predictions_quote_the_presets_own_claim():
    from playground.training.experiments import PRESETS

    assert PRESETS["relu-vs-tanh"].theirs in COURSE.check_answer(10, "tanh", "slower")
    assert "six times faster than tanh" in PRESETS["relu-vs-tanh"].theirs  # the paper's Figure 1, as the seeds say


def test_every_lesson_has_two_or_three_exercises():
    assert sorted(COURSE.exercises) == list(range(1, 11))
    assert all(2 <= len(group) <= 3 for group in COURSE.exercises.values())


def test_the_left_edge_answer_lights_the_left_edge_by_scipy():
    kernel = np.array([[float(v) for v in row.split()] for row in right(2, "left-edge").splitlines()])
    picture = lessons.square_picture()
    out = signal.correlate2d(picture, kernel, mode="same")
    left = picture.shape[1] // 4  # the square's first bright column
    assert out[:, left - 1 : left + 1].max() == out.max() > 0  # strongest on the left edge
    assert COURSE.check_answer(2, "left-edge", right(2, "left-edge")).startswith("Right")
    wrong = COURSE.check_answer(2, "left-edge", "1 0 -1\n2 0 -2\n1 0 -1")
    assert wrong.startswith("Not yet") and "signs are the wrong way round" in wrong


def test_a_conv1_filters_weights_are_torchs():
    model = models.build("alexnet_compact", num_classes=10, generator=torch.Generator().manual_seed(0))
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert right(6, "filter-weights") == first.weight[0].numel()
    assert lessons.course(lambda: alexnet(weights=None)).exercise(6, "filter-weights").answer() == 363
