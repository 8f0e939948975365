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
from playground.layers import conv_layers


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first 2-D convolution (conv1).

    Raises:
        ValueError: a model without one.
    """
    names = conv_layers(model)
    if not names:
        raise ValueError("This model has no convolutional layer.")
    return model.get_submodule(names[0])


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
    colours = torch.from_numpy(render.colour_table(render.DIVERGING)).float() / 255.0
    for name in conv_layers(model)[1:]:
        weights = model.get_submodule(name).weight.detach().float().cpu()
        mean = weights[:show].mean(dim=1)  # (show, k, k)
        bound = mean.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        index = ((mean / bound + 1) * 127.5).round().long().clamp(0, 255)
        tiles = colours[index].permute(0, 3, 1, 2)  # (show, 3, k, k)
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


FITTED = 0  # Match.scale when no centred placement exists and the kernel was stretched to the filter's size


class Match(NamedTuple):
    filter_index: int
    similarity: float  # correlation in [-1, 1]; negative: the same shape with the opposite sign
    scale: int = 1  # the block size the kernel matched at: 1 = its own size, 3 = each weight a 3×3 block; FITTED


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.flatten(-2).norm(dim=-1)[..., None, None].clamp_min(1e-12)


def _standardise(t: torch.Tensor, *, centre: bool = True) -> torch.Tensor:
    """Zero mean (when ``centre``) and unit length over the last two dimensions."""
    return _unit(t - t.mean(dim=(-2, -1), keepdim=True) if centre else t)


def _is_flat(weights: np.ndarray) -> bool:
    """A kernel with the same weight everywhere (box blur) has no shape left once its mean is removed."""
    weights = np.asarray(weights, dtype=np.float64)
    return bool(np.ptp(weights) <= 1e-9 * max(np.abs(weights).max(), 1e-30))


def centred_scales(kernel_shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, ...]:
    """The block sizes at which a kernel sits exactly in the middle of a filter of ``size``.

    At scale s every weight becomes an s × s block; the blown-up kernel must fit, and the margin left
    over on each axis must be even so that it splits equally on both sides (3 × 3 in 11 × 11: 1 and 3;
    5 × 5 in 11 × 11: 1 only). Empty when none exists (a kernel larger than the filter, or an even
    kernel in an odd filter).
    """
    (kh, kw), (h, w) = kernel_shape, size
    largest = min(h // kh, w // kw)
    return tuple(s for s in range(1, largest + 1) if (h - kh * s) % 2 == 0 and (w - kw * s) % 2 == 0)


def scaled_kernel(weights: np.ndarray, scale: int, size: tuple[int, int]) -> np.ndarray:
    """The classic kernel as it is compared at ``scale``: each weight an s × s block, or, for
    :data:`FITTED`, stretched to ``size``. Returns float32 weights (no padding around them)."""
    weights = np.asarray(weights, dtype=np.float32)
    if scale != FITTED:
        return weights.repeat(scale, axis=0).repeat(scale, axis=1)
    # "nearest-exact" samples each output pixel's centre, so the blocks come out symmetric about the
    # middle (4-3-4 for 3 in 11) where plain "nearest" gives 4-4-3, shifted by half a weight.
    t = F.interpolate(torch.from_numpy(weights)[None, None], size=size, mode="nearest-exact")
    return t[0, 0].numpy()


def classic_template(weights: np.ndarray, size: tuple[int, int], scale: int) -> torch.Tensor:
    """A classic kernel placed in the middle of a zero filter of ``size`` at ``scale`` (see
    :func:`centred_scales`), zero-mean and unit length. Flat kernels keep their mean (and are compared
    with the filters' raw shapes): a box blur is all positive, and without its mean it would become a
    centre-minus-surround shape, the same as identity's at 3×.

    Blocks, not bilinear stretching: that would round every centre-heavy kernel (identity, Gaussian,
    sharpen, Laplacian) into the same smooth bump and give them all the same matches.
    """
    blown = torch.from_numpy(scaled_kernel(weights, scale, size))
    (h, w), (bh, bw) = size, blown.shape
    if bh > h or bw > w:
        raise ValueError(f"A {bh}×{bw} kernel does not fit in a {h}×{w} filter; use scale {FITTED} to stretch it.")
    top, left = (h - bh) // 2, (w - bw) // 2
    t = torch.zeros(size)
    t[top : top + bh, left : left + bw] = blown
    return _standardise(t, centre=not _is_flat(weights))


def learned_shapes(model: nn.Module, *, centre: bool = True) -> torch.Tensor:
    """The conv1 filters as gray shapes: averaged over R, G, B (what they do to a gray image),
    zero-mean (when ``centre``) and unit length. (C, k, k)"""
    return _standardise(first_conv(model).weight.detach().float().cpu().mean(dim=1), centre=centre)


def match_kernel(model: nn.Module, weights: np.ndarray, top_k: int = 3) -> list[Match]:
    """The conv1 filters shaped most like one kernel, best first (see :func:`match_classic`)."""
    return _rank(learned_shapes(model, centre=not _is_flat(weights)), weights, top_k)


def _rank(shapes: torch.Tensor, weights: np.ndarray, top_k: int) -> list[Match]:
    """Score (C, k, k) standardised filter ``shapes`` against ``weights`` at every centred scale, keep
    each filter's best scale, and return the ``top_k`` largest absolute similarities.

    Where no centred scale exists (a kernel larger than the filter, or an even kernel in an odd one),
    the kernel is stretched to the filter's size instead (scale :data:`FITTED`): not exactly centred,
    but the nearest thing there is, and better than matching nothing.
    """
    size = tuple(shapes.shape[-2:])
    scales = centred_scales(np.shape(weights), size) or (FITTED,)
    templates = torch.stack([classic_template(weights, size, s) for s in scales])  # (S, k, k)
    similarity = torch.einsum("chw,shw->cs", shapes, templates)  # (C, S)
    best = similarity.abs().argmax(dim=1)  # (C,) the smallest scale on a tie
    similarity = similarity.gather(1, best[:, None])[:, 0]  # (C,)
    order = torch.argsort(similarity.abs(), descending=True, stable=True)[:top_k]
    return [Match(int(i), float(similarity[i]), scales[int(best[i])]) for i in order]


def match_classic(model: nn.Module, top_k: int = 3) -> dict[str, list[Match]]:
    """For every kernel in :data:`playground.kernels.KERNELS`, the conv1 filters shaped most like it.

    Shapes are compared fairly: the classic kernel is placed in the middle of an otherwise-zero filter,
    at its own size and blown up (each weight an s × s block) wherever that stays exactly centred; the
    filter's colour channels are averaged; both are made zero-mean (brightness offsets do not count) and
    unit length (strength does not count), and the similarity is their correlation. Each filter is
    scored at its best scale, reported in :attr:`Match.scale`. Both polarities count: a filter that is
    the kernel upside down in sign scores -1 and ranks as high as a +1 match. A flat kernel (box blur)
    keeps its mean, since nothing else describes it.

    Returns:
        name -> up to ``top_k`` matches, best (largest absolute similarity) first.
    """
    centred, raw = learned_shapes(model), learned_shapes(model, centre=False)  # (C, k, k) each
    return {
        name: _rank(raw if _is_flat(kernel.weights) else centred, kernel.weights, top_k)
        for name, kernel in K.KERNELS.items()
    }


@dataclasses.dataclass(frozen=True)
class SideBySide:
    classic: Image.Image  # the classic kernel's response on the photo
    learned: Image.Image  # the learned filter's response (sign-matched)
    difference: Image.Image  # classic minus learned, both standardised
    correlation: float  # how alike the two responses are over the photo, -1..1


def side_by_side(model: nn.Module, network_input: torch.Tensor, kernel_name: str, match: Match) -> SideBySide:
    """Apply a classic kernel and a learned conv1 filter to the same photo at stride 1.

    ``network_input`` is the normalised (1, 3, H, W) tensor the network sees. The classic kernel runs on
    its gray version (the channel mean), at the scale it matched at (each weight a block, see
    :func:`scaled_kernel`), the learned filter on all three channels as the network would.
    Both responses are standardised (zero mean, unit spread) so that their shapes can be compared; the
    learned one is flipped when the match has the opposite sign.
    """
    conv = first_conv(model)
    weights = scaled_kernel(K.kernel_weights(kernel_name), match.scale, conv.kernel_size)
    gray = network_input[0].mean(dim=0).numpy()
    pad_h, pad_w = weights.shape[0] // 2, weights.shape[1] // 2
    classic = torch.from_numpy(K.convolve(np.pad(gray, ((pad_h, pad_h), (pad_w, pad_w))), weights))
    with torch.no_grad():
        learned = F.conv2d(
            network_input,
            conv.weight[match.filter_index : match.filter_index + 1].float(),
            padding=conv.kernel_size[0] // 2,
        )[0, 0]
    # Even-sized kernels come out one pixel larger; crop both to the common size.
    h, w = min(classic.shape[0], learned.shape[0]), min(classic.shape[1], learned.shape[1])
    classic, learned = _z(classic[:h, :w]), _z(learned[:h, :w]) * (1 if match.similarity >= 0 else -1)
    difference = classic - learned
    correlation = float((classic * learned).mean())
    images = [render.render_response(t.numpy())[0] for t in (classic, learned, difference)]
    return SideBySide(*images, correlation=correlation)


def _z(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean()) / t.std().clamp_min(1e-12)
