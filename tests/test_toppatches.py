import numpy as np
import pytest
import torch

from playground import activations
from playground.architecture import receptive_box, trace
from playground.models import MEAN, MODELS, STD, build
from playground.training.finetune import prepare_batch
from playground.units.toppatches import GREY, PassProgress, TopPatches, field_boxes, top_patches
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


def _picture(dataset, image: int) -> np.ndarray:
    """(3, 224, 224) uint8: the photo as the network saw it (its 0-1 values in float32, to 0-255 by numpy)."""
    x = prepare_batch(dataset.images[image][None], 224, train=False)[0] * STD + MEAN
    return np.round(x.numpy() * np.float32(255)).astype(np.uint8)


def test_outside_the_photo_is_grey_and_inside_it_the_photo(planted):
    # Every native-size patch (conv1 and conv2: the field fits in 64 px) against numpy: the field's pixels cut
    # from the photo padded with grey, so the rows just past each side are grey too, not copies of the edge.
    model, dataset, result = planted
    rows = {r.name: r for r in trace(model)}
    edges = 0
    for name in ("features.0", "features.3"):
        layer, row = result.layers[name], rows[name]
        assert row.receptive_field <= 64
        pad = row.receptive_field
        for channel in range(layer.values.shape[0]):
            for rank in range(layer.values.shape[1]):
                left, top, right, bottom = field_boxes(row, layer.positions[channel, rank]).tolist()
                padded = np.pad(_picture(dataset, int(layer.images[channel, rank])), ((0, 0), (pad, pad), (pad, pad)),
                                constant_values=GREY)  # fmt: skip
                expected = padded[:, top + pad : bottom + pad, left + pad : right + pad]
                np.testing.assert_array_equal(
                    layer.patches[channel, rank].numpy(), expected, err_msg=f"{name} {channel}"
                )
                edges += left < 0 or top < 0 or right > 224 or bottom > 224
    assert edges > 20  # many winners sit at the border, so the padding was checked


def test_downsampled_patches_are_grey_where_the_whole_bin_is_past_the_photo(planted):
    # conv5's 163-px fields are shrunk to 64 px: a patch pixel averages a bin of the field. Bins wholly past
    # the photo's edges (in pixel edges: before 0 or from 224 on) are the padding grey.
    model, _, result = planted
    rows = {r.name: r for r in trace(model)}
    layer, row = result.layers["features.10"], rows["features.10"]
    side = layer.patches.shape[-1]
    scale = row.receptive_field / side  # input pixels per patch pixel
    checked = 0
    for channel in range(layer.values.shape[0]):
        patch = layer.patches[channel, 0]
        left, top, _, _ = field_boxes(row, layer.positions[channel, 0]).tolist()
        for i in range(side):
            for start, picked in ((top, patch[:, i]), (left, patch[:, :, i])):
                if start + (i + 1) * scale <= 0 or start + i * scale >= 224:
                    assert torch.all(picked == GREY), (channel, i)
                    checked += 1
    assert checked > 100


def _batch_norm_model():
    model = build("alexnet_compact", num_classes=3, batch_norm=True, generator=torch.Generator().manual_seed(0))
    bn = model.features[1]
    with torch.no_grad():  # trained-looking statistics, and a channel the normalisation turns upside down
        bn.running_mean.uniform_(-0.05, 0.05, generator=torch.Generator().manual_seed(2))
        bn.running_var.uniform_(0.01, 0.1, generator=torch.Generator().manual_seed(3))
        bn.weight[::2] = -1.0
    return model


def test_units_are_ranked_by_what_the_activations_tab_shows():
    # With batch norm, conv1's channel is shown after its normalisation (features.2, the ReLU); a negative scale
    # turns the convolution's ranking upside down there.
    model, dataset = _batch_norm_model().eval(), planted_dataset(24)
    layer = _result(model, dataset, k=5, batch_size=8).layers["features.0"]
    x = prepare_batch(dataset.images, 224, train=False)
    shown = activations.capture(model, x, ["features.2"])["features.2"]  # (N, C, H, W) as the Activations tab has it
    strongest = shown.flatten(2).amax(2)  # (N, C)
    for channel in (0, 1, 2, 3):
        expected = torch.argsort(strongest[:, channel], descending=True, stable=True)[:5]
        assert strongest[layer.images[channel], channel].tolist() == pytest.approx(
            strongest[expected, channel].tolist(), abs=1e-5
        )
        assert layer.values[channel].tolist() == pytest.approx(strongest[expected, channel].tolist(), abs=1e-5)


def test_a_model_in_training_mode_is_run_in_eval_mode_and_left_untouched():
    model = _batch_norm_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _result(model, planted_dataset(12), k=3, batch_size=4)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), [
        k for k in before if not torch.equal(before[k], after[k])
    ]
