"""Reading a weights file nobody vouches for: what it holds first, its values only once that is known.

A file is opened in two steps. :func:`open_weights` reads each tensor's name, shape and type from the
file's own headers (safetensors' header, or a zip-format ``.pt`` mapped into memory without touching its
data), so a caller can check them and size what it would build before a single value is read; then
:meth:`WeightsFile.values` reads the values, widening each tensor to float32 and dropping the original at
once, so loading costs about the float32 size at its peak. Nothing in a file is ever executed: ``.pt``
files load through ``torch.load(weights_only=True)``, and their tensors must own exactly their bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from playground.config import get_limits

# Types a weight may be stored in (each is widened or narrowed to float32); others are refused by name.
FLOAT_TYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
_SAFETENSORS_TYPES = {  # safetensors' names for types, as torch names them
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclasses.dataclass
class WeightsFile:
    """A weights file whose headers have been read: every tensor's shape and type, and its metadata."""

    name: str  # the file's name, never its path (messages quote it)
    shapes: dict[str, tuple[int, ...]]
    types: dict[str, str]  # "float32", "float16", ... or the file's own name for a type we do not take
    metadata: dict
    _reader: Callable[[], Callable[[str], torch.Tensor]]  # opens the file's values: a tensor, as stored, by name

    def float32_bytes(self, keys=None) -> int:
        return sum(4 * math.prod(self.shapes[key]) for key in (self.shapes if keys is None else keys))

    def values(self, keys) -> dict[str, torch.Tensor]:
        """The tensors named by ``keys`` as float32, each checked to be finite.

        Raises:
            ValueError: a value is NaN or infinite, or the file can no longer be read.
        """
        state = {}
        try:
            take = self._reader()
            for key in keys:
                state[key] = take(key).to(torch.float32)  # the stored copy goes as soon as it is widened
        except (OSError, RuntimeError, ValueError):
            raise ValueError(f"{self.name} could not be read.") from None
        for key, tensor in state.items():
            # A million values at a time: torch.isfinite of a whole tensor takes a temporary copy of its size.
            if not all(torch.isfinite(part).all() for part in tensor.reshape(-1).split(1 << 20)):
                raise ValueError(f"{key} contains NaN or infinite values, so these weights cannot be used.")
        return state


def open_weights(path: Path) -> WeightsFile:
    """Read a ``.safetensors``, ``.pt`` or ``.pth`` file's headers (no values).

    Raises:
        ValueError: wrong extension, unreadable or hostile file (the sentence names the file, not its path).
    """
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _open_safetensors(path)
    if suffix in (".pt", ".pth"):
        return _open_pickle(path)
    raise ValueError(f"Checkpoints must be .safetensors, .pt or .pth files, not {path.suffix or 'no extension'}.")


def _open_safetensors(path: Path) -> WeightsFile:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            slices = {key: handle.get_slice(key) for key in handle.keys()}  # noqa: SIM118 (not iterable)
            shapes = {key: tuple(int(d) for d in part.get_shape()) for key, part in slices.items()}
            types = {key: _SAFETENSORS_TYPES.get(part.get_dtype(), part.get_dtype()) for key, part in slices.items()}
    except (SafetensorError, OSError, ValueError):
        raise ValueError(f"{path.name} is not a readable safetensors file.") from None

    def one(key: str) -> torch.Tensor:
        # The file is mapped only while one tensor is read: a mapped file's pages count as the process's memory
        # while mapped, so mapping it once for all of them would add the file's size to the peak.
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return handle.get_tensor(key)

    return WeightsFile(path.name, shapes, types, _parse_metadata(metadata), lambda: one)


def _open_pickle(path: Path) -> WeightsFile:
    zipped = _check_zip_container(path)
    # A zip-format file is mapped, not read: its tensors' shapes are known and no value is in memory. The
    # values are read afresh later. A legacy file holds its tensors raw, so its size bounds what it loads.
    obj = _torch_load(path, mmap=zipped)
    metadata = {}
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        metadata = {key: obj[key] for key in ("classes", "options") if obj.get(key) is not None}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path.name} does not hold a dictionary of weight tensors.")
    if not all(isinstance(k, str) for k in obj):
        raise ValueError(f"{path.name} names its weights with something other than text.")
    _check_plain_tensors(path, obj)
    shapes = {key: tuple(tensor.shape) for key, tensor in obj.items()}
    types = {key: str(tensor.dtype).removeprefix("torch.") for key, tensor in obj.items()}
    if zipped:
        del obj  # the mapping goes with it

        def reader():
            again = _torch_load(path, mmap=False)
            nested = isinstance(again, dict) and isinstance(again.get("state_dict"), dict)
            state = again["state_dict"] if nested else again
            _check_plain_tensors(path, state)
            return state.pop  # each tensor leaves the dict as it is taken, so its memory goes once widened

    else:
        kept = obj

        def reader():
            return kept.pop

    return WeightsFile(path.name, shapes, types, metadata, reader)


def _torch_load(path: Path, *, mmap: bool):
    try:
        # weights_only=True: only tensors and plain containers are rebuilt; a pickle that would run code is
        # refused instead of executed.
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many kinds for corrupt or hostile pickles
        raise ValueError(
            f"{path.name} could not be loaded as plain weights; only tensors are accepted, never code "
            f"({type(error).__name__})."
        ) from None


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
        if tensor.numel():
            storages.add(storage.data_ptr())


def _check_zip_container(path: Path) -> bool:
    """Refuse a zip-format .pt whose entries are compressed or would expand far beyond the file; True for a
    zip-format file, False for torch's legacy format.

    torch.save writes uncompressed (stored) entries, so its files never expand; a hand-made file with
    deflated entries could turn a few hundred kilobytes into many gigabytes inside torch.load.
    """
    if not zipfile.is_zipfile(path):
        return False  # the legacy format: tensors are stored raw, so the file's size bounds them
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ValueError(f"{path.name} is a damaged checkpoint archive.") from None
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise ValueError(f"{path.name} has compressed entries; torch.save never writes those, so it is refused.")
    if sum(entry.file_size for entry in entries) > get_limits().max_checkpoint_expansion * max(path.stat().st_size, 1):
        raise ValueError(f"{path.name} claims to hold far more data than its size; it is refused.")
    return True


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
    if "options" in metadata:  # the model options it was built with (checkpoints checks them)
        try:
            parsed["options"] = json.loads(metadata["options"])
        except json.JSONDecodeError:
            raise ValueError("The checkpoint's model options are not valid JSON.") from None
    return parsed
