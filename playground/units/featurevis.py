"""Feature visualisation: pictures optimised to excite one channel, as Olah, Mordvintsev & Schubert (2017)
made them ("Feature Visualization", Distill).

The recipe, step by step, for a batch of images (one channel each):

- the image is a Fourier spectrum scaled by 1 / frequency, so the optimiser moves smooth patterns first
  instead of the high-frequency noise plain pixels drift into;
- its three channels are *decorrelated colour*: turned into RGB through the square root of ImageNet's
  colour covariance (Lucid's matrix), then a sigmoid keeps them in [0, 1];
- every step sees it padded, jittered, rescaled and rotated by a small random amount (one affine warp),
  so only patterns that excite the unit wherever they land survive;
- Adam climbs the channel's mean activation (or descends it, for the negative direction).

torch-lucent and horama implement this too; neither fitted (README, "Units"), so this is the compact
version, written as a generator of previews so the learner can watch the picture form and stop it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from playground.models import MEAN, STD

# Lucid's square root of ImageNet's colour covariance (columns: the decorrelated channels in RGB), scaled so
# its largest column has unit length, as Lucid and torch-lucent do.
_COLOUR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_CORRELATION = _COLOUR / _COLOUR.norm(dim=0).max()
LEAK = 0.05  # slope of the objective below zero


@dataclasses.dataclass(frozen=True)
class FeatureVisSettings:
    steps: int = 256  # Adam steps; the picture is mostly formed after ~100
    size: int = 128  # px per side of the optimised picture
    lr: float = 0.05  # Adam's step on the spectrum (Lucid's default)
    negative: bool = False  # descend: what the channel responds to least
    decay: float = 1.0  # spectrum scaled by 1 / frequency ** decay
    pad: int = 12  # px of mid-grey around the picture before the random warp
    jitter: int = 8  # px of random shift each step
    scale: float = 0.1  # random zoom within 1 ± this
    degrees: float = 10.0  # random rotation within ± this
    seed: int = 0  # initial spectrum and every random warp come from a private generator seeded here
    preview_seconds: float = 0.5  # a preview at least this often (and after the last step)

    def validate(self, max_steps: int, max_size: int) -> None:
        if not 1 <= int(self.steps) <= max_steps:
            raise ValueError(f"Steps must be from 1 to {max_steps}, got {self.steps}.")
        if not 32 <= int(self.size) <= max_size:
            raise ValueError(f"The picture's side must be from 32 to {max_size} px, got {self.size}.")


@dataclasses.dataclass(frozen=True)
class Preview:
    """The pictures as they stand after ``step`` of ``steps``, with what they make their channels do."""

    step: int
    steps: int
    images: list[Image.Image]  # one per channel, in the order asked
    channels: list[int]
    mean_activation: list[float]  # each channel's mean over its map, on the clean picture (no warp)
    max_activation: list[float]  # each channel's strongest value on the clean picture
    seconds: float

    @property
    def final(self) -> bool:
        return self.step == self.steps


class FourierImage(nn.Module):
    """A batch of pictures parameterised by their spectra, in decorrelated colour; ``forward`` gives RGB in
    [0, 1], (B, 3, size, size)."""

    def __init__(self, batch: int, size: int, decay: float, generator: torch.Generator):
        super().__init__()
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        frequency = torch.sqrt(fx**2 + fy**2)  # (size, size // 2 + 1)
        self.register_buffer("scale", 1.0 / frequency.clamp_min(1.0 / size) ** decay)
        self.size = size
        self.spectrum = nn.Parameter(0.01 * torch.randn(batch, 3, *frequency.shape, 2, generator=generator))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0  # Lucid's "magic" 4
        rgb = torch.einsum("bchw,rc->brhw", decorrelated, COLOUR_CORRELATION)
        return torch.sigmoid(rgb)


def random_warp(pictures: torch.Tensor, settings: FeatureVisSettings, generator: torch.Generator) -> torch.Tensor:
    """Pad with grey, then shift, zoom and rotate each picture at random (one affine warp each)."""
    padded = F.pad(pictures, [settings.pad] * 4, value=0.5)
    batch, _, size, _ = padded.shape

    def uniform(low, high):
        return low + (high - low) * torch.rand(batch, generator=generator)

    angle = uniform(-settings.degrees, settings.degrees) * math.pi / 180
    zoom = uniform(1 - settings.scale, 1 + settings.scale)
    shift = uniform(-settings.jitter, settings.jitter), uniform(-settings.jitter, settings.jitter)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, 2 * shift[0] / size], dim=1),
            torch.stack([sin, cos, 2 * shift[1] / size], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3), in affine_grid's [-1, 1] coordinates
    grid = F.affine_grid(theta, list(padded.shape), align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _normalised(pictures: torch.Tensor) -> torch.Tensor:
    return (pictures - MEAN) / STD


def _to_images(pictures: torch.Tensor) -> list[Image.Image]:
    pixels = (pictures.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(np.ascontiguousarray(p)) for p in pixels]


def channel_activation(trunk: nn.Module, pictures: torch.Tensor, channels: list[int]) -> tuple[list, list]:
    """(mean, max) of each picture's own channel at the trunk's output, for RGB pictures in [0, 1]."""
    with torch.no_grad():
        maps = trunk(_normalised(pictures))  # (B, C, h, w)
        own = maps[torch.arange(len(channels)), torch.tensor(channels)]  # (B, h, w)
    return own.flatten(1).mean(1).tolist(), own.flatten(1).amax(1).tolist()


def visualise(trunk: nn.Module, channels: list[int], settings: FeatureVisSettings = FeatureVisSettings()):
    """Optimise one picture per channel of the trunk's last layer; yields a :class:`Preview` at least every
    ``settings.preview_seconds`` and after the last step. Close the generator to stop it.

    ``trunk`` is the network up to the unit's layer, frozen and private: ``frozen_copy(cut_at(model, layer))``
    (:mod:`playground.layers`), so nothing after the unit is computed and the model itself is never touched.

    Raises:
        ValueError: a channel the layer does not have.
    """
    width = _channel_count(trunk, settings.size)
    bad = [c for c in channels if not 0 <= c < width]
    if bad or not channels:
        raise ValueError(f"This layer has channels 0 to {width - 1}; there is no channel {bad[0] if bad else '?'}.")
    generator = torch.Generator().manual_seed(settings.seed)
    image = FourierImage(len(channels), settings.size, settings.decay, generator)
    optimiser = torch.optim.Adam(image.parameters(), lr=settings.lr)
    index = (torch.arange(len(channels)), torch.tensor(channels))
    sign = 1.0 if settings.negative else -1.0  # Adam minimises: -activation climbs it, +activation descends
    started, shown = time.monotonic(), float("-inf")  # the first step shows at once: the starting picture
    for step in range(1, settings.steps + 1):
        optimiser.zero_grad(set_to_none=True)
        maps = trunk(_normalised(random_warp(image(), settings, generator)))
        # The mean of the rectified map: a plain mean is linear in a conv1 unit's input, so for a filter whose
        # weights sum to zero (an edge) every picture would score about the same. A small leak keeps a unit
        # that starts switched off everywhere learning.
        loss = -F.leaky_relu(-sign * maps[index], LEAK).mean(dim=(1, 2)).sum()
        loss.backward()
        optimiser.step()
        now = time.monotonic()
        if step == settings.steps or now - shown >= settings.preview_seconds:
            shown = now
            pictures = image().detach()
            mean, strongest = channel_activation(trunk, pictures, channels)
            yield Preview(step, settings.steps, _to_images(pictures), list(channels), mean, strongest, now - started)


def _channel_count(trunk: nn.Module, size: int) -> int:
    with torch.no_grad():
        return int(trunk(torch.zeros(1, 3, size, size)).shape[1])


def grid_settings(receptive_field: int, steps: int = 128) -> FeatureVisSettings:
    """Settings for a whole layer at once: a picture a little larger than the unit's receptive field (conv1
    sees 11 px: 128 px would only tile its pattern), fewer steps, milder warps on small pictures."""
    size = int(min(128, max(48, 2 * receptive_field)))
    return FeatureVisSettings(steps=steps, size=size, pad=max(4, size // 10), jitter=max(2, size // 16))
