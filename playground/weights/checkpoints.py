"""Where a model's weights come from: torchvision's ImageNet file, or a user's checkpoint, loaded safely.

Nothing in a weights file is ever executed (files are read by :mod:`playground.weights.files`), and a file
is checked against the variant from its headers (names, shapes, types, its size once in float32) before
any value is read or any model built; values are then checked to be finite. A model is built on the meta
device and takes the file's tensors as its own, so loading costs the weights' float32 size once. A network
built with options (:class:`playground.models.Options`) is rebuilt with the options its metadata records,
checked against the file's shapes like everything else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from playground import downloads
from playground.config import get_limits
from playground.models import BASELINES, IMAGENET_WEIGHTS, MODELS, build, imagenet_classes, parse_options
from playground.weights.files import FLOAT_TYPES, WeightsFile, open_weights

WEIGHTS_ENV = "PLAYGROUND_ALEXNET_WEIGHTS"  # a local copy of torchvision's alexnet-owt-7be5be79.pth


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Where a model's weights came from, in words a learner understands."""

    name: str  # the variant
    source: str  # "imagenet", "untrained" or "file"
    description: str  # one sentence for the UI
    classes: tuple[str, ...]  # names of the outputs, in order
    notice: str = ""  # set when the weights are not what was asked for, with how to fix it
    options: tuple[tuple[str, object], ...] = ()  # the model options it was built with (those not the defaults)

    @property
    def pretrained(self) -> bool:
        return self.source in ("imagenet", "file")


def _generic_classes(n: int) -> tuple[str, ...]:
    return imagenet_classes() if n == 1000 else tuple(f"class {i}" for i in range(n))


Admit = Callable[[int], None]  # told a model's float32 weight bytes before it is built; raises ValueError to refuse


def load(
    name: str = "alexnet",
    weights: str | os.PathLike | None = "imagenet",
    *,
    generator: torch.Generator | None = None,
    admit: Admit | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build a variant and give it weights; the model comes back in eval mode.

    Args:
        name: a key of :data:`playground.models.MODELS`.
        weights: ``"imagenet"`` (torchvision's IMAGENET1K_V1: local cache, then the file named by
            ``PLAYGROUND_ALEXNET_WEIGHTS``, then a download unless ``PLAYGROUND_OFFLINE=1``),
            ``None`` for an untrained model, or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` file.
        generator: where an untrained model's random weights come from (see :func:`models.build`).
        admit: for a file, called with the weights' float32 bytes once they are known from its headers,
            before any value is read (a model store makes room, or refuses, then).

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
    model, classes = load_checkpoint(name, path, admit=admit)
    options = tuple(sorted(_options(open_weights(path)).items()))
    info = ModelInfo(name, "file", f"weights from your file {path.name} ({len(classes)} classes)", classes,
                     options=options)  # fmt: skip
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
    problem = ""
    for source in (_from_cache, _from_env, _download):
        try:
            state = source()
        except ValueError as error:  # our own sentences, which name no server path
            problem = str(error)
            continue
        except (OSError, RuntimeError):  # the system's words may name paths: visitors see none of them
            problem = "the weights file could not be read"
            continue
        if state is not None:
            model = _assembled("alexnet", 1000, state)
            return model, ModelInfo(
                "alexnet", "imagenet", "pretrained on ImageNet (torchvision IMAGENET1K_V1)", classes
            )
    notice = (
        "The pretrained ImageNet weights are not available here, so this AlexNet is untrained: its filters "
        "are random noise and its predictions are guesses. " + how_to_get_imagenet_weights()
    )
    if problem:
        notice += f" (Last problem: {problem}.)"
    model = build("alexnet", generator=generator)
    return model.eval(), ModelInfo("alexnet", "untrained", "untrained: ImageNet weights unavailable", classes, notice)


def _from_cache():
    path = imagenet_weights_path()
    return _state("alexnet", open_weights(path))[0] if path.is_file() else None


def _from_env():
    value = os.environ.get(WEIGHTS_ENV)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{WEIGHTS_ENV} does not name a file")
    return _state("alexnet", open_weights(path))[0]


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


def load_checkpoint(name: str, path: Path, *, admit: Admit | None = None) -> tuple[nn.Module, tuple[str, ...]]:
    """Load a user's weights file for variant ``name``; nothing in the file is ever executed.

    Raises:
        ValueError: wrong extension, unreadable file, wrong keys, shapes or types, too large, or non-finite
            values.
    """
    file = open_weights(path)
    state, num_classes = _state(name, file, admit)
    classes = file.metadata.get("classes")
    model = _assembled(name, num_classes, state, options=_options(file))
    return model, tuple(classes or _generic_classes(num_classes))


def load_user_checkpoint(
    path: str | os.PathLike, variant: str | None = None, *, admit: Admit | None = None
) -> tuple[nn.Module, ModelInfo]:
    """Load a user's checkpoint, working out which variant it fits when ``variant`` is None.

    The variant named in a safetensors file's metadata is tried first, then every variant in turn, each
    with the options the metadata records (tanh, no LRN, a conv removed, ...). ``admit`` is told the
    weights' float32 bytes before any value is read (see :func:`load`).

    Raises:
        ValueError: the file fits no variant (the message says why it did not fit the first one tried).
    """
    path = Path(path)
    if variant is not None:
        return load(variant, path, admit=admit)
    file = open_weights(path)
    named = file.metadata.get("variant")
    if named in BASELINES:
        return _load_baseline(file, named, admit)
    name, num_classes = _variant_of(file)
    state, _ = _state(name, file, admit, num_classes)
    options = _options(file)
    model = _assembled(name, num_classes, state, options=options)
    classes = tuple(file.metadata.get("classes") or _generic_classes(num_classes))
    built = f"{name} ({describe_options(options)})" if options else name
    info = ModelInfo(name, "file", f"{built} with weights from {file.name} ({num_classes} classes)", classes,
                     options=tuple(sorted(options.items())))  # fmt: skip
    return model, info


def check_convolutional_checkpoint(path: str | os.PathLike) -> tuple[str, int]:
    """Which AlexNet variant (and how many classes) a file's weights fit, from its headers alone: nothing is
    read, nothing is built.

    Raises:
        ValueError: an unreadable file, a pickle that is not plain tensors, or weights that fit no variant.
    """
    return _variant_of(open_weights(Path(path)))


def _variant_of(file: WeightsFile) -> tuple[str, int]:
    """The variant the file's names and shapes fit (the one its metadata names first), and its classes."""
    named = file.metadata.get("variant")
    candidates = ([named] if named in MODELS else []) + [name for name in MODELS if name != named]
    first_error = None
    for name in candidates:
        try:
            return name, _fit(name, file)
        except _KeyMismatch as error:
            first_error = first_error or error
            continue
        except ValueError as error:  # the names fit this variant, the values do not: that is the news
            raise ValueError(f"These weights have {name}'s layout but cannot be used: {error}") from None
    raise ValueError(f"These weights fit none of the AlexNet variants. {first_error}")


def _load_baseline(file: WeightsFile, name: str, admit: Admit | None) -> tuple[nn.Module, ModelInfo]:
    try:
        input_shape = tuple(int(d) for d in json.loads(file.metadata.get("input_shape", "null")))
        assert len(input_shape) == 3 and all(0 < d <= 4096 for d in input_shape)
    except (TypeError, ValueError, AssertionError):
        raise ValueError(f"{file.name} is a {name} baseline without a valid input shape in its metadata.") from None
    if file.metadata.get("options"):
        raise ValueError(f"{file.name} is a {name} baseline, but its metadata records AlexNet options; it is refused.")
    weights = [key for key in file.shapes if key.endswith(".weight") and key.split(".")[0].isdigit()]
    head = max(weights, key=lambda k: int(k.split(".")[0])) if weights else None
    num_classes = file.shapes[head][0] if head and len(file.shapes[head]) == 2 else 0
    if not 1 <= num_classes <= get_limits().max_checkpoint_classes:
        raise ValueError(f"{file.name} does not hold {name} weights.")
    # The metadata says how large a model to build; the file's own shapes must agree before anything is
    # allocated (a 2 KB file could otherwise claim a 3 x 1000 x 1000 input and a multi-gigabyte layer).
    reference = _reference(name, num_classes, input_shape)
    if set(reference) != set(file.shapes) or any(file.shapes[k] != shape for k, shape in reference.items()):
        raise ValueError(f"These weights do not fit the {name} baseline for inputs {input_shape}.")
    _check_types_and_size(file, reference, head)
    if admit:
        admit(file.float32_bytes(reference))
    model = _assembled(name, num_classes, file.values(reference), input_shape)
    classes = tuple(file.metadata.get("classes") or _generic_classes(num_classes))
    return model, ModelInfo(name, "file", f"{name} baseline from {file.name} ({num_classes} classes)", classes)


class _KeyMismatch(ValueError):
    """The weights' names belong to another variant (as opposed to right names with bad values)."""


def _options(file: WeightsFile) -> dict:
    """The model options a file's metadata records, as build() takes them; a sentence when they are not valid."""
    options = file.metadata.get("options", {})
    if not isinstance(options, dict):
        raise ValueError("The checkpoint's model options are not a set of named values.")
    try:
        return parse_options(options).changed()
    except (ValueError, TypeError) as error:
        raise ValueError(f"The checkpoint's metadata records model options that cannot be built: {error}") from None


def describe_options(options: dict) -> str:
    """A network's options in a few words: ``activation=tanh, drop_conv=3``."""
    return ", ".join(f"{key}={value}" for key, value in options.items())


def _reference(name: str, num_classes: int, input_shape=None, options=None) -> dict[str, tuple[int, ...]]:
    """The shapes a model of this variant has: built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        model = build(name, num_classes=num_classes, input_shape=input_shape, **(options or {}))
    return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}


def _counters(name: str, options: dict) -> set[str]:
    """The buffers that count rather than weigh (batch norm's num_batches_tracked): whole numbers."""
    with torch.device("meta"):
        model = build(name, num_classes=1, **options)
    return {key for key, tensor in model.state_dict().items() if not tensor.is_floating_point()}


def _fit(name: str, file: WeightsFile) -> int:
    """Check names, shapes, types and size against variant ``name`` from the headers; the class count
    comes from the file. Nothing is read."""
    options = _options(file)
    reference = _reference(name, 1, options=options)
    head = [key for key in reference if key.startswith("classifier.")][-2:]  # final weight and bias
    missing = sorted(set(reference) - set(file.shapes))
    unexpected = sorted(set(file.shapes) - set(reference))
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}")
        described = f"{name} built with {describe_options(options)} (as the file's metadata says)" if options else name
        raise _KeyMismatch(f"These weights do not fit {described}: {'; '.join(details)}.")
    head_shape = file.shapes[head[0]]
    num_classes = head_shape[0] if len(head_shape) == 2 else -1
    if not 1 <= num_classes <= get_limits().max_checkpoint_classes:
        raise ValueError(f"The final layer of these weights has an impossible shape {head_shape}.")
    for key, shape in reference.items():
        if key in head:
            shape = (num_classes,) + shape[1:]
        if file.shapes[key] != shape:
            raise ValueError(f"These weights do not fit {name}: {key} has shape {file.shapes[key]}, expected {shape}.")
    _check_types_and_size(file, reference, head[0], _counters(name, options))
    classes = file.metadata.get("classes")
    if classes is not None and (
        not isinstance(classes, list) or len(classes) != num_classes or not all(isinstance(c, str) for c in classes)
    ):
        raise ValueError(
            f"The checkpoint lists {len(classes) if isinstance(classes, list) else 'no valid'} class names for {num_classes} outputs."
        )
    return num_classes


def _check_types_and_size(file: WeightsFile, keys, head: str, counters=frozenset()) -> None:
    limits = get_limits()
    for key in keys:
        if key in counters:
            if not file.types[key].startswith(("int", "uint")):
                raise ValueError(f"{key} holds {file.types[key]} values; it counts, so it must hold whole numbers.")
            continue
        if file.types[key] not in FLOAT_TYPES:
            kinds = ", ".join(FLOAT_TYPES)
            raise ValueError(f"{key} holds {file.types[key]} values; weights must be one of {kinds}.")
    classes, features = file.shapes[head][0], file.shapes[head][-1]
    if classes * features > limits.max_checkpoint_head_values:
        raise ValueError(
            f"The final layer has {classes:,} classes x {features:,} features; at most "
            f"{limits.max_checkpoint_head_values:,} weights are accepted there."
        )
    size = file.float32_bytes(keys)
    if size > limits.max_checkpoint_bytes:
        raise ValueError(
            f"These weights take {size / 2**20:,.0f} MB as float32; the limit is "
            f"{limits.max_checkpoint_bytes / 2**20:,.0f} MB."
        )


def _state(
    name: str, file: WeightsFile, admit: Admit | None = None, num_classes: int | None = None
) -> tuple[dict[str, torch.Tensor], int]:
    """The file's values for variant ``name`` as float32, after every check that needs none of them."""
    num_classes = num_classes or _fit(name, file)
    options = _options(file)
    keys = list(_reference(name, num_classes, options=options))
    if admit:
        admit(file.float32_bytes(keys))
    state = file.values(keys)
    for key in _counters(name, options):  # read as float32 like the rest; a counter is a whole number again
        state[key] = state[key].to(torch.int64)
    return state, num_classes


def _assembled(
    name: str, num_classes: int, state: dict[str, torch.Tensor], input_shape=None, options=None
) -> nn.Module:
    """A model of ``name`` whose weights are ``state``'s tensors themselves (built on the meta device, so
    nothing is initialised or copied), in eval mode."""
    with torch.device("meta"):
        model = build(name, num_classes=num_classes, input_shape=input_shape, **(options or {}))
    model.load_state_dict(state, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # a tensor the file cannot have set
        raise ValueError("These weights leave part of the model without values.")
    return model.eval()


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
