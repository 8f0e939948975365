"""AlexNet inside: activations, top-5, filters and a webcam frame, against PRODUCT.md's budgets."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage import data

from bench.common import median_ms, report
from playground import activations as A
from playground import filters as F
from playground.architecture import trace
from playground.images import load_image
from playground.weights.checkpoints import load


def run() -> None:
    torch.manual_seed(0)
    model, info = load("alexnet", "imagenet")  # untrained when offline: the same work either way
    print(f"(alexnet weights: {info.description})", flush=True)
    photo = Image.fromarray(data.coffee())
    frame = np.asarray(Image.fromarray(data.astronaut()).resize((640, 480)))  # a VGA webcam frame

    def every_layer():
        x = A.preprocess(photo)
        _, acts = A.forward_with_activations(model, x)
        return [A.channel_grid(a).image for a in acts.values()]

    def webcam():
        x = A.preprocess(load_image(frame))
        return A.channel_grid(A.capture(model, x, ["features.1"])["features.1"], k=16, tile_px=64).image

    report("activations: forward + capture + render every layer (19)", median_ms(every_layer, repeat=20), 150)
    report(
        "top-5 (preprocess + forward + softmax)",
        median_ms(lambda: A.predict(model, A.preprocess(photo), info.classes)),
        60,
    )
    report("conv1 filter grid", median_ms(lambda: F.conv1_grid(model)))
    report("classic-vs-learned matches (20 kernels x 64 filters)", median_ms(lambda: F.match_classic(model)))
    report("architecture trace", median_ms(lambda: trace(model), repeat=10))
    ms = median_ms(webcam, repeat=30)
    report(f"webcam frame 640x480 -> features.1 grid ({1000 / ms:.0f} frames/s)", ms, 100)
