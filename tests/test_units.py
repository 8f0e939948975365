import numpy as np
import pytest
import torch

from playground.architecture import receptive_box, trace
from playground.models import BASELINES, MODELS, build
from playground.training.finetune import prepare_batch
from playground.units import probes as units
from playground.weights import checkpoints
from tests.planted import BLOB, BLOB_IMAGES, planted_dataset, planted_model


def test_layers_and_channels_are_checked_with_sentences():
    model = build("alexnet")
    assert units.unit_layers(model) == ["features.0", "features.3", "features.6", "features.8", "features.10"]
    assert units.resolve_layer(model, "features.3") == ("features.3", "")
    layer, note = units.resolve_layer(model, "features.1")  # the Activations tab's default: conv1's ReLU
    assert layer == "features.0" and "ReLU" in note
    for bad in ("classifier.1", "features.99", "avgpool", "", "x" * 500):
        with pytest.raises(ValueError, match="choose one of features.0, features.3"):
            units.resolve_layer(model, bad)
    assert units.check_channel(model, "features.10", 255) == 255
    for bad in (256, -1, 2.5, "3", True, None):
        with pytest.raises(ValueError, match="channel"):
            units.check_channel(model, "features.10", bad)
    with pytest.raises(ValueError, match="channels 0 to 255; there is no channel 256"):
        units.check_channel(model, "features.10", 256)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_are_refused(name):
    with pytest.raises(ValueError, match=f"The {name} baseline has no convolutional layers"):
        units.require_convolutional(build(name, num_classes=3), name)
    with pytest.raises(ValueError, match="no convolutional layers"):
        units.unit_attribution(build(name, num_classes=3), torch.zeros(1, 3, 64, 64), "features.0", 0, "deconvnet")


@pytest.mark.parametrize("method", list(units.NEURON_METHODS))
def test_unit_attribution_lives_in_the_units_receptive_field(method):
    model = planted_model()
    x = prepare_batch(planted_dataset().images[[BLOB_IMAGES[0]]], 224, train=False)
    result = units.unit_attribution(model, x, "features.3", 4, method)
    rows = {r.name: r for r in trace(model)}
    assert result.box == receptive_box(rows["features.3"], *result.position, (224, 224))
    with torch.no_grad():
        maps = model.features[:4](x)
    assert result.value == pytest.approx(float(maps[0, 4].max()), rel=1e-4)
    support = torch.nonzero(result.values.abs().sum(0))
    left, top, right, bottom = result.box
    assert len(support) > 0
    assert left <= int(support[:, 1].min()) and int(support[:, 1].max()) < right
    assert top <= int(support[:, 0].min()) and int(support[:, 0].max()) < bottom
    # The planted blob unit on a blob image: its box sits on the blob (centre (33, 51) of 64 px, times 3.5).
    blob = units.unit_attribution(model, x, "features.1", BLOB, method)
    left, top, right, bottom = blob.box
    assert left <= 51 * 3.5 < right and top <= 33 * 3.5 < bottom
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_and_a_trained_checkpoint(name, tmp_path):
    model = build(name, num_classes=4).eval()
    path = checkpoints.save_checkpoint(model, tmp_path / "m.safetensors", variant=name, classes=list("abcd"))
    loaded, info = checkpoints.load_user_checkpoint(path)
    last = units.unit_layers(loaded)[-1]
    result = units.unit_attribution(loaded, torch.randn(1, 3, 224, 224), last, 3, "guided_backprop")
    assert result.values.shape == (3, 224, 224)
    assert units.layer_row(loaded, last).receptive_field == 163


def test_results_of_one_session_never_reach_another():
    cache = units.UnitResults(max_bytes=10_000)
    mine = units.model_identity("mine:0:my flowers", "session-a")
    theirs = units.model_identity("mine:0:my flowers", "session-b")
    cache.put("top_patches", mine, ("examples",), value="a's patches", size=100)
    assert cache.get("top_patches", mine, ("examples",)) == "a's patches"
    assert cache.get("top_patches", theirs, ("examples",)) is None
    shared_a, shared_b = units.model_identity("alexnet", "session-a"), units.model_identity("alexnet", "session-b")
    cache.put("top_patches", shared_a, ("examples",), value="shared", size=100)
    assert cache.get("top_patches", shared_b, ("examples",)) == "shared"  # a shared variant's results may be shared
    cache.put("big", mine, value="x", size=20_000)  # larger than the whole cache: not kept
    assert cache.get("big", mine) is None and cache.bytes <= 10_000


def test_boxes_are_drawn_where_asked():
    from PIL import Image

    picture = units.draw_box(Image.new("RGB", (50, 40), "black"), (10, 5, 21, 16))
    assert picture.getpixel((10, 5)) == units.BOX_COLOUR and picture.getpixel((20, 15)) == units.BOX_COLOUR
    assert picture.getpixel((15, 10)) == (0, 0, 0)


@pytest.mark.parametrize("k, side", [(16, 55), (9, 13), (5, 27)])
def test_a_click_on_the_activations_grid_finds_its_tile(k, side):
    from playground import activations as A

    grid = A.channel_grid(torch.rand(1, 40, side, side), k=k)
    per_row = int(np.ceil(np.sqrt(len(grid.channels))))
    step = (grid.image.width - 2) // per_row
    for i, channel in enumerate(grid.channels):
        x, y = 2 + (i % per_row) * step + step // 2, 2 + (i // per_row) * step + step // 2
        assert units.tile_at(grid.channels, grid.image.size, x, y) == channel
    assert units.tile_at(grid.channels, grid.image.size, 1, 1) is None  # the padding between tiles
    assert units.tile_at(grid.channels, grid.image.size, step, 5) is None


def test_a_click_on_the_channel_map_finds_its_position():
    maps = torch.rand(1, 4, 13, 13)
    picture = units.channel_map(maps, 2)
    assert picture.size == (13 * 17, 13 * 17)  # whole pixels: 17 per position
    assert units.map_position((13, 13), 0, 0) == (0, 0)
    assert units.map_position((13, 13), 13 * 17 - 1, 17 * 5 + 3) == (5, 12)
    with pytest.raises(ValueError, match="outside the 13 × 13 map"):
        units.map_position((13, 13), 13 * 17, 0)


def test_a_huge_channel_is_not_quoted_whole():
    from playground import models
    from playground.units import probes

    model = models.build("alexnet_compact", num_classes=10)
    with pytest.raises(ValueError, match="there is no channel 1e\\+308") as refused:
        probes.check_channel(model, "features.0", 1e308)
    assert len(str(refused.value)) < 100


def test_a_course_name_stands_for_its_layer():
    from playground import models
    from playground.units import probes

    model = models.build("alexnet", num_classes=10)
    assert probes.resolve_layer(model, "conv3")[0] == "features.6"
    assert probes.resolve_layer(model, "relu5")[0] == "features.10"
