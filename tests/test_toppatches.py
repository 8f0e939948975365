import pytest
import torch

from playground.architecture import receptive_box, trace
from playground.models import MEAN, MODELS, STD, build
from playground.training.finetune import prepare_batch
from playground.units.toppatches import PassProgress, TopPatches, top_patches
from tests.planted import BLOB, BLOB_IMAGES, EDGE, EDGE_IMAGES, RED, planted_dataset, planted_model


def _result(model, dataset, **options) -> TopPatches:
    records = list(top_patches(model, dataset, **options))
    assert all(isinstance(r, PassProgress) for r in records[:-1])
    assert records[-2].done == records[-2].total == len(dataset)
    return records[-1]


@pytest.fixture(scope="module")
def planted():
    model, dataset = planted_model(), planted_dataset()
    return model, dataset, _result(model, dataset, k=9, batch_size=16)


def test_planted_units_find_their_pattern(planted):
    _, _, result = planted
    conv1 = result.layers["features.0"]
    assert set(conv1.images[BLOB, :5].tolist()) == set(BLOB_IMAGES)
    assert set(conv1.images[EDGE, :5].tolist()) == set(EDGE_IMAGES)
    assert torch.all(conv1.values[BLOB, :-1] >= conv1.values[BLOB, 1:])  # strongest first
    # The patches show the pattern: a red centre for the blob unit, dark left and bright right for the edge.
    blob = conv1.patches[BLOB, 0].float()  # (3, 11, 11)
    centre = blob[:, 4:7, 4:7].mean(dim=(1, 2))
    assert torch.allclose(centre, torch.tensor(RED, dtype=torch.float32), atol=25)
    edge = conv1.patches[EDGE, 0].float().mean(0)
    assert edge[:, :4].mean() < 80 and edge[:, -4:].mean() > 180


def test_patches_are_the_receptive_fields_the_trace_gives(planted):
    model, dataset, result = planted
    rows = {r.name: r for r in trace(model)}
    for name, layer in result.layers.items():
        for channel in (0, layer.values.shape[0] - 1):
            y, x = layer.positions[channel, 0].tolist()
            assert tuple(layer.boxes[channel, 0].tolist()) == receptive_box(rows[name], y, x, (224, 224))
            assert layer.patches.shape[-1] == min(rows[name].receptive_field, 64)
    # conv1 patches are the network's input pixels, unscaled, where the field lies inside the image.
    layer = result.layers["features.0"]
    picture = prepare_batch(dataset.images[int(layer.images[BLOB, 0])][None], 224, train=False)[0] * STD + MEAN
    left, top, right, bottom = layer.boxes[BLOB, 0].tolist()
    assert right - left == 11 and bottom - top == 11
    expected = (picture[:, top:bottom, left:right] * 255).round()
    assert torch.allclose(layer.patches[BLOB, 0].float(), expected, atol=1)


def test_value_is_the_channel_maximum_of_that_image(planted):
    model, dataset, result = planted
    layer = result.layers["features.3"]
    channel, image = 5, int(layer.images[5, 0])
    with torch.no_grad():
        x = prepare_batch(dataset.images[image][None], 224, train=False)
        maps = model.features[:4](x)
    assert float(layer.values[channel, 0]) == pytest.approx(float(maps[0, channel].max()), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_every_conv_layer(name):
    model = build(name, generator=torch.Generator().manual_seed(0)).eval()
    result = _result(model, planted_dataset(6), k=9)
    convs = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
    assert list(result.layers) == convs
    for name_, layer in result.layers.items():
        assert layer.values.shape == (model.features[int(name_.split(".")[1])].out_channels, 6)  # k = all 6 images


def test_an_empty_dataset_is_a_sentence():
    empty = planted_dataset(1)
    empty = type(empty)("nothing", empty.images[:0], empty.labels[:0], empty.classes)
    with pytest.raises(ValueError, match="no images"):
        list(top_patches(planted_model(), empty))
