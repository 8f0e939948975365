import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from playground import downloads
from playground.models import build
from playground.weights import checkpoints
from playground.weights.checkpoints import load, save_checkpoint


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test here may reach the network, and none sees a real weights cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    monkeypatch.delenv(checkpoints.WEIGHTS_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", no_network)


def test_offline_fallback_is_untrained_and_says_how_to_fix_it():
    model, info = load("alexnet", "imagenet")
    assert info.source == "untrained" and not info.pretrained
    assert "untrained" in info.notice and checkpoints.WEIGHTS_ENV in info.notice and "online" in info.notice
    assert len(info.classes) == 1000 and info.classes[0] == "tench"
    assert not model.training


def test_imagenet_weights_come_from_the_torch_hub_cache():
    reference = build("alexnet")
    path = checkpoints.imagenet_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model, info = load("alexnet", "imagenet")
    assert info.source == "imagenet" and info.notice == ""
    torch.testing.assert_close(model.features[0].weight, reference.features[0].weight)


def test_imagenet_weights_from_the_environment_variable(tmp_path, monkeypatch):
    reference = build("alexnet")
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    monkeypatch.setenv(checkpoints.WEIGHTS_ENV, str(path))
    model, info = load("alexnet", "imagenet")
    assert info.source == "imagenet"
    torch.testing.assert_close(model.classifier[6].bias, reference.classifier[6].bias)


def test_broken_environment_file_falls_back_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    _, info = load("alexnet", "imagenet")
    assert info.source == "untrained" and "does not name a file" in info.notice
    assert str(tmp_path) not in info.notice  # visitors of a shared server never see its paths


def test_imagenet_weights_only_exist_for_alexnet():
    with pytest.raises(ValueError, match="only"):
        load("alexnet_compact", "imagenet")
    model, info = load("alexnet_compact", None)
    assert info.source == "untrained"


def _trained(name="alexnet_compact", classes=("cat", "dog", "cup")):
    torch.manual_seed(0)
    return build(name, num_classes=len(classes)).eval(), list(classes)


def test_safetensors_round_trip_keeps_predictions_and_class_names(tmp_path):
    model, classes = _trained()
    path = save_checkpoint(model, tmp_path / "mine.safetensors", variant="alexnet_compact", classes=classes)
    loaded, info = load("alexnet_compact", path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert info.source == "file" and info.classes == tuple(classes) and "mine.safetensors" in info.description


def test_pt_files_plain_or_with_class_names(tmp_path):
    model, classes = _trained()
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    _, info = load("alexnet_compact", plain)
    assert info.classes == ("class 0", "class 1", "class 2")
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": model.state_dict(), "classes": classes}, wrapped)
    _, info = load("alexnet_compact", wrapped)
    assert info.classes == tuple(classes)


def test_wrong_keys_are_refused(tmp_path):
    model, _ = _trained()
    state = model.state_dict()
    state["features.99.weight"] = state.pop("features.0.weight")
    path = tmp_path / "renamed.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="missing features.0.weight; unexpected features.99.weight"):
        load("alexnet_compact", path)


def test_weights_of_another_variant_are_refused(tmp_path):
    model, classes = _trained("alexnet")
    path = save_checkpoint(model, tmp_path / "big.safetensors", variant="alexnet", classes=classes)
    with pytest.raises(ValueError, match="do not fit alexnet_compact"):
        load("alexnet_compact", path)


def test_wrong_shapes_are_refused(tmp_path):
    model, _ = _trained()
    state = model.state_dict()
    state["features.3.weight"] = torch.zeros(128, 48, 3, 3)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"features.3.weight has shape \(128, 48, 3, 3\)"):
        load("alexnet_compact", path)


def test_nan_weights_are_refused(tmp_path):
    model, _ = _trained()
    state = model.state_dict()
    state["classifier.3.bias"][5] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="classifier.3.bias contains NaN"):
        load("alexnet_compact", path)


def test_class_names_must_match_the_outputs(tmp_path):
    model, _ = _trained()
    path = tmp_path / "names.safetensors"
    save_file(model.state_dict(), str(path), metadata={"classes": json.dumps(["a", "b"])})
    with pytest.raises(ValueError, match="2 class names for 3 outputs"):
        load("alexnet_compact", path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_files_are_refused(tmp_path, suffix):
    model, classes = _trained()
    path = tmp_path / f"whole{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), path)
    else:
        save_checkpoint(model, path, variant="alexnet_compact", classes=classes)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError):
        load("alexnet_compact", cut)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"features.0.weight": _Exploit(marker)}, handle)
    torch.save({"state_dict": _Exploit(marker)}, tmp_path / "evil2.pth")
    for candidate in (path, tmp_path / "evil2.pth"):
        with pytest.raises(ValueError, match="never code"):
            load("alexnet_compact", candidate)
    assert not marker.exists()


def test_other_file_types_are_refused(tmp_path):
    path = tmp_path / "weights.pkl"
    path.write_bytes(b"whatever")
    with pytest.raises(ValueError, match=r"\.safetensors, \.pt or \.pth"):
        load("alexnet_compact", path)


def test_user_checkpoints_find_their_variant(tmp_path):
    model, classes = _trained("alexnet2012", ("a", "b"))
    with_metadata = save_checkpoint(model, tmp_path / "m.safetensors", variant="alexnet2012", classes=classes)
    loaded, info = checkpoints.load_user_checkpoint(with_metadata)
    assert info.name == "alexnet2012" and info.classes == ("a", "b")
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    loaded, info = checkpoints.load_user_checkpoint(plain)
    assert info.name == "alexnet2012" and len(info.classes) == 2
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    junk = tmp_path / "junk.safetensors"
    save_file({"w": torch.zeros(3)}, str(junk))
    with pytest.raises(ValueError, match="fit none of the AlexNet variants"):
        checkpoints.load_user_checkpoint(junk)


def test_a_compressed_pt_that_would_expand_hugely_is_refused_before_loading(tmp_path):
    import zipfile

    plain = tmp_path / "plain.pt"
    torch.save({"features.0.weight": torch.zeros(2_000_000)}, plain)  # 8 MB of zeros
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry.filename))
    assert bomb.stat().st_size < plain.stat().st_size / 50
    with pytest.raises(ValueError, match="compressed entries"):
        load("alexnet_compact", bomb)


def test_odd_keys_and_layouts_are_refused_with_a_message(tmp_path):
    model, _ = _trained()
    state = model.state_dict()
    int_keys = tmp_path / "ints.pt"
    torch.save({0: state["features.0.weight"], "features.0.bias": state["features.0.bias"]}, int_keys)
    with pytest.raises(ValueError, match="other than text"):
        checkpoints.load_user_checkpoint(int_keys)
    sparse = dict(state)
    sparse["features.0.bias"] = sparse["features.0.bias"].to_sparse()
    path = tmp_path / "sparse.pt"
    torch.save(sparse, path)
    with pytest.raises(
        ValueError, match="features.0.bias is stored in a torch.sparse_coo layout; weights must be plain dense"
    ):
        checkpoints.load_user_checkpoint(path)


# --- sized from the headers, before anything is read or built ---------------------------------------------


@pytest.fixture
def limits(monkeypatch):
    """Set some limits for one test (both modules that enforce checkpoint limits read them)."""
    from playground.config import Limits
    from playground.weights import files as weight_files

    def use(**values):
        chosen = Limits(**values)
        monkeypatch.setattr(checkpoints, "get_limits", lambda: chosen)
        monkeypatch.setattr(weight_files, "get_limits", lambda: chosen)

    return use


@pytest.fixture
def never_read(monkeypatch):
    """Fail the test if any value of a weights file is read."""
    from playground.weights import files as weight_files

    def refuse(self, keys):
        raise AssertionError("a value was read")

    monkeypatch.setattr(weight_files.WeightsFile, "values", refuse)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_half_precision_weights_are_sized_as_float32_before_they_are_read(tmp_path, suffix, limits, never_read):
    model, _ = _trained()
    state = {key: value.half() for key, value in model.state_dict().items()}
    path = tmp_path / f"half{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    as_float32 = 4 * sum(v.numel() for v in state.values())
    limits(max_checkpoint_bytes=as_float32 - 1)  # the file itself (2 bytes a value) is well under it
    assert path.stat().st_size < as_float32 / 1.9
    with pytest.raises(ValueError, match=r"take \d+ MB as float32; the limit is"):
        checkpoints.load_user_checkpoint(path)


def test_half_precision_weights_load_widened(tmp_path):
    model, _ = _trained()
    path = tmp_path / "half.safetensors"
    save_file({key: value.to(torch.bfloat16) for key, value in model.state_dict().items()}, str(path))
    loaded, _ = checkpoints.load_user_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(loaded.features[0].weight, model.features[0].weight.to(torch.bfloat16).float())


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_unsupported_number_types_get_a_sentence(tmp_path, suffix):
    model, _ = _trained()
    state = model.state_dict()
    state["features.0.weight"] = state["features.0.weight"].to(torch.float8_e4m3fn)
    path = tmp_path / f"fp8{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    with pytest.raises(
        ValueError, match="features.0.weight holds float8_e4m3fn values; weights must be one of float32"
    ):
        checkpoints.load_user_checkpoint(path)


def test_a_final_layer_of_too_many_classes_times_features_is_refused_unread(tmp_path, limits, never_read):
    model, _ = _trained()  # 3 classes x 2,048 features
    path = save_checkpoint(model, tmp_path / "wide.safetensors", variant="alexnet_compact", classes=["a", "b", "c"])
    limits(max_checkpoint_head_values=3 * 2048 - 1)
    with pytest.raises(ValueError, match="3 classes x 2,048 features; at most 6,143 weights"):
        checkpoints.load_user_checkpoint(path)


def test_the_caller_is_told_the_size_before_anything_is_read(tmp_path, never_read):
    model, _ = _trained()
    path = tmp_path / "mine.pt"
    torch.save(model.state_dict(), path)
    told = []

    def admit(size):
        told.append(size)
        raise ValueError("no room")

    with pytest.raises(ValueError, match="no room"):
        checkpoints.load_user_checkpoint(path, admit=admit)
    assert told == [4 * sum(p.numel() for p in model.parameters())]


def test_the_loaded_model_holds_the_files_tensors_not_a_copy(tmp_path, monkeypatch):
    """Built on the meta device and handed the file's tensors: no second copy, no initialisation."""
    from playground.weights import files as weight_files

    model, _ = _trained()
    path = tmp_path / "mine.pt"
    torch.save(model.state_dict(), path)
    read = {}
    original = weight_files.WeightsFile.values
    monkeypatch.setattr(
        weight_files.WeightsFile, "values", lambda self, keys: read.update(original(self, keys)) or read
    )
    loaded, _ = checkpoints.load_user_checkpoint(path)
    assert loaded.classifier[6].weight.data_ptr() == read["classifier.6.weight"].data_ptr()
    torch.testing.assert_close(loaded.classifier[6].weight, model.classifier[6].weight)


def test_problems_with_the_imagenet_weights_name_no_server_path(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "0")
    monkeypatch.setenv("TORCH_HOME", "/proc/nope")  # nothing can be created there

    def unreachable(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    _, info = load("alexnet", "imagenet")
    assert info.source == "untrained" and "Last problem" in info.notice
    assert "/proc" not in info.notice and "nope" not in info.notice
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))  # a cached file that is damaged
    cached = checkpoints.imagenet_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 not really a zip")
    _, info = load("alexnet", "imagenet")
    assert "Last problem" in info.notice and str(tmp_path) not in info.notice, info.notice


# --- networks built with options, and checkpoints saved before options existed -----------------------


def test_checkpoints_saved_before_options_existed_still_load(tmp_path):
    from tests.test_models import TODAY

    for name, make in TODAY.items():
        torch.manual_seed(1)
        today = make(3).eval()
        # Exactly what the code before options wrote: class names and variant in the metadata, nothing else.
        path = tmp_path / f"{name}.safetensors"
        state = {k: v.contiguous() for k, v in today.state_dict().items()}
        save_file(state, str(path), metadata={"classes": json.dumps(["a", "b", "c"]), "variant": name})
        for loaded, info in (checkpoints.load_user_checkpoint(path), load(name, path)):
            x = torch.randn(1, 3, 224, 224)
            with torch.no_grad():
                torch.testing.assert_close(loaded(x), today(x))
            assert info.classes == ("a", "b", "c") and repr(loaded.features) == repr(today.features)


@pytest.mark.parametrize(
    "options",
    [{"activation": "tanh"}, {"lrn": True, "pooling": "plain"}, {"batch_norm": True, "drop_conv": 3}, {"dropout": 0.0}],
)
def test_a_network_built_with_options_is_rebuilt_from_its_metadata(tmp_path, options):
    torch.manual_seed(0)
    model = build("alexnet_compact", num_classes=2, **options).eval()
    path = save_checkpoint(
        model, tmp_path / "m.safetensors", variant="alexnet_compact", classes=["x", "y"], options=options
    )
    loaded, info = checkpoints.load_user_checkpoint(path)
    assert repr(loaded) == repr(model) and not loaded.training
    assert "alexnet_compact (" in info.description and next(iter(options)) in info.description
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    again, _ = load("alexnet_compact", path)
    assert repr(again) == repr(model)


def test_metadata_that_disagrees_with_the_file_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    model = build("alexnet_compact", num_classes=2)
    path = save_checkpoint(model, tmp_path / "m.safetensors", variant="alexnet_compact", classes=["x", "y"])

    def with_metadata(name, **extra):
        target = tmp_path / name
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(target), metadata={"variant": "alexnet_compact", **extra})
        return target

    built = []
    original = checkpoints.build

    def spy(*args, **kwargs):
        built.append(torch.empty(0).device.type)  # "meta" inside the shape check, "cpu" for a real model
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "build", spy)
    claims_a_removed_conv = with_metadata("dropped.safetensors", options=json.dumps({"drop_conv": 3}))
    with pytest.raises(
        ValueError, match=r"do not fit alexnet_compact built with drop_conv=3 \(as the file's metadata says\)"
    ):
        checkpoints.load_user_checkpoint(claims_a_removed_conv)
    claims_batch_norm = with_metadata("bn.safetensors", options=json.dumps({"batch_norm": True}))
    with pytest.raises(ValueError, match="missing features.1.bias"):
        checkpoints.load_user_checkpoint(claims_batch_norm)
    assert built and set(built) == {"meta"}  # only shapes were ever built
    for options, message in (
        ('{"activation": "gelu"}', "cannot be built: Model options: activation is one of relu, tanh, sigmoid"),
        ('{"layers": 100}', "cannot be built: Unknown model option layers"),
        ('["tanh"]', "not a set of named values"),
        ("{not json", "model options are not valid JSON"),
    ):
        with pytest.raises(ValueError, match=message):
            checkpoints.load_user_checkpoint(with_metadata("odd.safetensors", options=options))
    monkeypatch.setattr(checkpoints, "build", original)
    loaded, _ = checkpoints.load_user_checkpoint(path)  # the file as saved loads
    mlp = build("mlp", num_classes=2, input_shape=(3, 8, 8))
    target = tmp_path / "mlp.safetensors"
    save_file(
        {k: v.contiguous() for k, v in mlp.state_dict().items()},
        str(target),
        metadata={"variant": "mlp", "input_shape": "[3, 8, 8]", "options": '{"activation": "tanh"}'},
    )
    with pytest.raises(ValueError, match="baseline, but its metadata records AlexNet options"):
        checkpoints.load_user_checkpoint(target)


def test_pt_files_may_carry_options_too(tmp_path):
    model = build("alexnet_compact", num_classes=2, activation="tanh")
    path = tmp_path / "tanh.pt"
    torch.save({"state_dict": model.state_dict(), "classes": ["x", "y"], "options": {"activation": "tanh"}}, path)
    loaded, _ = checkpoints.load_user_checkpoint(path)
    assert _tanh_count(loaded) == 7


def _tanh_count(model):
    return sum(isinstance(m, torch.nn.Tanh) for m in model.modules())
