"""Why did the network say that? Captum's attribution methods behind one verb, ``attribute``.

Every method maps ``(model, x, target) -> Attribution`` whose ``.values`` has the input's (C, H, W)
shape (layer methods are upsampled to the input). Methods work on any image classifier ``nn.Module``.

torchvision's AlexNet uses ``ReLU(inplace=True)``. DeepLift, Guided Backprop and Grad-CAM hook the
activations and need the values they saw left intact; older Captum releases failed or silently erred on
in-place ReLUs (0.9 copes in the cases our tests cover). And Captum's hooks sit on the module itself, so
on the shared model they would also reach other users' passes through it. So attributions run on a
private copy with every in-place flag turned off, one at a time per copy; the shared model is never
touched. The copy is rebuilt when the model's weights change, and every forward pass or copy of it
happens under its lock.

SmoothGrad and GradientShap draw their random samples from a private generator seeded by a ``seed``
option, so the same photo and settings always give the same map.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from scipy.stats import spearmanr
from torch import nn

from playground.config import get_limits
from playground.hooks import model_lock, weights_token
from playground.layers import conv_layers, frozen_copy, without_inplace


@dataclasses.dataclass(frozen=True)
class Attribution:
    method: str
    values: torch.Tensor  # (C, H, W), same shape as the input image
    target: int  # the class explained
    seconds: float  # server time it took
    delta: float | None = None  # convergence delta: Integrated Gradients' and DeepLift's sum, GradientShap's mean
    facts: dict = dataclasses.field(default_factory=dict)  # method settings that were used


@dataclasses.dataclass(frozen=True)
class Method:
    label: str
    description: str  # one line for the learner
    fn: Callable[..., tuple[torch.Tensor, float | None, dict]]
    gradient_based: bool = True  # the randomisation sanity check applies
    hooks: bool = False  # Captum puts hooks on the model: it must have the private copy to itself


# --- model preparation --------------------------------------------------------------------------------

_copies: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()
_copies_guard = threading.Lock()


def explainable_copy(model: nn.Module) -> nn.Module:
    """A cached private copy of ``model`` in eval mode with no in-place operations, rebuilt when its weights change.

    Captum's hook-based methods modify the gradients flowing through activations; doing that on a
    separate copy keeps the shared model (and other users' forward passes) untouched. Parameters do not
    need gradients: every method differentiates with respect to the input only.
    """
    with _copies_guard:
        fingerprint = weights_token(model)
        cached = _copies.get(model)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        with model_lock(model).exclusive():  # nobody's hooks are on the model while it is copied
            twin = without_inplace(frozen_copy(model))  # gradients flow to the input only
        _copies[model] = (fingerprint, twin)
        return twin


@contextlib.contextmanager
def _locked_copy(model: nn.Module, *, exclusive: bool = False) -> Iterator[nn.Module]:
    """The current private copy of ``model``, held under its lock for the block: shared by methods that put
    no hooks on it (many users' saliency maps at once), exclusively by those that do.

    Captum's hooks live on the copy, so any forward pass through it (or copy of it) made while another
    user's explanation runs there would pick up their hooks. Never hold it across a generator's ``yield``:
    the UI may resume the generator on another thread, which cannot release this one's lock.
    """
    twin = explainable_copy(model)
    lock = model_lock(twin)
    with lock.exclusive() if exclusive else lock.shared():
        yield twin


def last_conv_layer(model: nn.Module) -> str:
    """The name of the model's last convolution, Grad-CAM's default layer.

    Raises:
        ValueError: a model without one.
    """
    names = conv_layers(model)
    if not names:
        raise ValueError("Grad-CAM needs a convolutional layer, and this model has none.")
    return names[-1]


def _layer(model: nn.Module, name: str | None) -> nn.Module:
    name = name or last_conv_layer(model)
    modules = dict(model.named_modules())
    if name not in modules or not isinstance(modules[name], nn.Conv2d):
        raise ValueError(
            f"{name!r} is not a convolutional layer of this model; choose one of {', '.join(conv_layers(model))}."
        )
    return modules[name]


def _black(x: torch.Tensor, options: dict) -> torch.Tensor:
    """The baseline: an all-black photo in the model's input space (``black`` option: its value there)."""
    black = options.get("black")
    if black is None:
        return torch.zeros_like(x)
    return torch.as_tensor(black, dtype=x.dtype).view(1, -1, 1, 1).expand_as(x).clone()


# --- the methods --------------------------------------------------------------------------------------


def _saliency(model, x, target, **options):
    return Saliency(model).attribute(x, target=target, abs=False), None, {}


def _input_x_gradient(model, x, target, **options):
    return InputXGradient(model).attribute(x, target=target), None, {}


def _integrated_gradients(model, x, target, *, n_steps: int = 32, internal_batch_size: int = 16, **options):
    limit = get_limits().max_ig_steps
    if not 1 <= int(n_steps) <= limit:
        raise ValueError(f"Integrated Gradients takes 1 to {limit} steps, not {n_steps}.")
    values, delta = IntegratedGradients(model).attribute(
        x,
        baselines=_black(x, options),
        target=target,
        n_steps=int(n_steps),
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return values, float(delta.abs().sum()), {"n_steps": int(n_steps), "baseline": "black image"}


def _smoothgrad(model, x, target, *, nt_samples: int = 16, noise: float = 0.15, seed: int = 0, **options):
    spread = float(noise * (x.max() - x.min()).detach())  # noise level relative to the input's range
    generator = torch.Generator().manual_seed(int(seed))
    values = _seeded_smoothgrad(model, x, target, n_samples=nt_samples, stdevs=spread, generator=generator)
    return values, None, {"samples": nt_samples, "noise": f"{noise:.0%} of the input range", "seed": int(seed)}


def _gradient_shap(model, x, target, *, n_samples: int = 16, seed: int = 0, **options):
    generator = torch.Generator().manual_seed(int(seed))
    black = _black(x, options)
    baselines = torch.cat([black, black + 0.5 * _normal(x.shape, generator, x)])  # the distribution baselines come from
    values, deltas = _seeded_gradient_shap(
        model, x, target, baselines, n_samples=n_samples, stdevs=0.09, generator=generator
    )
    return values, float(deltas.abs().mean()), {"samples": n_samples, "seed": int(seed)}


# Captum's NoiseTunnel draws its noise with torch.normal, and GradientShap its baselines and path points with
# np.random: the process-wide generators that every user and thread of the server shares. Unseeded, the same
# photo gives a different map each time; seeding them would race with other requests and reset everyone's
# random numbers. So these two draw their samples from the caller's generator and hand Captum's Saliency
# the batch: the same computation as Captum's own.


def _seeded_smoothgrad(model, x, target, *, n_samples: int, stdevs: float, generator: torch.Generator) -> torch.Tensor:
    """``NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", ...)``: the mean gradient over noisy copies."""
    noisy = x.detach() + stdevs * _normal((n_samples, *x.shape[1:]), generator, x)  # (N, C, H, W)
    return _gradients(model, noisy, target).mean(dim=0, keepdim=True)


def _seeded_gradient_shap(model, x, target, baselines, *, n_samples: int, stdevs: float, generator: torch.Generator):
    """``GradientShap(model).attribute(x, baselines, n_samples, stdevs, target, return_convergence_delta=True)``.

    Each sample draws a baseline b from ``baselines`` (B, C, H, W), a noisy copy x + e of the photo and a point
    b + a (x + e - b) on the path between them, a ~ U(0, 1); its attribution is (x + e - b) times the gradient
    there. Returns the mean attribution (1, C, H, W) and, as Captum does, each sample's convergence delta
    (N,): its attribution's sum minus its own score difference f(x + e) - f(b).
    """
    starts = baselines.detach()[torch.randint(len(baselines), (n_samples,), generator=generator)]  # (N, C, H, W)
    ends = x.detach() + stdevs * _normal(starts.shape, generator, x)
    alphas = torch.rand(n_samples, generator=generator).to(x).view(-1, 1, 1, 1)
    attributions = (ends - starts) * _gradients(model, starts + alphas * (ends - starts), target)
    with torch.no_grad():
        gains = _scores(model, ends, target) - _scores(model, starts, target)
    return attributions.mean(dim=0, keepdim=True), attributions.flatten(1).sum(dim=1) - gains


def _normal(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    # Drawn on the CPU and moved: a seed gives the same numbers on any device.
    return torch.randn(shape, generator=generator).to(like)


def _gradients(model, points: torch.Tensor, target: int, batch_size: int = 16) -> torch.Tensor:
    """Captum's Saliency, signed, for each of ``points`` (N, C, H, W), ``batch_size`` at a time."""
    return torch.cat([Saliency(model).attribute(batch, target=target, abs=False) for batch in points.split(batch_size)])


def _scores(model, points: torch.Tensor, target: int, batch_size: int = 16) -> torch.Tensor:
    return torch.cat([model(batch)[:, target] for batch in points.split(batch_size)])  # (N,)


def _deeplift(model, x, target, **options):
    values, delta = DeepLift(model).attribute(
        x, baselines=_black(x, options), target=target, return_convergence_delta=True
    )
    return values, float(delta.abs().sum()), {"baseline": "black image"}


def _guided_backprop(model, x, target, **options):
    return GuidedBackprop(model).attribute(x, target=target), None, {}


def _gradcam(model, x, target, *, layer: str | None = None, **options):
    chosen = layer or last_conv_layer(model)
    cam = LayerGradCam(model, _layer(model, chosen)).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)
    return cam.expand(-1, x.shape[1], -1, -1), None, {"layer": chosen}


def _guided_gradcam(model, x, target, *, layer: str | None = None, **options):
    chosen = layer or last_conv_layer(model)
    values = GuidedGradCam(model, _layer(model, chosen)).attribute(x, target=target)
    return values, None, {"layer": chosen}


def _occlusion(model, x, target, *, window: int | None = None, **options):
    size = window or max(8, x.shape[-1] // 7)  # 32 px on a 224 image
    stride = max(1, size // 2)
    values = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(x.shape[1], size, size),
        strides=(x.shape[1], stride, stride),
        baselines=_black(x, options),
        target=target,
        perturbations_per_eval=32,
    )
    return values, None, {"window": f"{size} × {size}", "stride": stride}


# Name -> method. The Explain tab's choices and the parametrised tests read this dict.
METHODS: dict[str, Method] = {
    "saliency": Method(
        "Saliency", "How much each pixel's nudge changes the class score (the raw gradient).", _saliency
    ),
    "input_x_gradient": Method(
        "Input × Gradient", "The gradient times the pixel: sensitivity weighted by what is there.", _input_x_gradient
    ),
    "integrated_gradients": Method(
        "Integrated Gradients",
        "Gradients averaged along a path from a black image to the photo; the parts add up to the score difference.",
        _integrated_gradients,
    ),
    "smoothgrad": Method(
        "SmoothGrad", "Saliency averaged over noisy copies of the photo, which removes speckle.", _smoothgrad
    ),
    "gradient_shap": Method(
        "GradientShap",
        "Like Integrated Gradients, but each sample takes a random baseline, a noisy photo and one random point between them; "
        "averaged, they approximate SHAP values.",
        _gradient_shap,
    ),
    "deeplift": Method(
        "DeepLift",
        "Compares every neuron with its value on a black image and shares out the difference.",
        _deeplift,
        hooks=True,
    ),
    "guided_backprop": Method(
        "Guided Backprop",
        "Gradients with every negative signal stopped at each ReLU: crisp edges.",
        _guided_backprop,
        hooks=True,
    ),
    "gradcam": Method(
        "Grad-CAM",
        "Which places in a convolutional layer's maps push the class up, upsampled to the photo.",
        _gradcam,
        hooks=True,
    ),
    "guided_gradcam": Method(
        "Guided Grad-CAM", "Grad-CAM's places times Guided Backprop's detail.", _guided_gradcam, hooks=True
    ),
    "occlusion": Method(
        "Occlusion",
        "Cover one square at a time with black and see how much the class score drops.",
        _occlusion,
        gradient_based=False,
    ),
}


def resolve_target(model: nn.Module, x: torch.Tensor, target, classes=None, *, logits=None) -> int:
    """The class index to explain: the top-1 prediction (None), an index, or a class name.

    ``logits``: the model's output for ``x`` when the caller has it already (saves a forward pass).
    """
    if isinstance(target, str) and target and not target.lstrip("-").isdigit():
        names = list(classes or [])
        if target not in names:
            raise ValueError(f"Unknown class {target!r}.")
        return names.index(target)
    if logits is None:
        with torch.no_grad():
            logits = model(x)
    if target is None or target == "":
        return int(logits.argmax(dim=1)[0])
    index = int(target)
    outputs = logits.shape[1]
    if not 0 <= index < outputs:
        raise ValueError(f"Class index {index} is out of range: this model has classes 0 to {outputs - 1}.")
    return index


def attribute(
    model: nn.Module, x: torch.Tensor, method: str, target=None, *, classes=None, logits=None, **options
) -> Attribution:
    """Explain ``model``'s score for ``target`` on the (1, C, H, W) input ``x`` with ``method``.

    Args:
        method: a key of :data:`METHODS`.
        target: None (the top-1 class), a class index, or a class name found in ``classes``.
        logits: ``model(x)``, when the caller has it already (the top-1 class is then found without a pass).
        options: method settings, e.g. ``n_steps`` (Integrated Gradients, at most 200), ``layer``
            (Grad-CAM; default the last convolution), ``black`` (the input-space value of a black pixel per
            channel, used as the baseline; default zeros).

    Raises:
        ValueError: unknown method, class or layer, or an option out of range.
    """
    _check_request(method, x)
    # Captum's hooks live on the copy: a method that sets them has it to itself, the others share it.
    with _locked_copy(model, exclusive=METHODS[method].hooks) as twin:
        return _run(twin, x, method, resolve_target(twin, x, target, classes, logits=logits), options)


def _check_request(method: str, x: torch.Tensor) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"Explain one image at a time: x must be (1, C, H, W), got {tuple(x.shape)}.")


def _run(twin: nn.Module, x: torch.Tensor, method: str, index: int, options: dict) -> Attribution:
    """One method on a model that is already safe to hook (no in-place operations)."""
    start = time.perf_counter()
    values, delta, facts = METHODS[method].fn(twin, x.detach().clone().requires_grad_(True), index, **options)
    seconds = time.perf_counter() - start
    values = values.detach()[0].float()
    if not torch.isfinite(values).all():
        values = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        facts = {**facts, "warning": "some values were not finite and are shown as 0"}
    return Attribution(method, values, index, seconds, delta, facts)


# --- comparing and checking maps -----------------------------------------------------------------------


def importance(values: torch.Tensor) -> np.ndarray:
    """A map's per-pixel importance: the absolute values summed over colour channels. (H, W)"""
    return values.abs().sum(dim=0).numpy()


def agreement(a: torch.Tensor, b: torch.Tensor, *, size: int = 56) -> float:
    """Spearman rank correlation of two maps' absolute importance, pooled to ``size`` × ``size``.

    Rank correlation asks "do they order the pixels the same way?", which does not depend on each
    method's scale; pooling first compares regions rather than single noisy pixels.
    """
    pooled = [
        F.adaptive_avg_pool2d(torch.from_numpy(importance(v))[None, None], size).flatten().numpy() for v in (a, b)
    ]
    if np.ptp(pooled[0]) == 0 or np.ptp(pooled[1]) == 0:
        return 0.0  # a constant map orders nothing
    return float(spearmanr(pooled[0], pooled[1]).statistic)


def agreement_matrix(maps: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray]:
    names = list(maps)
    matrix = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            matrix[i, j] = matrix[j, i] = agreement(maps[names[i]], maps[names[j]])
    return names, matrix


def compare(model, x, target=None, *, classes=None, methods=None, **options) -> Iterator[Attribution]:
    """Run every method (or ``methods``) on the same photo and class, yielding each map as it is ready."""
    with _locked_copy(model) as twin:  # released before the first yield (see _locked_copy)
        index = resolve_target(twin, x, target, classes)
    for name in methods or METHODS:
        yield attribute(model, x, name, index, classes=classes, **options)


@dataclasses.dataclass(frozen=True)
class SanityStep:
    randomised: str  # the last layer re-initialised so far ("" for the trained model)
    values: torch.Tensor
    similarity: float  # rank correlation with the trained model's map


def sanity_check(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "saliency",
    target=None,
    *,
    classes=None,
    seed: int = 0,
    stages: int = 8,
    **options,
) -> Iterator[SanityStep]:
    """Adebayo et al. (2018), cascading randomisation: re-initialise the weighted layers from the top
    down, in up to ``stages`` steps, and yield how much the map still resembles the trained model's.

    A map that barely changes while the network it claims to explain is destroyed was never about the
    network: it shows the photo (its edges), not what the model learned.
    """
    _check_request(method, x)
    if not METHODS[method].gradient_based:
        raise ValueError("The sanity check applies to gradient-based methods; occlusion only runs the model forward.")
    # The trained map and the copy to break come from the same weights; nobody's hooks are on it meanwhile.
    with _locked_copy(model, exclusive=METHODS[method].hooks) as twin:
        index = resolve_target(twin, x, target, classes)
        original = _run(twin, x, method, index, options).values
        broken = copy.deepcopy(twin)  # in-place already off; randomised step by step
    yield SanityStep("", original, 1.0)
    generator = torch.Generator().manual_seed(seed)
    layers = [(name, m) for name, m in broken.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][::-1]
    groups = np.array_split(np.arange(len(layers)), min(stages, len(layers)))  # AlexNet: one layer a step
    for group in groups:
        for i in group:
            with torch.no_grad():
                for parameter in layers[i][1].parameters():
                    fan_in = parameter[0].numel() if parameter.dim() > 1 else parameter.numel()
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) / np.sqrt(max(fan_in, 1)))
        values = _run(broken, x, method, index, options).values
        yield SanityStep(layers[group[-1]][0], values, agreement(original, values))


# --- covering part of the photo ------------------------------------------------------------------------


def cover(photo, mask: np.ndarray, fill=(124, 116, 104)):
    """``photo`` with the pixels under ``mask`` (H, W booleans, any size: it is resized) painted ``fill``.

    The default fill is the ImageNet mean colour, which the network's normalisation turns into zeros:
    as close to "nothing there" as a pixel can say.
    """
    from PIL import Image

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError("The mask must be a 2-D grid of covered / not covered.")
    if mask.shape != (photo.height, photo.width):
        mask = (
            np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(photo.size, Image.Resampling.NEAREST)) > 127
        )
    pixels = np.array(photo.convert("RGB"))
    pixels[mask] = fill
    return Image.fromarray(pixels), float(mask.mean())
