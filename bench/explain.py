"""Explain: every attribution method at its default settings on AlexNet (budget 1.5 s; occlusion 3 s)."""

from __future__ import annotations

import torch
from PIL import Image
from skimage import data

from bench.common import median_ms, report
from playground import activations as A
from playground.explain.attributions import METHODS, attribute, explainable_copy, sanity_check
from playground.models import BLACK
from playground.weights.checkpoints import load


def run() -> None:
    torch.manual_seed(0)
    model, _ = load("alexnet", "imagenet")
    x = A.preprocess(Image.fromarray(data.coffee()))
    explainable_copy(model)  # the one-off private copy, made on a tab's first use
    total = 0.0
    for name in METHODS:
        ms = median_ms(lambda name=name: attribute(model, x, name, black=BLACK), repeat=5, warmup=1)
        total += ms
        report(f"{METHODS[name].label} (defaults)", ms, 3000 if name == "occlusion" else 1500)
    report("compare all ten methods (sum of the above)", total)
    report(
        "sanity check, saliency, 8 randomisation steps",
        median_ms(lambda: list(sanity_check(model, x, "saliency", black=BLACK)), repeat=3, warmup=1),
    )
