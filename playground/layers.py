"""Layer plumbing: which layers a network has, the network cut at one of them, private copies of it.

Every model here is laid out as torchvision's AlexNet (``features`` -> ``avgpool`` -> flatten ->
``classifier``, see :class:`playground.models.AlexNet`) or is a plain ``nn.Sequential`` (the baselines).
A cut keeps the model's own layer names (``features.3`` stays ``features.3``), so traces, hooks and
state-dict keys read the same on the cut as on the whole network.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

FLATTENED_BEFORE = "classifier"  # AlexNet.forward flattens the pooled maps before this part

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def conv_layers(model: nn.Module) -> list[str]:
    """The dotted names of every 2-D convolution, in order (``features.0``, ``features.3``, …)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


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
