import numpy as np
import pytest
import torch

from playground.layers import cut_at, frozen_copy
from playground.models import MODELS, build
from playground.units.featurevis import (
    FeatureVisSettings,
    FourierImage,
    grid_settings,
    random_warp,
    visualise,
)
from playground.units.toppatches import TopPatches, top_patches
from tests.planted import BLOB, EDGE, planted_dataset, planted_model

QUICK = FeatureVisSettings(steps=96, size=48, preview_seconds=0.0)


def _final(trunk, channels, settings=QUICK):
    return list(visualise(trunk, channels, settings))[-1]


@pytest.fixture(scope="module")
def planted():
    model = planted_model()
    best = [r for r in top_patches(model, planted_dataset(), k=1) if isinstance(r, TopPatches)][0]
    return model, best.layers["features.0"]


def test_the_picture_excites_the_unit_more_than_its_best_photo(planted):
    model, conv1 = planted
    final = _final(frozen_copy(cut_at(model, "features.0")), [BLOB, EDGE])
    assert final.final and final.channels == [BLOB, EDGE]
    for i, channel in enumerate((BLOB, EDGE)):
        assert final.max_activation[i] > float(conv1.values[channel, 0]), (
            i,
            channel,
            conv1.values[:2],
            conv1.images[:2],
        )
    # And it looks like the planted pattern: the blob unit's picture is red.
    red, green, blue = torch.from_numpy(np.asarray(final.images[0], dtype=np.float32)).mean(dim=(0, 1))
    assert red > green + 30 and red > blue + 30


def test_the_negative_direction_lowers_the_activation(planted):
    model, _ = planted
    trunk = frozen_copy(cut_at(model, "features.0"))
    up = _final(trunk, [BLOB])
    down = _final(trunk, [BLOB], FeatureVisSettings(steps=96, size=48, negative=True))
    assert down.mean_activation[0] < 0 < up.mean_activation[0]


def test_previews_stream_and_closing_stops(planted):
    model, _ = planted
    steps = visualise(
        frozen_copy(cut_at(model, "features.0")), [BLOB], FeatureVisSettings(steps=500, size=48, preview_seconds=0)
    )
    first = next(steps)
    assert first.step == 1 and first.steps == 500 and not first.final
    assert next(steps).step == 2  # one preview per step when asked for
    steps.close()  # what Stop does
    with pytest.raises(StopIteration):
        next(steps)


def test_reproducible_from_its_seed_and_the_model_is_untouched():
    model = build("alexnet_compact", generator=torch.Generator().manual_seed(0))
    assert all(p.requires_grad for p in model.parameters())
    trunk = frozen_copy(cut_at(model, "features.3"))
    a = _final(trunk, [7], FeatureVisSettings(steps=5, size=48)).images[0]
    b = _final(trunk, [7], FeatureVisSettings(steps=5, size=48)).images[0]
    assert a.tobytes() == b.tobytes()
    assert all(p.requires_grad for p in model.parameters())  # the copy was frozen, not the model


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_first_and_last_conv(name):
    model = build(name, generator=torch.Generator().manual_seed(0)).eval()
    for layer in (
        "features.0",
        [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)][-1],
    ):
        final = _final(frozen_copy(cut_at(model, layer)), [0, 1], FeatureVisSettings(steps=3, size=64))
        assert [image.size for image in final.images] == [(64, 64), (64, 64)]


def test_bad_requests_are_sentences():
    model = build("alexnet_compact")
    with pytest.raises(ValueError, match="channels 0 to 47; there is no channel 48"):
        next(visualise(frozen_copy(cut_at(model, "features.0")), [48]))
    with pytest.raises(ValueError, match="'features.99' is not one of this model's layers"):
        cut_at(model, "features.99")
    with pytest.raises(ValueError, match="Steps must be from 1 to 512"):
        FeatureVisSettings(steps=0).validate(512, 224)


def test_parameterisation_and_warp_keep_pictures_in_range():
    image = FourierImage(2, 40, 1.0, torch.Generator().manual_seed(0))
    pictures = image().detach()
    assert pictures.shape == (2, 3, 40, 40) and float(pictures.min()) > 0 and float(pictures.max()) < 1
    warped = random_warp(pictures, FeatureVisSettings(pad=4), torch.Generator().manual_seed(0))
    assert warped.shape == (2, 3, 48, 48) and float(warped.min()) >= 0 and float(warped.max()) <= 1
    assert grid_settings(11).size == 48 and grid_settings(163).size == 128
