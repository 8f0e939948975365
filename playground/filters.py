"""Looking at learned filters: the conv1 grid, deeper layers in summary, and classic kernels next to them."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from playground import kernels as K
from playground import render


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """(name, layer) for every 2-D convolution, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_conv(model: nn.Module) -> nn.Conv2d:
    layers = conv_layers(model)
    if not layers:
        raise ValueError("This model has no convolutional layer.")
    return layers[0][1]


def _upscale(grid: torch.Tensor, tile_px: int, kernel: int) -> Image.Image:
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(array))
    factor = max(1, tile_px // kernel)
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def conv1_grid(model: nn.Module, *, tile_px: int = 56) -> Image.Image:
    """The first layer's filters as RGB tiles, each stretched to its own full range, nearest-neighbour
    enlarged so every weight is a visible square."""
    return filter_grid(first_conv(model).weight, tile_px=tile_px)


def filter_grid(weights: torch.Tensor, *, tile_px: int = 56) -> Image.Image:
    """(C, 3 or 1, k, k) filter weights as a grid of RGB tiles (see :func:`conv1_grid`)."""
    weights = weights.detach().float().cpu()  # (C, 3, k, k)
    if weights.shape[1] != 3:
        weights = weights.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    per_row = 16 if weights.shape[0] > 64 else 8
    grid = make_grid(weights, nrow=per_row, padding=1, normalize=True, scale_each=True, pad_value=1.0)
    return _upscale(grid, tile_px, weights.shape[-1])


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    name: str
    shape: tuple[int, ...]  # (out, in / groups, kh, kw)
    mean_abs: float
    std: float
    image: Image.Image  # the first filters, each averaged over its input channels, signed colours


def deeper_summary(model: nn.Module, *, show: int = 32, tile_px: int = 40) -> list[LayerSummary]:
    """Every convolution after the first: weight statistics and its first ``show`` filters, each
    averaged over its input channels (blue negative, red positive)."""
    out = []
    lut = torch.from_numpy(render._lut(render.DIVERGING)).float() / 255.0
    for name, layer in conv_layers(model)[1:]:
        weights = layer.weight.detach().float().cpu()
        mean = weights[:show].mean(dim=1)  # (show, k, k)
        bound = mean.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        index = ((mean / bound + 1) * 127.5).round().long().clamp(0, 255)
        tiles = lut[index].permute(0, 3, 1, 2)  # (show, 3, k, k)
        grid = make_grid(tiles, nrow=16, padding=1, pad_value=1.0)
        out.append(
            LayerSummary(
                name=name,
                shape=tuple(weights.shape),
                mean_abs=float(weights.abs().mean()),
                std=float(weights.std()),
                image=_upscale(grid, tile_px, weights.shape[-1]),
            )
        )
    return out


# --- classic versus learned --------------------------------------------------------------------------


class Match(NamedTuple):
    filter_index: int
    similarity: float  # correlation in [-1, 1]; negative: the same shape with the opposite sign


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.flatten(-2).norm(dim=-1)[..., None, None].clamp_min(1e-12)


def _standardise(t: torch.Tensor, *, centre: bool = True) -> torch.Tensor:
    """Zero mean (when ``centre``) and unit length over the last two dimensions."""
    return _unit(t - t.mean(dim=(-2, -1), keepdim=True) if centre else t)


def _is_flat(weights: np.ndarray) -> bool:
    """A kernel with the same weight everywhere (box blur) has no shape left once its mean is removed."""
    weights = np.asarray(weights, dtype=np.float64)
    return bool(np.ptp(weights) <= 1e-9 * max(np.abs(weights).max(), 1e-30))


def classic_template(weights: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A classic kernel blown up to a learned filter's size, zero-mean and unit length (flat kernels keep
    their mean: removing it would leave nothing).

    The blow-up is nearest-neighbour: each weight becomes a block, as in pixel art. Bilinear stretching
    would round every centre-heavy kernel (identity, Gaussian, sharpen, Laplacian) into the same smooth
    bump and give them all the same matches.
    """
    t = torch.tensor(np.asarray(weights, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=size, mode="nearest") if t.shape[-2:] != size else t
    return _standardise(t[0, 0], centre=not _is_flat(weights))


def learned_shapes(model: nn.Module, *, centre: bool = True) -> torch.Tensor:
    """The conv1 filters as gray shapes: averaged over R, G, B (what they do to a gray image),
    zero-mean (when ``centre``) and unit length. (C, k, k)"""
    return _standardise(first_conv(model).weight.detach().float().cpu().mean(dim=1), centre=centre)


def match_classic(model: nn.Module, top_k: int = 3) -> dict[str, list[Match]]:
    """For every kernel in :data:`playground.kernels.KERNELS`, the conv1 filters shaped most like it.

    Shapes are compared fairly: the classic kernel is blown up to the filter's size (each weight a block),
    the filter's colour channels are averaged, both are made zero-mean (brightness offsets do not count) and unit length
    (strength does not count), and the similarity is their correlation. Both polarities count: a filter
    that is the kernel upside down in sign scores -1 and ranks as high as a +1 match. A flat kernel (box
    blur) keeps its mean, since nothing else describes it.

    Returns:
        name -> up to ``top_k`` matches, best (largest absolute similarity) first.
    """
    centred, raw = learned_shapes(model), learned_shapes(model, centre=False)  # (C, k, k) each
    size = tuple(centred.shape[-2:])
    result = {}
    for name, kernel in K.KERNELS.items():
        template = classic_template(kernel.weights, size)
        shapes = raw if _is_flat(kernel.weights) else centred
        similarity = (shapes * template).sum(dim=(-2, -1))  # (C,)
        order = torch.argsort(similarity.abs(), descending=True, stable=True)[:top_k]
        result[name] = [Match(int(i), float(similarity[i])) for i in order]
    return result


@dataclasses.dataclass(frozen=True)
class SideBySide:
    classic: Image.Image  # the classic kernel's response on the photo
    learned: Image.Image  # the learned filter's response (sign-matched)
    difference: Image.Image  # classic minus learned, both standardised
    correlation: float  # how alike the two responses are over the photo, -1..1


def side_by_side(model: nn.Module, network_input: torch.Tensor, kernel_name: str, match: Match) -> SideBySide:
    """Apply a classic kernel and a learned conv1 filter to the same photo at stride 1.

    ``network_input`` is the normalised (1, 3, H, W) tensor the network sees. The classic kernel runs on
    its gray version (the channel mean), the learned filter on all three channels as the network would.
    Both responses are standardised (zero mean, unit spread) so that their shapes can be compared; the
    learned one is flipped when the match has the opposite sign.
    """
    conv = first_conv(model)
    weights = K.kernel_weights(kernel_name)
    gray = network_input[0].mean(dim=0).numpy()
    pad_h, pad_w = weights.shape[0] // 2, weights.shape[1] // 2
    classic = torch.from_numpy(K.convolve(np.pad(gray, ((pad_h, pad_h), (pad_w, pad_w))), weights))
    with torch.no_grad():
        learned = F.conv2d(network_input, conv.weight[match.filter_index : match.filter_index + 1].float(), padding=conv.kernel_size[0] // 2)[0, 0]
    # Even-sized kernels come out one pixel larger; crop both to the common size.
    h, w = min(classic.shape[0], learned.shape[0]), min(classic.shape[1], learned.shape[1])
    classic, learned = _z(classic[:h, :w]), _z(learned[:h, :w]) * (1 if match.similarity >= 0 else -1)
    difference = classic - learned
    correlation = float((classic * learned).mean())
    images = [render.render_response(t.numpy())[0] for t in (classic, learned, difference)]
    return SideBySide(*images, correlation=correlation)


def _z(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean()) / t.std().clamp_min(1e-12)
