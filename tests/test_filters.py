import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from playground import kernels as K
from playground.activations import preprocess
from playground.filters import (
    FITTED,
    Match,
    centred_scales,
    classic_template,
    conv1_grid,
    deeper_summary,
    learned_shapes,
    match_classic,
    match_kernel,
    scaled_kernel,
    side_by_side,
)
from playground.models import MODELS, build

FILTER = (11, 11)  # conv1 of every variant
# (preset, scale) for every centred placement of every preset in an 11 x 11 filter: 3 x 3 kernels at
# 1x and 3x, 5 x 5 kernels at 1x only.
PLACEMENTS = [(name, s) for name, k in K.KERNELS.items() for s in centred_scales(k.weights.shape, FILTER)]
# 3 x 3 presets whose shape no other preset shares closely, for the stretched-copy test below.
DISTINCT_3X3 = [
    "identity",
    "box_blur",
    "sharpen",
    "emboss",
    "sobel_x",
    "sobel_y",
    "scharr_x",
    "laplacian",
    "flashlight_up",
    "flashlight_left",
]


class _Conv1Only(torch.nn.Module):
    """All that matching looks at: a conv1 laid out as in the AlexNet variants (``features.0``)."""

    def __init__(self, filters: int):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, filters, 11, stride=4, padding=2))


def _noise_model(filters=64, seed=0, variant=None):
    torch.manual_seed(seed)
    model = build(variant) if variant else _Conv1Only(filters)
    with torch.no_grad():
        model.features[0].weight.normal_(0, 0.01)  # every filter small random noise until one is planted
    return model


def _plant(model, index, filter_2d, sign=1.0):
    with torch.no_grad():
        model.features[0].weight[index] = (torch.as_tensor(filter_2d, dtype=torch.float32) * sign * 0.05).expand(
            3, -1, -1
        )


def _plant_centred(model, index, preset, scale, sign=1.0):
    """``preset`` with each weight a ``scale`` x ``scale`` block, exactly in the middle, zeros around it."""
    blown = np.kron(K.KERNELS[preset].weights, np.ones((scale, scale), np.float32))
    (h, w), (bh, bw) = model.features[0].kernel_size, blown.shape
    assert (h - bh) % 2 == 0 and (w - bw) % 2 == 0, "not centrable"
    planted = np.zeros((h, w), np.float32)
    planted[(h - bh) // 2 : (h + bh) // 2, (w - bw) // 2 : (w + bw) // 2] = blown
    _plant(model, index, planted, sign)


def _smooth_photo():
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    return noise.resize((320, 240), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))  # smooth shapes


def test_sobel_x_at_its_own_size_in_the_centre_comes_out_first_at_scale_1():
    # The old 4-4-3 nearest-neighbour blow-up scored this filter 0.00 and ranked it last.
    model = _noise_model(variant="alexnet")
    _plant_centred(model, 37, "sobel_x", 1)
    best = match_classic(model)["sobel_x"][0]
    assert best.filter_index == 37 and best.similarity == pytest.approx(1.0, abs=1e-5), best
    assert best.scale == 1


def test_a_centred_3x_blow_up_of_sobel_x_comes_out_first_at_scale_3():
    model = _noise_model(variant="alexnet")
    _plant_centred(model, 37, "sobel_x", 3)
    best = match_classic(model)["sobel_x"][0]
    assert best.filter_index == 37 and best.similarity == pytest.approx(1.0, abs=1e-5), best
    assert best.scale == 3


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("preset, scale", PLACEMENTS, ids=str)
def test_every_preset_planted_at_every_centred_scale_comes_out_first_at_that_scale(preset, scale, sign):
    model = _noise_model(seed=scale)
    _plant_centred(model, 21, preset, scale, sign)
    best, second = match_classic(model, top_k=2)[preset]
    assert (best.filter_index, best.scale) == (21, scale)
    assert best.similarity == pytest.approx(sign, abs=1e-4)
    assert abs(second.similarity) < 0.6  # noise: a clear winner, not a near tie


def test_centred_scales():
    assert centred_scales((3, 3), FILTER) == (1, 3)
    assert centred_scales((5, 5), FILTER) == (1,)
    assert centred_scales((11, 11), FILTER) == (1,)
    assert centred_scales((1, 1), FILTER) == (1, 3, 5, 7, 9, 11)
    assert centred_scales((3, 5), FILTER) == (1,)
    assert centred_scales((13, 13), FILTER) == ()  # larger than the filter
    assert centred_scales((4, 4), FILTER) == ()  # even in odd: never exactly in the middle
    assert centred_scales((2, 2), (12, 12)) == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize("preset, scale", PLACEMENTS, ids=str)
def test_templates_sit_in_the_middle(preset, scale):
    # Centred means mirroring the kernel mirrors the template; the old 4-4-3 blow-up failed this.
    weights = K.KERNELS[preset].weights
    t = classic_template(weights, FILTER, scale)
    for axis in (0, 1):
        mirrored = classic_template(np.flip(weights, axis).copy(), FILTER, scale)
        torch.testing.assert_close(mirrored, t.flip(axis), atol=1e-6, rtol=0)


def test_templates_are_zero_mean_unit_length_blocks_at_the_filter_size():
    t = classic_template(K.KERNELS["sobel_x"].weights, FILTER, 3)
    assert t.shape == FILTER
    assert torch.equal(t[1:4, 1:4], t[1, 1].expand(3, 3)) and float(t[1, 1]) < 0  # a blown-up weight is a block
    assert torch.equal(t[0], t[0, 0].expand(11)) and float(t[0, 0]) == pytest.approx(0, abs=1e-6)  # zero border
    assert float(t.mean()) == pytest.approx(0, abs=1e-6) and float(t.norm()) == pytest.approx(1, abs=1e-5)
    own = classic_template(K.KERNELS["sobel_x"].weights, FILTER, 1)
    assert float(own[4:7, 4:7].abs().min()) == 0 and float(own[:4].abs().max()) == pytest.approx(0, abs=1e-6)
    box = classic_template(K.KERNELS["box_blur"].weights, FILTER, 1)
    assert float(box.min()) == 0 and float(box.sum()) == pytest.approx(3)  # flat: keeps its mean, unit length
    shapes = learned_shapes(build("alexnet2012"))
    assert shapes.shape == (96, 11, 11)


@pytest.mark.parametrize("shape", [(13, 13), (4, 4)], ids=str)
def test_kernels_with_no_centred_scale_are_stretched_to_the_filter(shape):
    # The fallback: nothing sits exactly in the middle, so the kernel is stretched to the filter's size.
    weights = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    stretched = scaled_kernel(weights, FITTED, FILTER)
    assert stretched.shape == FILTER
    t = classic_template(weights, FILTER, FITTED)
    assert float(t.mean()) == pytest.approx(0, abs=1e-6) and float(t.norm()) == pytest.approx(1, abs=1e-5)
    model = _noise_model()
    _plant(model, 9, stretched)
    best = match_kernel(model, weights)[0]
    assert (best.filter_index, best.scale) == (9, FITTED) and best.similarity == pytest.approx(1.0, abs=1e-5)


def test_stretched_blocks_are_symmetric():
    # nearest-exact: 4-3-4 blocks for 3 in 11, not the off-centre 4-4-3 of plain nearest.
    np.testing.assert_array_equal(
        scaled_kernel(np.array([[1, 2, 3]], np.float32), FITTED, (1, 11))[0], [1] * 4 + [2] * 3 + [3] * 4
    )


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
@pytest.mark.parametrize("preset", DISTINCT_3X3)
def test_a_stretched_off_centre_copy_still_comes_out_first(preset, method):
    # Learned filters are never exact centred copies: a kernel stretched over the whole filter (4-4-3
    # blocks, or smooth) is no centred scale's shape, so it scores below 1, but it still wins clearly.
    model = _noise_model()
    stretched = F.interpolate(torch.tensor(np.array(K.KERNELS[preset].weights))[None, None], size=FILTER, mode=method)[
        0, 0
    ]
    _plant(model, 37, stretched)
    best, second = match_classic(model, top_k=2)[preset]
    assert best.filter_index == 37 and best.similarity > 0.6
    assert abs(second.similarity) < abs(best.similarity) - 0.2


def test_opposite_polarity_matches_with_a_negative_similarity():
    model = _noise_model(48, seed=1)  # alexnet_compact has 48
    _plant_centred(model, 5, "sobel_y", 3, sign=-1.0)
    best = match_classic(model, top_k=2)["sobel_y"]
    assert best[0].filter_index == 5 and best[0].similarity < -0.95 and best[0].scale == 3
    assert len(best) == 2 and abs(best[1].similarity) < 0.9


def test_match_kernel_is_match_classic_for_one_preset():
    model = _noise_model()
    _plant_centred(model, 2, "emboss", 3)
    assert match_kernel(model, K.KERNELS["emboss"].weights, 3) == match_classic(model, 3)["emboss"]
    assert match_kernel(model, K.KERNELS["box_blur"].weights, 3) == match_classic(model, 3)["box_blur"]


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
    model = _noise_model()
    _plant_centred(model, 3, "sobel_x", 1)
    x = preprocess(_smooth_photo())
    match = match_classic(model)["sobel_x"][0]
    result = side_by_side(model, x, "sobel_x", match)
    assert result.classic.size == result.learned.size == result.difference.size
    assert result.correlation > 0.999  # the same kernel in R, G and B: the same response
    random_match = Match(10, 0.1, 1)
    assert side_by_side(model, x, "sobel_x", random_match).correlation < result.correlation


def test_side_by_side_of_a_centred_3x_sobel_is_the_classic_kernel_at_3x():
    model = _noise_model()
    _plant_centred(model, 3, "sobel_x", 3)
    match = match_classic(model)["sobel_x"][0]
    assert (match.filter_index, match.scale) == (3, 3)
    # The learned filter is Sobel x at 3x in R, G and B alike; the classic side must run at 3x too.
    assert side_by_side(model, preprocess(_smooth_photo()), "sobel_x", match).correlation > 0.999


def test_side_by_side_flips_an_opposite_match():
    model = _noise_model()
    _plant_centred(model, 3, "laplacian", 3, sign=-1.0)
    match = match_classic(model)["laplacian"][0]
    assert match.similarity < 0
    assert side_by_side(model, preprocess(_smooth_photo()), "laplacian", match).correlation > 0.999


def test_centre_kernels_keep_distinct_shapes_once_blown_up():
    # Bilinear stretching made identity, Gaussian, sharpen and Laplacian one smooth bump (similarity
    # above 0.93 for every pair); as blocks in the middle they stay apart.
    def similarity(a, b, scale=1):
        return abs(
            float(
                (
                    classic_template(K.KERNELS[a].weights, FILTER, scale)
                    * classic_template(K.KERNELS[b].weights, FILTER, scale)
                ).sum()
            )
        )

    assert similarity("identity", "gaussian_blur") < 0.9
    assert similarity("gaussian_blur", "laplacian") < 0.9
    assert similarity("identity", "laplacian", 3) < 0.95
    assert similarity("outline_center", "outline_periphery", 3) == pytest.approx(
        1.0, abs=1e-5
    )  # one shape, opposite signs
