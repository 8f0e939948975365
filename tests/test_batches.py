"""The batch pipeline's two additions from the paper: PCA colour noise and ten-crop test views."""

import numpy as np
import pytest
import torch

from playground import models
from playground.training.batches import PCA_ALPHA_STD, colour_pca, prepare_batch, ten_crops

AXIS = np.array([0.8, 0.55, 0.24]) / np.linalg.norm([0.8, 0.55, 0.24])  # the colours vary mostly along this


def _images(n=64, size=16, seed=0):
    """Mid-gray images whose pixels spread mostly along AXIS, a little along everything else."""
    rng = np.random.default_rng(seed)
    along = rng.normal(0, 0.12, size=(n, size, size, 1)) * AXIS
    other = rng.normal(0, 0.02, size=(n, size, size, 3))
    pixels = np.clip(0.5 + along + other, 0, 1)
    return torch.from_numpy(np.round(pixels * 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def test_colour_pca_finds_the_datasets_principal_axes():
    images = _images()
    pca = colour_pca(images, chunk=10)  # several chunks, summed
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy() / 255
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))  # numpy, independently
    np.testing.assert_allclose(pca.eigenvalues.numpy(), values[::-1], rtol=1e-4, atol=1e-8)
    for i in range(3):  # eigenvectors are defined up to their sign
        assert abs(float(np.dot(pca.axes[:, i].numpy(), vectors[:, 2 - i]))) == pytest.approx(1, abs=1e-4)
    assert abs(float(np.dot(pca.axes[:, 0].numpy(), AXIS))) > 0.99  # the planted axis comes first
    gray = colour_pca(torch.randint(0, 255, (4, 1, 8, 8), dtype=torch.uint8))  # R = G = B: brightness only
    assert abs(float(gray.axes[:, 0] @ torch.ones(3))) == pytest.approx(3**0.5, abs=1e-4)
    assert float(gray.eigenvalues[1:].abs().max()) < 1e-6


def test_pca_noise_keeps_the_mean_and_moves_colours_along_the_principal_axes():
    images = _images(n=8)
    pca = colour_pca(images)
    generator = torch.Generator().manual_seed(0)
    repeats = 4000
    batch = images.repeat(repeats, 1, 1, 1)  # each image many times over
    plain = prepare_batch(batch, 16, train=False)
    noisy = prepare_batch(batch, 16, train=True, crop=False, flip=False, pca=pca, generator=generator)
    shift = (noisy - plain) * models.STD  # back on the 0-1 pixel scale: (N, 3, H, W)
    per_image = shift.mean(dim=(2, 3))  # (N, 3)
    torch.testing.assert_close(shift, per_image[:, :, None, None].expand_as(shift), atol=1e-5, rtol=0)  # one shift
    # In expectation the images keep their mean colour (the shift is zero-mean and never clipped).
    assert per_image.mean(dim=0).abs().max() < 4 * PCA_ALPHA_STD * float(pca.eigenvalues[0].sqrt()) / repeats**0.5 * 3
    mean_before = plain.view(repeats, 8, 3, -1).mean(dim=(0, 3))
    mean_after = noisy.view(repeats, 8, 3, -1).mean(dim=(0, 3))
    torch.testing.assert_close(mean_after, mean_before, atol=2e-3, rtol=0)
    # Along each principal axis the shift spreads as α · √λ with α ~ N(0, 0.1); across the axes, not at all.
    along = per_image @ pca.axes  # (N, 3): the shift in the axes' coordinates
    expected = PCA_ALPHA_STD * pca.eigenvalues.sqrt()
    torch.testing.assert_close(along.std(dim=0), expected, rtol=0.06, atol=1e-6)
    correlation = torch.corrcoef(along.T)
    assert correlation[0, 1].abs() < 0.06 and correlation[0, 2].abs() < 0.06
    again = prepare_batch(
        batch[:16], 16, train=True, crop=False, flip=False, pca=pca, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(again, noisy[:16])  # drawn from the run's generator: reproducible


def test_ten_crops_are_the_corners_and_centre_of_the_resized_image_and_its_mirror():
    images = torch.randint(0, 255, (3, 3, 40, 40), dtype=torch.uint8)
    views = ten_crops(images, 28)
    assert views.shape == (10, 3, 3, 28, 28)
    big = prepare_batch(images, 32, train=False)  # 28 of 32, as 224 of 256
    mirror = big.flip(-1)
    expected = [
        picture[:, :, top : top + 28, left : left + 28]
        for picture in (big, mirror)
        for top, left in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2))  # corners, then the centre
    ]
    for ours, theirs in zip(views, expected):
        torch.testing.assert_close(ours, theirs)
