"""Where a model's weights come from: torchvision's ImageNet file, or a user's checkpoint, loaded safely.

Nothing in a weights file is ever executed: checkpoints load as safetensors, or through
``torch.load(weights_only=True)``, and their keys, shapes and values are checked against the variant
before a model takes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import zipfile
from pathlib import Path

import torch
from torch import nn

from playground import downloads
from playground.config import get_limits
from playground.models import BASELINES, IMAGENET_WEIGHTS, MODELS, build, imagenet_classes, parse_options

WEIGHTS_ENV = "PLAYGROUND_ALEXNET_WEIGHTS"  # a local copy of torchvision's alexnet-owt-7be5be79.pth


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Where a model's weights came from, in words a learner understands."""

    name: str  # the variant
    source: str  # "imagenet", "untrained" or "file"
    description: str  # one sentence for the UI
    classes: tuple[str, ...]  # names of the outputs, in order
    notice: str = ""  # set when the weights are not what was asked for, with how to fix it

    @property
    def pretrained(self) -> bool:
        return self.source in ("imagenet", "file")


def _generic_classes(n: int) -> tuple[str, ...]:
    return imagenet_classes() if n == 1000 else tuple(f"class {i}" for i in range(n))


def load(
    name: str = "alexnet", weights: str | os.PathLike | None = "imagenet", *, generator: torch.Generator | None = None
) -> tuple[nn.Module, ModelInfo]:
    """Build a variant and give it weights; the model comes back in eval mode.

    Args:
        name: a key of :data:`playground.models.MODELS`.
        weights: ``"imagenet"`` (torchvision's IMAGENET1K_V1: local cache, then the file named by
            ``PLAYGROUND_ALEXNET_WEIGHTS``, then a download unless ``PLAYGROUND_OFFLINE=1``),
            ``None`` for an untrained model, or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` file.
        generator: where an untrained model's random weights come from (see :func:`models.build`).

    Returns:
        ``(model, info)``. When ImageNet weights cannot be had, the model is untrained and
        ``info.notice`` says so and how to get them.

    Raises:
        ValueError: unknown variant, ImageNet weights asked for a variant that has none, or a weights
            file that is not a valid checkpoint for the variant (it is never executed).
    """
    if weights is None:
        model = build(name, generator=generator)
        return model.eval(), ModelInfo(
            name, "untrained", "untrained: random weights, as before any training", imagenet_classes()
        )
    if isinstance(weights, str) and weights == "imagenet":
        if name not in MODELS or MODELS[name].weights is None:
            raise ValueError(f"ImageNet weights are published for 'alexnet' only, not {name!r}.")
        return _load_imagenet(generator)
    path = Path(weights)
    model, classes = load_checkpoint(name, path)
    info = ModelInfo(name, "file", f"weights from your file {path.name} ({len(classes)} classes)", classes)
    return model.eval(), info


# --- torchvision's ImageNet weights ----------------------------------------------------------------------

_download_lock = threading.Lock()


def imagenet_weights_path() -> Path:
    """Where torchvision caches the ImageNet weights (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(IMAGENET_WEIGHTS.url)


def how_to_get_imagenet_weights() -> str:
    # Said to visitors of a shared server too, so it names torch's cache by its variable, not by this
    # machine's paths.
    name = imagenet_weights_path().name
    return (
        "To get them: start the app once on a machine that is online (they download automatically, 233 MB); "
        f"or copy torchvision's file {name} into $TORCH_HOME/hub/checkpoints/ (torch's cache); "
        f"or set {WEIGHTS_ENV}=/path/to/{name}."
    )


def _load_imagenet(generator: torch.Generator | None = None) -> tuple[nn.Module, ModelInfo]:
    classes = imagenet_classes()
    model = build("alexnet", generator=generator)
    problem = ""
    for source in (_from_cache, _from_env, _download):
        try:
            state = source()
        except (OSError, ValueError, RuntimeError) as error:
            problem = str(error)
            continue
        if state is not None:
            model.load_state_dict(state)
            return model.eval(), ModelInfo(
                "alexnet", "imagenet", "pretrained on ImageNet (torchvision IMAGENET1K_V1)", classes
            )
    notice = (
        "The pretrained ImageNet weights are not available here, so this AlexNet is untrained: its filters "
        "are random noise and its predictions are guesses. " + how_to_get_imagenet_weights()
    )
    if problem:
        notice += f" (Last problem: {problem})"
    return model.eval(), ModelInfo("alexnet", "untrained", "untrained: ImageNet weights unavailable", classes, notice)


def _from_cache():
    path = imagenet_weights_path()
    return _validated_state("alexnet", _read_state(path))[0] if path.is_file() else None


def _from_env():
    value = os.environ.get(WEIGHTS_ENV)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{WEIGHTS_ENV} does not name a file")
    return _validated_state("alexnet", _read_state(path))[0]


def _download():
    if downloads.offline():
        return None
    target = imagenet_weights_path()
    with _download_lock:
        if not target.is_file():
            # torchvision names its files with the first hex digits of their SHA-256.
            downloads.download(IMAGENET_WEIGHTS.url, target, sha256_prefix=target.stem.split("-")[-1])
    return _from_cache()


# --- users' checkpoints ----------------------------------------------------------------------------------


def load_checkpoint(name: str, path: Path) -> tuple[nn.Module, tuple[str, ...]]:
    """Load a user's weights file for variant ``name``; nothing in the file is ever executed.

    Raises:
        ValueError: wrong extension, unreadable file, wrong keys or shapes, or non-finite values.
    """
    state, metadata = _read_state(path)
    state, num_classes = _validated_state(name, (state, metadata))
    classes = metadata.get("classes")
    if classes is None:
        classes = _generic_classes(num_classes)
    model = build(name, num_classes=num_classes, **metadata.get("options", {}))
    model.load_state_dict(state)
    return model, tuple(classes)


def load_user_checkpoint(path: str | os.PathLike, variant: str | None = None) -> tuple[nn.Module, ModelInfo]:
    """Load a user's checkpoint, working out which variant it fits when ``variant`` is None.

    The variant named in a safetensors file's metadata is tried first, then every variant in turn; a
    network built with options (``models.Options``: tanh, no LRN, a conv removed, ...) is rebuilt with the
    options its metadata records, once they agree with the file's own tensors.

    Raises:
        ValueError: the file fits no variant (the message says why it did not fit the first one tried).
    """
    path = Path(path)
    if variant is not None:
        return load(variant, path)
    state, metadata = _read_state(path)
    named = metadata.get("variant")
    if named in BASELINES:
        return _load_baseline(path, named, state, metadata)
    candidates = ([named] if named in MODELS else []) + [name for name in MODELS if name != named]
    first_error = None
    for name in candidates:
        try:
            state_ok, num_classes = _validated_state(name, (state, metadata))
        except _KeyMismatch as error:
            first_error = first_error or error
            continue
        except ValueError as error:  # the names fit this variant, the values do not: that is the news
            raise ValueError(f"These weights have {name}'s layout but cannot be used: {error}") from None
        options = metadata.get("options", {})
        model = build(name, num_classes=num_classes, **options)
        model.load_state_dict(state_ok)
        classes = tuple(metadata.get("classes") or _generic_classes(num_classes))
        built = f"{name} ({describe_options(options)})" if options else name
        info = ModelInfo(name, "file", f"{built} with weights from {path.name} ({num_classes} classes)", classes)
        return model.eval(), info
    raise ValueError(f"These weights fit none of the AlexNet variants. {first_error}")


def _load_baseline(path: Path, name: str, state, metadata) -> tuple[nn.Module, ModelInfo]:
    try:
        input_shape = tuple(int(d) for d in json.loads(metadata.get("input_shape", "null")))
        assert len(input_shape) == 3 and all(0 < d <= 4096 for d in input_shape)
    except (TypeError, ValueError, AssertionError):
        raise ValueError(f"{path.name} is a {name} baseline without a valid input shape in its metadata.") from None
    if metadata.get("options"):
        raise ValueError(f"{path.name} is a {name} baseline, but its metadata records AlexNet options; it is refused.")
    weights = [key for key in state if key.endswith(".weight") and key.split(".")[0].isdigit()]
    num_classes = int(state[max(weights, key=lambda k: int(k.split(".")[0]))].shape[0]) if weights else 0
    if not 1 <= num_classes <= get_limits().max_checkpoint_classes:
        raise ValueError(f"{path.name} does not hold {name} weights.")
    # The metadata says how large a model to build; the file's own tensors must agree before anything is
    # allocated (a 2 KB file could otherwise claim a 3 x 1000 x 1000 input and a multi-gigabyte layer).
    with torch.device("meta"):
        reference = build(name, num_classes=num_classes, input_shape=input_shape).state_dict()
    if set(reference) != set(state) or any(tuple(state[k].shape) != tuple(v.shape) for k, v in reference.items()):
        raise ValueError(f"These weights do not fit the {name} baseline for inputs {input_shape}.")
    model = build(name, num_classes=num_classes, input_shape=input_shape)  # no larger than the file's tensors
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise ValueError("These weights contain NaN or infinite values, so they cannot be used.")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    classes = tuple(metadata.get("classes") or _generic_classes(num_classes))
    return model.eval(), ModelInfo(name, "file", f"{name} baseline from {path.name} ({num_classes} classes)", classes)


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = handle.metadata() or {}
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not iterable)
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(f"{path.name} is not a readable safetensors file ({error}).") from None
        return state, _parse_metadata(metadata)
    if suffix in (".pt", ".pth"):
        _check_zip_container(path)
        try:
            # weights_only=True: only tensors and plain containers are rebuilt; a pickle that would run
            # code is refused instead of executed.
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many kinds for corrupt or hostile pickles
            raise ValueError(
                f"{path.name} could not be loaded as plain weights; only tensors are accepted, never code "
                f"({type(error).__name__})."
            ) from None
        metadata = {}
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            metadata = {key: value for key, value in obj.items() if key != "state_dict"}
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ValueError(f"{path.name} does not hold a dictionary of weight tensors.")
        if not all(isinstance(k, str) for k in obj):
            raise ValueError(f"{path.name} names its weights with something other than text.")
        _check_plain_tensors(path, obj)
        kept = {key: metadata[key] for key in ("classes", "options") if metadata.get(key) is not None}
        if "options" in kept:
            kept["options"] = _checked_options(kept["options"])
        return obj, kept
    raise ValueError(f"Checkpoints must be .safetensors, .pt or .pth files, not {path.suffix or 'no extension'}.")


def _check_plain_tensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Every tensor must own exactly its bytes: dense, contiguous, filling its storage, sharing it with none.

    A pickle can describe a tensor as a view: a 100,000 x 4,096 "weight" that expands one stored number
    (stride 0), or many weights over one storage. Such a file is a few kilobytes, and the first copy of
    its tensors would allocate gigabytes. torch.save never writes them for a model's weights.
    """
    storages = set()
    for key, tensor in state.items():
        if tensor.layout != torch.strided:
            raise ValueError(f"{key} is stored in a {tensor.layout} layout; weights must be plain dense tensors.")
        storage = tensor.untyped_storage()
        owns = tensor.is_contiguous() and tensor.storage_offset() == 0
        if not owns or storage.nbytes() != tensor.numel() * tensor.element_size() or storage.data_ptr() in storages:
            raise ValueError(f"{path.name} stores {key} as a view of other data, which plain weights never are.")
        storages.add(storage.data_ptr())


def _check_zip_container(path: Path) -> None:
    """Refuse a zip-format .pt whose entries are compressed or would expand far beyond the file.

    torch.save writes uncompressed (stored) entries, so its files never expand; a hand-made file with
    deflated entries could turn a few hundred kilobytes into many gigabytes inside torch.load.
    """
    if not zipfile.is_zipfile(path):
        return  # the legacy format: tensors are stored raw, so the file's size bounds them
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ValueError(f"{path.name} is a damaged checkpoint archive.") from None
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise ValueError(f"{path.name} has compressed entries; torch.save never writes those, so it is refused.")
    if sum(entry.file_size for entry in entries) > get_limits().max_checkpoint_expansion * max(path.stat().st_size, 1):
        raise ValueError(f"{path.name} claims to hold far more data than its size; it is refused.")


def _parse_metadata(metadata: dict[str, str]) -> dict:
    """safetensors metadata is str -> str; class names are stored as a JSON list under "classes"."""
    parsed = {}
    if "classes" in metadata:
        try:
            classes = json.loads(metadata["classes"])
        except json.JSONDecodeError:
            raise ValueError("The checkpoint's class names are not valid JSON.") from None
        parsed["classes"] = classes
    for key in ("variant", "config", "metrics", "input_shape"):
        if key in metadata:
            parsed[key] = metadata[key]
    if "options" in metadata:
        try:
            options = json.loads(metadata["options"])
        except json.JSONDecodeError:
            raise ValueError("The checkpoint's model options are not valid JSON.") from None
        parsed["options"] = _checked_options(options)
    return parsed


def _checked_options(options) -> dict:
    """The model options a checkpoint records, as build() takes them; a sentence when they are not valid."""
    if not isinstance(options, dict):
        raise ValueError("The checkpoint's model options are not a set of named values.")
    try:
        return parse_options(options).changed()
    except (ValueError, TypeError) as error:
        raise ValueError(f"The checkpoint's metadata records model options that cannot be built: {error}") from None


def describe_options(options: dict) -> str:
    """A network's options in a few words: ``activation=tanh, drop_conv=3``."""
    return ", ".join(f"{key}={value}" for key, value in options.items())


class _KeyMismatch(ValueError):
    """The weights' names belong to another variant (as opposed to right names with bad values)."""


def _validated_state(name: str, state_and_metadata) -> tuple[dict[str, torch.Tensor], int]:
    """Check keys, shapes and values against variant ``name``; the class count comes from the file."""
    state, metadata = state_and_metadata
    options = metadata.get("options", {})  # already checked to be buildable (see _checked_options)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = build(name, num_classes=1, **options).state_dict()
    head = [key for key in reference if key.startswith("classifier.")][-2:]  # final weight and bias
    if not all(isinstance(key, str) for key in state):
        raise ValueError("These weights are named with something other than text.")
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}")
        described = f"{name} built with {describe_options(options)} (as the file's metadata says)" if options else name
        raise _KeyMismatch(f"These weights do not fit {described}: {'; '.join(details)}.")
    num_classes = int(state[head[0]].shape[0]) if state[head[0]].ndim == 2 else -1
    if not 1 <= num_classes <= get_limits().max_checkpoint_classes:
        raise ValueError(f"The final layer of these weights has an impossible shape {tuple(state[head[0]].shape)}.")
    for key, expected in reference.items():
        shape = tuple(expected.shape)
        if key in head:
            shape = (num_classes,) + shape[1:]
        tensor = state[key]
        if tensor.layout != torch.strided:
            raise ValueError(f"{key} is stored in a {tensor.layout} layout; weights must be plain dense tensors.")
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"These weights do not fit {name}: {key} has shape {tuple(tensor.shape)}, expected {shape}."
            )
        if not expected.is_floating_point():  # a counter, such as batch norm's num_batches_tracked
            if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                raise ValueError(f"{key} holds {tensor.dtype} values; it counts, so it must hold whole numbers.")
            continue
        if not tensor.is_floating_point():
            raise ValueError(f"{key} holds {tensor.dtype} values; weights must be floating point.")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{key} contains NaN or infinite values, so these weights cannot be used.")
    classes = metadata.get("classes")
    if classes is not None and (
        not isinstance(classes, list) or len(classes) != num_classes or not all(isinstance(c, str) for c in classes)
    ):
        raise ValueError(
            f"The checkpoint lists {len(classes) if isinstance(classes, list) else 'no valid'} class names for {num_classes} outputs."
        )
    return {key: state[key].to(reference[key].dtype) for key in reference}, num_classes


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    variant: str,
    classes,
    extra: dict | None = None,
    options: dict | None = None,
) -> Path:
    """Write ``model``'s weights as safetensors with the class names and variant in the metadata, and the
    model options it was built with (those that differ from the defaults), so loading rebuilds it."""
    from safetensors.torch import save_file

    metadata = {"classes": json.dumps(list(classes)), "variant": variant}
    if options:
        metadata["options"] = json.dumps(parse_options(options).changed())
    metadata.update({key: json.dumps(value) for key, value in (extra or {}).items()})
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return Path(path)
