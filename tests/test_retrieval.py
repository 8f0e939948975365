import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from playground.data import datasets as data
from playground.models import MODELS, build
from playground.units.retrieval import Fc7Features, dataset_features, draw_map, fc7, neighbours, query_batch, tsne
from playground.weights import checkpoints


def _features(model, dataset) -> Fc7Features:
    return list(dataset_features(model, dataset))[-1]


@pytest.fixture(scope="module")
def mapped():
    model = build("alexnet_compact", num_classes=5, generator=torch.Generator().manual_seed(0)).eval()
    dataset = data.synthetic(limit=30)
    return model, dataset, _features(model, dataset)


def test_features_are_the_input_of_the_last_layer(mapped):
    model, dataset, features = mapped
    assert features.features.shape == (30, 2048) and features.thumbnails.shape == (30, 3, 48, 48)
    x = query_batch(Image.fromarray(dataset.images[4].permute(1, 2, 0).numpy()))
    with torch.no_grad():  # by hand: everything before the classifier's last Linear
        h = torch.flatten(model.avgpool(model.features(x)), 1)
        expected = model.classifier[:-1](h)
    assert torch.allclose(fc7(model, x), expected, atol=1e-5)
    assert all(not m._forward_hooks for m in model.modules())


def test_every_image_is_its_own_nearest_neighbour(mapped):
    model, dataset, features = mapped
    for index in (0, 13, 29):
        photo = Image.fromarray(dataset.images[index].permute(1, 2, 0).numpy())
        found = neighbours(features, fc7(model, query_batch(photo))[0], k=8)
        assert len(found) == 8 and found[0].index == index
        assert found[0].distance == pytest.approx(0.0, abs=1e-4)
        assert [n.distance for n in found] == sorted(n.distance for n in found)
        assert found[0].label == dataset.classes[int(dataset.labels[index])]


def test_the_map_places_every_image(mapped):
    _, _, features = mapped
    assert features.coordinates.shape == (30, 2) and np.isfinite(features.coordinates).all()
    picture = draw_map(features)
    assert picture.width == 900 and picture.height > 900


def test_tiny_datasets_have_neighbours_but_no_map():
    model = build("alexnet_compact", num_classes=5).eval()
    few = data.synthetic(limit=5)
    few = type(few)("few", few.images[:3], few.labels[:3], few.classes)
    features = _features(model, few)
    assert features.coordinates is None
    with pytest.raises(ValueError, match="fewer than 5"):
        draw_map(features)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_and_a_trained_checkpoint(name, tmp_path):
    model = build(name, num_classes=3).eval()
    path = checkpoints.save_checkpoint(model, tmp_path / "mine.safetensors", variant=name, classes=["a", "b", "c"])
    loaded, _ = checkpoints.load_user_checkpoint(path)
    x = query_batch(Image.new("RGB", (300, 240), (120, 30, 200)))
    width = 2048 if name == "alexnet_compact" else 4096
    assert fc7(loaded, x).shape == (1, width)


def _large(features: Fc7Features, norm: float) -> Fc7Features:
    """The same images with fc7 vectors as long as a trained AlexNet's (norms of 150 and more)."""
    generator = torch.Generator().manual_seed(4)
    vectors = (
        torch.rand(features.features.shape, generator=generator) ** 4
    )  # sparse-ish and non-negative, as after a ReLU
    vectors = (
        vectors / vectors.norm(dim=1, keepdim=True) * norm * (1 + torch.rand(len(vectors), 1, generator=generator))
    )
    return dataclasses.replace(features, features=vectors)


@pytest.mark.parametrize("norm", [0.5, 150.0, 400.0])
def test_an_images_distance_to_itself_is_zero_and_the_others_are_float64s(mapped, norm):
    features = _large(mapped[2], norm)
    reference = np.linalg.norm(
        features.features.double().numpy()[:, None] - features.features.double().numpy()[None], axis=2
    )
    for index in range(len(features.features)):
        found = neighbours(features, features.features[index], k=30)
        assert found[0].index == index and found[0].distance == 0.0
        for n in found:  # to the display's two decimals, and far better
            assert n.distance == pytest.approx(reference[index, n.index], rel=1e-6, abs=1e-9)


def test_the_maps_seed_lays_it_out_anew():
    features = np.random.default_rng(0).normal(size=(40, 64)).astype(np.float32)
    assert np.array_equal(tsne(features, seed=1), tsne(features, seed=1))  # a seed is reproducible
    assert not np.allclose(tsne(features, seed=1), tsne(features, seed=2))
    assert np.array_equal(tsne(features), tsne(features))  # no seed: the principal components' layout


def test_the_dataset_map_takes_the_seed(mapped):
    model, dataset, features = mapped
    again = list(dataset_features(model, dataset, seed=3))[-1]
    assert torch.equal(again.features, features.features)
    assert not np.allclose(again.coordinates, features.coordinates)
