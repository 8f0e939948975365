"""The three AlexNets and the lecture's baselines, with one registry record per model.

All AlexNet variants share torchvision's layout and layer names (``features.0`` … ``classifier.6``), so
weights, hooks and the UI's layer names work the same on each:

- ``alexnet``: torchvision's single-GPU AlexNet, 64-192-384-256-256 filters (the ImageNet weights).
- ``alexnet2012``: the 2012 paper's net, 96-256-384-384-256 filters, local response normalisation
  after the first two convolutions, conv2/4/5 split into two groups as on the paper's two GPUs.
- ``alexnet_compact``: the lecture's halved net, 48-128-192-192-128 filters and 2048-unit layers.

Each can be built with the paper's ablations (:class:`Options`: tanh or sigmoid for ReLU, LRN on or off,
plain instead of overlapping pooling, dropout, batch norm, the paper's initialisation, a middle conv
removed); without options each is exactly the published network, with the same layer names and weights.

Where weights come from (ImageNet, users' files) is :mod:`playground.weights.checkpoints`' business.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import torch
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


@dataclasses.dataclass(frozen=True)
class Layout:
    """One AlexNet variant's shape; :func:`_assemble` lays it out in torchvision's order and names."""

    convs: tuple[tuple[int, int, int, int, int], ...]  # conv1..conv5: (out channels, kernel, stride, padding, groups)
    hidden: int  # fc6 and fc7 units
    lrn: bool  # local response normalisation after conv1 and conv2 (the paper's net)
    head: str  # "dropout-first" (torchvision: Dropout, Linear, ReLU) or "dropout-last" (the lecture's order)


TORCHVISION = Layout(((64, 11, 4, 2, 1), (192, 5, 1, 2, 1), (384, 3, 1, 1, 1), (256, 3, 1, 1, 1), (256, 3, 1, 1, 1)),
                     4096, lrn=False, head="dropout-first")  # fmt: skip
# The paper's: conv2, conv4 and conv5 in two groups, each GPU seeing only its own half of the maps; conv3
# is the one layer that talks across GPUs.
PAPER = Layout(((96, 11, 4, 2, 1), (256, 5, 1, 2, 2), (384, 3, 1, 1, 1), (384, 3, 1, 1, 2), (256, 3, 1, 1, 2)),
               4096, lrn=True, head="dropout-first")  # fmt: skip
LECTURE = Layout(((48, 11, 4, 2, 1), (128, 5, 1, 2, 1), (192, 3, 1, 1, 1), (192, 3, 1, 1, 1), (128, 3, 1, 1, 1)),
                 2048, lrn=False, head="dropout-last")  # fmt: skip
POOLED = (1, 2, 5)  # max pooling follows conv1, conv2 and conv5


@dataclasses.dataclass(frozen=True)
class Options:
    """What an ablation changes; the defaults build each variant exactly as published (and as saved before)."""

    activation: str = "relu"  # "relu", "tanh" or "sigmoid": every activation, convolutional and dense
    lrn: bool | None = None  # LRN after conv1 and conv2; None: the variant's own choice (the paper's net: yes)
    pooling: str = "overlapping"  # "overlapping" (3 x 3 windows, stride 2) or "plain" (2 x 2, stride 2)
    dropout: float = 0.5  # probability in the two dropout layers of the head (0: none)
    batch_norm: bool = False  # BatchNorm2d after every convolution (before its activation)
    init: str = "default"  # "default" (torch's) or "paper": N(0, 0.01) weights, biases 1 in conv2/4/5, fc6, fc7
    drop_conv: int | None = None  # remove conv2, conv3 or conv4 (counted from 1), with its activation

    def __post_init__(self):
        problems = []
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation is one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        if self.lrn not in (None, True, False):
            problems.append(f"lrn is None, True or False, not {self.lrn!r}")
        if self.pooling not in ("overlapping", "plain"):
            problems.append(f"pooling is 'overlapping' or 'plain', not {self.pooling!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            problems.append(f"dropout is a probability from 0 to below 1, not {self.dropout!r}")
        if self.batch_norm not in (True, False):
            problems.append(f"batch_norm is True or False, not {self.batch_norm!r}")
        if self.init not in ("default", "paper"):
            problems.append(f"init is 'default' or 'paper', not {self.init!r}")
        if self.drop_conv not in (None, 2, 3, 4) or isinstance(self.drop_conv, bool):
            problems.append(f"drop_conv removes conv 2, 3 or 4 (or None), not {self.drop_conv!r}")
        if problems:
            raise ValueError("Model options: " + "; ".join(problems) + ".")

    def changed(self) -> dict:
        """The options that differ from the defaults (what a checkpoint records and a label shows)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def _lrn() -> nn.Module:
    # The paper: b = a / (k + alpha * sum of a^2 over n neighbouring channels)^beta with k=2, n=5,
    # alpha=1e-4, beta=0.75. torch's LocalResponseNorm divides alpha by n, so it gets alpha * n.
    return nn.LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)


class AlexNet(nn.Module):
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


def _assemble(layout: Layout, num_classes: int, options: Options) -> AlexNet:
    """Each kept conv, then [BatchNorm], activation, [LRN after conv1/conv2], [max pooling after conv1/2/5].

    A removed conv takes its activation and LRN with it; its pooling stays, so every later map keeps its
    size and the next conv simply takes the previous one's channels.
    """
    activation = ACTIVATIONS[options.activation]
    lrn = layout.lrn if options.lrn is None else options.lrn
    window = 3 if options.pooling == "overlapping" else 2  # 3 x 3 windows at stride 2 overlap by one pixel
    layers, channels = [], 3
    for number, (out, kernel, stride, padding, groups) in enumerate(layout.convs, start=1):
        if number != options.drop_conv:
            layers.append(nn.Conv2d(channels, out, kernel, stride=stride, padding=padding, groups=groups))
            layers += [nn.BatchNorm2d(out)] if options.batch_norm else []
            layers.append(activation())
            layers += [_lrn()] if lrn and number <= 2 else []
            channels = out
        layers += [nn.MaxPool2d(kernel_size=window, stride=2)] if number in POOLED else []
    fc6 = nn.Linear(channels * 6 * 6, layout.hidden)
    fc7 = nn.Linear(layout.hidden, layout.hidden)
    if layout.head == "dropout-first":
        head = [nn.Dropout(options.dropout), fc6, activation(), nn.Dropout(options.dropout), fc7, activation()]
    else:
        head = [fc6, activation(), nn.Dropout(options.dropout), fc7, activation(), nn.Dropout(options.dropout)]
    return AlexNet(nn.Sequential(*layers), nn.Sequential(*head, nn.Linear(layout.hidden, num_classes)))


def _alexnet(num_classes: int, options: Options = Options()) -> nn.Module:
    return _assemble(TORCHVISION, num_classes, options)


def _alexnet2012(num_classes: int, options: Options = Options()) -> nn.Module:
    return _assemble(PAPER, num_classes, options)


def _alexnet_compact(num_classes: int, options: Options = Options()) -> nn.Module:
    return _assemble(LECTURE, num_classes, options)


def paper_initialise(model: nn.Module, options: Options, generator: torch.Generator | None = None) -> None:
    """The paper's initialisation: every weight from N(0, 0.01); biases 1 in conv2, conv4, conv5 and the
    hidden fully connected layers (so their ReLUs start with positive inputs), 0 elsewhere."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    numbers = [n for n in range(1, 6) if n != options.drop_conv]  # a removed conv keeps the others' numbers
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    ones = {id(c) for c, n in zip(convs, numbers) if n in (2, 4, 5)} | {id(m) for m in linears[:-1]}
    with torch.no_grad():
        for layer in convs + linears:
            nn.init.normal_(layer.weight, 0.0, 0.01, generator=generator)
            nn.init.constant_(layer.bias, 1.0 if id(layer) in ones else 0.0)


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
    **options,
) -> nn.Module:
    """A freshly initialised model (in training mode, as torch builds them).

    Args:
        input_shape: the baselines' input (default: their registry's); ignored by the AlexNets.
        generator: initialise from this private generator (reproducible, and it leaves torch's
            process-wide generator alone); None uses torch's own initialisation.
        options: the AlexNets' ablations, fields of :class:`Options` (``activation="tanh"``, ``lrn=False``,
            ``pooling="plain"``, ``dropout=0.0``, ``batch_norm=True``, ``init="paper"``, ``drop_conv=3``);
            without any, each variant is built exactly as published.

    Raises:
        ValueError: unknown name, a class count outside 1-100,000, or options that do not exist, have
            impossible values, or are given to a baseline.
    """
    record = spec(name)
    if not isinstance(num_classes, int) or not 1 <= num_classes <= 100_000:
        raise ValueError(f"num_classes must be a whole number from 1 to 100,000, got {num_classes!r}.")
    chosen = parse_options(options)
    if record.convolutional:
        arguments = (num_classes, chosen)
    elif chosen.changed():
        raise ValueError(f"The {name} baseline has no convolutional layers: the AlexNet options do not apply to it.")
    else:
        arguments = (num_classes, tuple(int(d) for d in input_shape or record.input_shape))
    if generator is None:
        model = record.builder(*arguments)
    else:
        with torch.device("meta"):  # shapes only: initialised once, below, from the generator
            model = record.builder(*arguments)
        model = model.to_empty(device="cpu")
        initialise(model, generator)
    if record.convolutional and chosen.init == "paper":
        paper_initialise(model, chosen, generator)
    return model


def smallest_input(name: str, **options) -> int:
    """The smallest square image (in pixels) an AlexNet variant can take: smaller ones shrink to nothing
    before its last pooling layer. Found by shape arithmetic alone, on the meta device."""
    return _smallest_input(name, tuple(sorted(parse_options(options).changed().items())))


@functools.lru_cache(maxsize=64)  # a few variants times a few options: the same answer every time
def _smallest_input(name: str, options: tuple) -> int:
    options = dict(options)
    low, high = 1, 512
    while low < high:
        middle = (low + high) // 2
        if _fits(name, middle, options):
            high = middle
        else:
            low = middle + 1
    return low


def _fits(name: str, size: int, options: dict) -> bool:
    with torch.device("meta"):
        try:
            build(name, num_classes=1, **options).eval().features(torch.empty(2, 3, size, size))
        except RuntimeError:  # "Output size is too small"
            return False
    return True


def parse_options(options: dict) -> Options:
    """:class:`Options` from keyword values, with a sentence for a name that is not one.

    Raises:
        ValueError: an unknown option or an impossible value.
    """
    known = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"Unknown model option {', '.join(unknown)}; the options are: {', '.join(sorted(known))}.")
    return Options(**options)


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
