"""The three AlexNets and the lecture's baselines, with one registry record per model.

All AlexNet variants share torchvision's layout and layer names (``features.0`` … ``classifier.6``), so
weights, hooks and the UI's layer names work the same on each:

- ``alexnet``: torchvision's single-GPU AlexNet, 64-192-384-256-256 filters (the ImageNet weights).
- ``alexnet2012``: the 2012 paper's net, 96-256-384-384-256 filters, local response normalisation
  after the first two convolutions, conv2/4/5 split into two groups as on the paper's two GPUs.
- ``alexnet_compact``: the lecture's halved net, 48-128-192-192-128 filters and 2048-unit layers.

Where weights come from (ImageNet, users' files) is :mod:`playground.checkpoints`' business.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models import AlexNet_Weights

# torchvision's published weights, and the preprocessing they were trained with: resize 256, centre crop
# 224, ImageNet mean and std. Every model here takes its input normalised this way (the training engine
# normalises the same), so the constants live beside the weights.
IMAGENET_WEIGHTS = AlexNet_Weights.IMAGENET1K_V1
PREPROCESS = IMAGENET_WEIGHTS.transforms()
MEAN = torch.tensor(PREPROCESS.mean).view(3, 1, 1)
STD = torch.tensor(PREPROCESS.std).view(3, 1, 1)
BLACK = ((0.0 - MEAN) / STD).flatten().tolist()  # a black pixel after normalisation: the attribution baseline


def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet class names, in output order (they ship inside torchvision)."""
    return tuple(IMAGENET_WEIGHTS.meta["categories"])


# --- the AlexNets ----------------------------------------------------------------------------------------


def _alexnet(num_classes: int) -> nn.Module:
    return torchvision.models.alexnet(weights=None, num_classes=num_classes)


class _AlexNetLayout(nn.Module):
    """features -> avgpool (6 x 6) -> flatten -> classifier, as torchvision's AlexNet is laid out."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # a no-op at 224 x 224; lets other sizes through
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 6, 6) at 224 x 224
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, C * 36)
        return self.classifier(x)


def _alexnet2012(num_classes: int) -> nn.Module:
    # The paper: b = a / (k + alpha * sum of a^2 over n neighbouring channels)^beta with k=2, n=5,
    # alpha=1e-4, beta=0.75. torch's LocalResponseNorm divides alpha by n, so it gets alpha * n.
    def lrn():
        return nn.LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)

    features = nn.Sequential(
        nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2),  # 0: (96, 55, 55)
        nn.ReLU(inplace=True),
        lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 3: overlapping pooling -> (96, 27, 27)
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),  # 4: each GPU sees its own 48 maps
        nn.ReLU(inplace=True),
        lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 7: (256, 13, 13)
        nn.Conv2d(256, 384, kernel_size=3, padding=1),  # 8: the one layer that talks across GPUs
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),  # 10
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),  # 12
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 14: (256, 6, 6)
    )
    classifier = nn.Sequential(
        nn.Dropout(p=0.5),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    return _AlexNetLayout(features, classifier)


def _alexnet_compact(num_classes: int) -> nn.Module:
    # The lecture's halved net, layer for layer in its order (Linear, ReLU, Dropout in the head).
    features = nn.Sequential(
        nn.Conv2d(3, 48, kernel_size=11, stride=4, padding=2),  # (48, 55, 55)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (48, 27, 27)
        nn.Conv2d(48, 128, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (128, 13, 13)
        nn.Conv2d(128, 192, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(192, 192, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(192, 128, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (128, 6, 6)
    )
    classifier = nn.Sequential(
        nn.Linear(128 * 6 * 6, 2048),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(2048, 2048),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(2048, num_classes),
    )
    return _AlexNetLayout(features, classifier)


# --- the baselines before convolution --------------------------------------------------------------------


def _linear_baseline(num_classes: int, input_shape=(3, 64, 64)) -> nn.Module:
    """The lecture's first model: flatten the pixels, one linear layer, softmax (in the loss)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))


def _mlp_baseline(num_classes: int, input_shape=(3, 64, 64), hidden: int = 512) -> nn.Module:
    """The lecture's second: one hidden layer with ReLU and dropout."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(int(np.prod(input_shape)), hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(hidden, num_classes),
    )


# --- the registry ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the app needs to know about one model before it has weights."""

    builder: Callable[..., nn.Module]  # (num_classes, [input_shape]) -> a freshly initialised module
    description: str  # one line for the model chooser
    input_shape: tuple[int, int, int] = (3, 224, 224)  # what it was designed for (baselines: any, recorded)
    weights: AlexNet_Weights | None = None  # published pretrained weights, if any
    preprocess: Callable = PREPROCESS  # photo -> normalised tensor, as its weights expect
    convolutional: bool = True  # False for the baselines: no filters, maps or Grad-CAM to show


# Name -> record. The UI's model chooser and the parametrised tests read these dicts.
MODELS: dict[str, ModelSpec] = {
    "alexnet": ModelSpec(
        _alexnet,
        "torchvision's AlexNet (64-192-384-256-256 filters, 4096-4096 head): the one with ImageNet weights",
        weights=IMAGENET_WEIGHTS,
    ),
    "alexnet2012": ModelSpec(
        _alexnet2012, "the 2012 paper's AlexNet (96-256-384-384-256, LRN, two-GPU groups, 4096-4096 head)"
    ),
    "alexnet_compact": ModelSpec(
        _alexnet_compact, "the lecture's compact AlexNet (48-128-192-192-128 filters, 2048-2048 head)"
    ),
}
# The course's models before convolution; they take any input shape, which their checkpoints record.
BASELINES: dict[str, ModelSpec] = {
    "linear": ModelSpec(_linear_baseline, "a linear classifier on raw pixels", (3, 64, 64), convolutional=False),
    "mlp": ModelSpec(_mlp_baseline, "a one-hidden-layer perceptron on raw pixels", (3, 64, 64), convolutional=False),
}


def spec(name: str) -> ModelSpec:
    """The registry record of ``name``.

    Raises:
        ValueError: unknown name.
    """
    found = MODELS.get(name) or BASELINES.get(name)
    if found is None:
        raise ValueError(f"Unknown model {name!r}; choose one of: {', '.join([*MODELS, *BASELINES])}.")
    return found


def build(
    name: str,
    *,
    num_classes: int = 1000,
    input_shape: tuple[int, int, int] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A freshly initialised model (in training mode, as torch builds them).

    Args:
        input_shape: the baselines' input (default: their registry's); ignored by the AlexNets.
        generator: initialise from this private generator (reproducible, and it leaves torch's
            process-wide generator alone); None uses torch's own initialisation.

    Raises:
        ValueError: unknown name or a class count outside 1-100,000.
    """
    record = spec(name)
    if not isinstance(num_classes, int) or not 1 <= num_classes <= 100_000:
        raise ValueError(f"num_classes must be a whole number from 1 to 100,000, got {num_classes!r}.")
    arguments = (
        (num_classes,)
        if record.convolutional
        else (num_classes, tuple(int(d) for d in input_shape or record.input_shape))
    )
    if generator is None:
        return record.builder(*arguments)
    with torch.device("meta"):  # shapes only: initialised once, below, from the generator
        model = record.builder(*arguments)
    model = model.to_empty(device="cpu")
    initialise(model, generator)
    return model


def initialise(model: nn.Module, generator: torch.Generator) -> None:
    """torch's default initialisation of every convolution and linear layer, drawn from ``generator``:
    Kaiming-uniform weights (a = √5) and biases uniform in ±1/√fan_in, as ``reset_parameters`` does."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif hasattr(module, "reset_parameters"):  # normalisation layers: ones, zeros, fresh statistics
                module.reset_parameters()
