"""Layer plumbing: which layers a network has, what the course calls them, the network cut at one of them,
private copies of it.

Every model here is laid out as torchvision's AlexNet (``features`` -> ``avgpool`` -> flatten ->
``classifier``, see :class:`playground.models.AlexNet`) or is a plain ``nn.Sequential`` (the baselines).
A cut keeps the model's own layer names (``features.3`` stays ``features.3``), so traces, hooks and
state-dict keys read the same on the cut as on the whole network.

The course's names (:func:`course_names`) are counted from the network's own structure, in the order its
layers run, so every variant and checkpoint gets them without a table per model:

- the nth ``Conv2d`` is ``conv<n>`` and the nth ``MaxPool2d`` is ``pool<n>`` (pools are counted on their own:
  AlexNet's three are pool1, pool2, pool3);
- the ReLU (tanh, sigmoid), LRN (``norm``) and batch norm (``bn``) after a layer carry its number: ``relu1``,
  ``norm1``, ``bn1`` follow conv1;
- fully connected layers are ``fc6``, ``fc7``, ``fc8`` in an AlexNet (a model with ``features``), as in the
  paper, whose eight layers are five convolutions and three of these; the baselines count theirs from fc1. The
  nth dropout belongs to the nth fully connected layer (``drop6`` is the one beside fc6, before it in
  torchvision's head, after its ReLU in the lecture's);
- a network built without a middle convolution (``drop_conv``) has four, named conv1 … conv4 as they come:
  the structure alone cannot tell which one is missing (in the compact net, without conv3 and without conv4
  are the same network), and its head stays fc6 … fc8.

Layers the course has no name for (``avgpool``) keep torchvision's alone. Where a layer is shown it reads
"conv1 · features.0" (:func:`layer_label`); where one is typed or sent, either name is accepted (:func:`resolve`).
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

from playground.hooks import leaf_modules

FLATTENED_BEFORE = "classifier"  # AlexNet.forward flattens the pooled maps before this part

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def conv_layers(model: nn.Module) -> list[str]:
    """The dotted names of every 2-D convolution, in order (``features.0``, ``features.3``, …)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


# Layers counted on their own, by kind: conv1, conv2, …, pool1, …, fc6, …, drop6, …
COUNTED = {nn.Conv2d: "conv", nn.Linear: "fc", nn.MaxPool2d: "pool", nn.Dropout: "drop"}
# Layers named after the convolution or fully connected layer they follow: relu1, norm1, bn1, tanh6, …
FOLLOWERS = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.LocalResponseNorm: "norm",
    nn.BatchNorm2d: "bn",
}
ALEXNET_FIRST_FC = 6  # the paper's layers 6-8 are fully connected: fc6, fc7, fc8


def course_names(model: nn.Module) -> dict[str, str]:
    """torchvision's name -> the course's (``features.0`` -> ``conv1``), for every layer the course names, in
    the order they run (the rules are in this module's docstring)."""
    first_fc = ALEXNET_FIRST_FC if "features" in dict(model.named_children()) else 1
    counts = {"conv": 0, "pool": 0, "fc": first_fc - 1, "drop": first_fc - 1}
    last = None  # the number of the latest convolution or fully connected layer
    names = {}
    for layer, module in leaf_modules(model):
        counted = next((kind for cls, kind in COUNTED.items() if isinstance(module, cls)), None)
        follower = next((kind for cls, kind in FOLLOWERS.items() if isinstance(module, cls)), None)
        if counted:
            counts[counted] += 1
            name = f"{counted}{counts[counted]}"
            last = counts[counted] if counted in ("conv", "fc") else last
        elif isinstance(module, nn.Flatten):
            name = "flatten"
        elif follower and last is not None:
            name = f"{follower}{last}"
        else:
            continue
        if name not in names.values():  # one name, one layer: resolve must be able to go back
            names[layer] = name
    return names


def layer_label(model: nn.Module, layer: str) -> str:
    """How a layer is shown to a learner: ``"conv1 · features.0"``, or torchvision's name alone (``avgpool``)."""
    course = course_names(model).get(layer)
    return f"{course} · {layer}" if course else layer


def resolve(model: nn.Module, name: str) -> str:
    """torchvision's name of the layer ``name`` means: a course name (``conv1``, any case) or torchvision's own.

    Raises:
        ValueError: a name of no layer of this model (the sentence gives the range of course names).
    """
    text = str(name or "").strip()
    names = course_names(model)
    by_course = {course: layer for layer, course in names.items()}
    modules = dict(model.named_modules())
    if text.lower() in by_course:
        return by_course[text.lower()]
    if text and text in modules:
        return text
    courses = list(names.values())
    span = f"; choose one of {courses[0]} … {courses[-1]} or torchvision's names" if courses else ""
    raise ValueError(f"{name!r} is not one of this model's layers{span}.")


class Trunk(nn.Module):
    """The first parts of a network, run in order under their own names (see :func:`cut_at`)."""

    def __init__(self, parts: dict[str, nn.Module]):
        super().__init__()
        for name, part in parts.items():
            self.add_module(name, part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, part in self.named_children():
            if name == FLATTENED_BEFORE:
                x = torch.flatten(x, 1)  # (B, C * 6 * 6), as AlexNet.forward does
            x = part(x)
        return x


def cut_points(model: nn.Module) -> list[str]:
    """The layers :func:`cut_at` can cut at, in the order they run (``features.0`` … ``classifier.6``)."""
    names = []
    for name, part in model.named_children():
        inner = [f"{name}.{i}" for i, _ in part.named_children()] if isinstance(part, nn.Sequential) else []
        names += inner or [name]
    return names


def cut_at(model: nn.Module, layer: str) -> Trunk:
    """The network up to and including ``layer``, sharing the model's modules (no copy).

    ``layer`` is a name of :func:`cut_points`, or a whole part (``features``). Its output is that layer's
    activation in the whole network; slicing an ``nn.Sequential`` keeps its keys, so every name stays.

    Raises:
        ValueError: a layer the network cannot be cut at.
    """
    part_name, _, inner = layer.partition(".")
    parts = dict(model.named_children())
    part = parts.get(part_name)
    inside = [name for name, _ in part.named_children()] if isinstance(part, nn.Sequential) else []
    if part is None or (inner and inner not in inside):
        points = cut_points(model)
        span = f"; choose one from {points[0]} to {points[-1]}" if points else ""
        raise ValueError(f"{layer!r} is not one of this model's layers{span}.")
    kept = {}
    for name, module in parts.items():
        if name == part_name:
            kept[name] = module[: inside.index(inner) + 1] if inner else module
            break
        kept[name] = module
    return Trunk(kept)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A private deep copy in eval mode whose parameters need no gradient; ``module`` is untouched.

    Hooks on ``module`` are copied with it: where other users may hook it, copy under its exclusive lock.
    """
    twin = copy.deepcopy(module).eval()
    for parameter in twin.parameters():
        parameter.requires_grad_(False)  # gradients flow to the input only
    return twin


def without_inplace(module: ModuleT) -> ModuleT:
    """Turn off every in-place operation of ``module`` (``ReLU(inplace=True)``, …) and return it.

    Hooks and autograd then see each activation as it was computed, not overwritten by the next layer.
    Call it on a private copy (:func:`frozen_copy`) or a model of one's own: the shared ones stay in place.
    """
    for inner in module.modules():
        if getattr(inner, "inplace", False):
            inner.inplace = False
    return module
