import numpy as np
import pytest
import torch
import torch.nn.functional as F

from playground import kernels as K
from playground.activations import preprocess
from playground.filters import (
    classic_template, conv1_grid, deeper_summary, learned_shapes, match_classic, side_by_side,
)
from playground.models import MODELS, build

# Presets whose zero-mean shape no other preset shares up to sign; the others tie, correctly (e.g.
# outline_center is 9 × identity minus a box, the same shape as identity once the mean is gone).
DISTINCT = [
    "identity", "box_blur", "gaussian_blur", "sharpen", "emboss", "sobel_x", "sobel_y", "scharr_x",
    "laplacian", "vertical_edge", "light_from_above", "light_from_left",
]


def _plant(model, index, preset, sign=1.0, method="nearest"):
    conv = model.features[0]
    weights = torch.tensor(np.array(K.KERNELS[preset].weights))[None, None]
    blown = F.interpolate(weights, size=conv.kernel_size, mode=method)[0, 0] * sign * 0.05
    with torch.no_grad():
        conv.weight[index] = blown.expand(3, -1, -1)  # the same shape in R, G and B


@pytest.mark.parametrize("method, threshold", [("nearest", 0.99), ("bilinear", 0.6)])
@pytest.mark.parametrize("preset", DISTINCT)
def test_a_blown_up_copy_of_a_preset_comes_out_first(preset, method, threshold):
    torch.manual_seed(0)
    model = build("alexnet")
    _plant(model, 37, preset, method=method)
    best, second = match_classic(model, top_k=2)[preset]
    assert best.filter_index == 37 and best.similarity > threshold
    assert abs(second.similarity) < abs(best.similarity) - 0.2  # a clear winner, not a near tie


def test_opposite_polarity_matches_with_a_negative_similarity():
    torch.manual_seed(1)
    model = build("alexnet_compact")
    _plant(model, 5, "sobel_y", sign=-1.0, method="nearest")
    best = match_classic(model, top_k=2)["sobel_y"]
    assert best[0].filter_index == 5 and best[0].similarity < -0.95
    assert len(best) == 2 and abs(best[1].similarity) < 0.9


def test_templates_are_zero_mean_unit_length_at_the_filter_size():
    t = classic_template(K.KERNELS["sobel_x"].weights, (11, 11))
    assert torch.equal(t[:3, :3], t[0, 0].expand(3, 3))  # a blown-up weight is a block
    assert t.shape == (11, 11)
    assert float(t.mean()) == pytest.approx(0, abs=1e-6) and float(t.norm()) == pytest.approx(1, abs=1e-5)
    shapes = learned_shapes(build("alexnet2012"))
    assert shapes.shape == (96, 11, 11)


@pytest.mark.parametrize("name", list(MODELS))
def test_grids_have_a_tile_per_filter(name):
    model = build(name)
    grid = conv1_grid(model, tile_px=56)
    filters = model.features[0].out_channels
    per_row = 16 if filters > 64 else 8
    tile = 11 * (56 // 11)  # each weight is a 5 x 5 block
    assert grid.width >= per_row * tile and grid.height >= (filters // per_row) * tile
    summary = deeper_summary(model)
    assert [s.name for s in summary] == [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][1:]
    assert all(s.mean_abs > 0 for s in summary)


def test_side_by_side_of_a_planted_filter_agrees_with_the_classic_kernel():
    torch.manual_seed(2)
    model = build("alexnet")
    _plant(model, 3, "sobel_x", method="nearest")
    rng = np.random.default_rng(0)
    from PIL import Image

    from PIL import ImageFilter

    noise = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    photo = noise.resize((320, 240), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))  # smooth shapes
    x = preprocess(photo)
    match = match_classic(model)["sobel_x"][0]
    result = side_by_side(model, x, "sobel_x", match)
    assert result.classic.size == result.learned.size == result.difference.size
    assert result.correlation > 0.5  # a stretched Sobel responds much like Sobel
    random_match = type(match)(10, 0.1)
    assert side_by_side(model, x, "sobel_x", random_match).correlation < result.correlation


def test_centre_kernels_keep_distinct_shapes_once_blown_up():
    # Bilinear stretching made identity, Gaussian, sharpen and Laplacian one smooth bump (similarity
    # above 0.93 for every pair); blown up as blocks, identity and the Gaussian stay apart.
    def similarity(a, b):
        return abs(float((classic_template(K.KERNELS[a].weights, (11, 11)) * classic_template(K.KERNELS[b].weights, (11, 11))).sum()))

    assert similarity("identity", "gaussian_blur") < 0.9
    assert similarity("gaussian_blur", "laplacian") < 0.9
    assert similarity("identity", "outline_center") == pytest.approx(1.0, abs=1e-5)  # truly the same shape
