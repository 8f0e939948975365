"""Batches as the network sees them, made on the model's own device: random crops, flips, colour jitter and
the paper's PCA colour noise for training; the paper's ten crops for testing.

torchvision's random transforms draw one set of parameters per call, so a batch would share one crop, and it
has no PCA lighting noise; here every image of a uint8 batch gets its own crop, flip and colours in a few
batched tensor operations, on the GPU when the model is there. The ten test views are torchvision's.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.ops import roi_align

from playground.models import MEAN, STD

PCA_ALPHA_STD = 0.1  # the paper: each image's α ~ N(0, 0.1) along each principal colour axis
TEN_CROP_RESIZE = 256 / 224  # the paper's test views: 224 px crops of the image resized to 256 px


@dataclasses.dataclass(frozen=True)
class ColourPCA:
    """The principal axes of a dataset's RGB pixel values (on a 0-1 scale), largest spread first."""

    axes: torch.Tensor  # (3, 3): column i is the i-th eigenvector of the RGB covariance (unit length)
    eigenvalues: torch.Tensor  # (3,): the variance of pixel values along each axis

    def noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One colour shift per image, (batch, 3): Σ_i α_i √λ_i p_i with α_i ~ N(0, 0.1).

        The paper writes λ_i, the eigenvalue, which depends on the pixel scale: on 0-255 values it would move
        pixels by hundreds of levels, on 0-1 values by less than one. Like the implementations people use
        (fb.resnet.torch's Lighting, for one), the shift is α times the standard deviation √λ_i along each
        axis, which means the same thing on any scale.
        """
        alpha = torch.randn(batch, 3, generator=generator) * PCA_ALPHA_STD
        return (alpha * self.eigenvalues.clamp_min(0).sqrt()) @ self.axes.T  # (B, 3)


def colour_pca(images: torch.Tensor, chunk: int = 256) -> ColourPCA:
    """The eigenvectors and eigenvalues of the 3 x 3 covariance of every pixel's RGB values in ``images``
    (uint8 (N, C, H, W); gray images count as R = G = B), summed in chunks so memory stays small."""
    total, first, second = 0, torch.zeros(3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).cpu()  # (pixels, RGB)
        total += len(pixels)
        first += pixels.sum(dim=0)
        second += pixels.T @ pixels
    mean = first / max(total, 1)
    covariance = second / max(total, 1) - torch.outer(mean, mean)
    eigenvalues, axes = torch.linalg.eigh(covariance)  # ascending
    return ColourPCA(axes.flip(-1).float(), eigenvalues.flip(-1).clamp_min(0).float())


def prepare_batch(
    images: torch.Tensor,
    size: int,
    *,
    train: bool,
    crop: bool = True,
    flip: bool = True,
    color_jitter: bool = False,
    pca: ColourPCA | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 (B, C, H, W) on any device -> normalised float (B, 3, size, size), augmented when ``train``.

    Every image gets its own crop, flip and colours: crops are ``roi_align`` boxes, one per image. The PCA
    colour shift is added unclipped, so each image keeps its mean colour in expectation.
    """
    x = images.float().div_(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # gray datasets (Fashion-MNIST) feed the RGB networks
    batch, _, height, width = x.shape
    device = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(device)

    if train and crop:
        area = (0.35 + 0.65 * rand(batch)) * height * width
        aspect = torch.exp(math.log(3 / 4) + rand(batch) * math.log(16 / 9))
        w = torch.sqrt(area * aspect).clamp(max=width)
        h = torch.sqrt(area / aspect).clamp(max=height)
        x0, y0 = rand(batch) * (width - w), rand(batch) * (height - h)
        boxes = torch.stack([torch.arange(batch, device=device, dtype=x.dtype), x0, y0, x0 + w, y0 + h], dim=1)
        x = roi_align(x.contiguous(), boxes, output_size=(size, size), aligned=True)
    elif (height, width) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < height)
    if train and flip:
        mirrored = rand(batch) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
    if train and pca is not None:
        x = x + pca.noise(batch, generator).to(device)[:, :, None, None]  # (B, 3, 1, 1): one shift per image
    if train and color_jitter:
        brightness, contrast, saturation = (0.7 + 0.6 * rand(3, batch, 1, 1, 1)).unbind(0)
        x = x * brightness
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray.mean(dim=(2, 3), keepdim=True)) * contrast + gray.mean(dim=(2, 3), keepdim=True)
        gray = x.mean(dim=1, keepdim=True)
        x = (gray + (x - gray) * saturation).clamp_(0, 1)
    return (x - MEAN.to(device)) / STD.to(device)


def ten_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """The paper's test views of uint8 (B, C, H, W) images, resized so a ``size`` crop is 224 of 256: the four
    corner crops and the centre crop of the image and of its mirror image, normalised (10, B, 3, size, size)."""
    resized = prepare_batch(images, round(size * TEN_CROP_RESIZE), train=False)  # (B, 3, big, big)
    return torch.stack(TF.ten_crop(resized, [size, size]))
