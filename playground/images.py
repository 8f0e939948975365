"""Safe image intake: every tab turns what a user gives it into an RGB PIL image here.

The size is checked from the file header before a single pixel is decoded, only the formats in
:class:`~playground.config.Limits` are tried, and every failure becomes a ``ValueError`` whose message
a learner can act on.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from playground.config import Limits, get_limits

ImageSource = str | os.PathLike | bytes | bytearray | np.ndarray | Image.Image

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# File endings taken for images inside zips and folders (the header decides the format, not the name).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def load_image(source: ImageSource, *, working_size: bool = True, limits: Limits | None = None) -> Image.Image:
    """Open ``source`` as an RGB image, safely.

    Args:
        source: a file path, the bytes of a file, a numpy array (H, W), (H, W, 1|3|4) or a PIL image.
        working_size: shrink photos above ``limits.working_pixels`` for interactive work.
        limits: the limits to apply (default: :func:`~playground.config.get_limits`).

    Returns:
        An RGB ``PIL.Image.Image`` with EXIF orientation applied and any alpha composited on white.

    Raises:
        ValueError: the source is not a readable image, is too large, or is of an unsupported kind.
    """
    limits = limits or get_limits()
    if isinstance(source, Image.Image):
        _check_size(*source.size, limits)
        if getattr(source, "is_animated", False):
            source.seek(0)
        image = _to_rgb(ImageOps.exif_transpose(source))  # a copy: the caller's image is untouched
    elif isinstance(source, np.ndarray):
        image = _from_array(source, limits)
    elif isinstance(source, (bytes, bytearray)):
        image = _decode(io.BytesIO(bytes(source)), limits, working_size)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError("The image file could not be found. Please upload it again.")
        with open(path, "rb") as handle:
            image = _decode(handle, limits, working_size)
    elif source is None:
        raise ValueError("No image was given. Upload a photo, use the webcam or pick an example.")
    else:
        raise ValueError(f"An image was expected, but got {type(source).__name__}.")
    return shrink_to_working_size(image, limits.working_pixels) if working_size else image


def check_header(
    source: str | os.PathLike | bytes, *, max_pixels: int | None = None, limits: Limits | None = None
) -> tuple[int, int]:
    """The (width, height) an image file declares, read from its header alone: nothing is decoded.

    Raises:
        ValueError: not an image of an accepted format, or larger than the limits (``max_pixels``, when
            given, is a stricter pixel limit for this use).
    """
    limits = limits or get_limits()
    if max_pixels is not None:
        limits = dataclasses.replace(limits, max_image_pixels=min(max_pixels, limits.max_image_pixels))
    handle = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else open(source, "rb")  # noqa: SIM115
    with handle:
        image = _open_header(handle, limits)
        _check_size(*image.size, limits)
        return image.size


def shrink_to_working_size(image: Image.Image, max_pixels: int) -> Image.Image:
    """Return ``image`` scaled down (aspect kept) to at most ``max_pixels`` pixels."""
    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    small.info["original_size"] = image.info.get("original_size", image.size)  # so the UI can say so
    return small


def _check_size(width: int, height: int, limits: Limits) -> None:
    if width < 1 or height < 1:
        raise ValueError("This image is empty (it has no pixels).")
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise ValueError(
            f"This image is {width:,} × {height:,} pixels, which is too large: the limit is "
            f"{limits.max_image_side:,} pixels a side and {limits.max_image_pixels / 1e6:g} megapixels. "
            "Please use a smaller copy."
        )


def _open_header(handle, limits: Limits) -> Image.Image:
    """Pillow's lazy open: the header is read, no pixel is decoded; only the accepted formats are tried."""
    accepted = ", ".join(limits.image_formats[:-1]) + " or " + limits.image_formats[-1]
    Image.init()  # register every plugin, so the names in ``formats`` resolve
    try:
        with warnings.catch_warnings():
            # We enforce our own, stricter pixel limit below; Pillow's bomb warning is redundant.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(handle, formats=limits.image_formats)  # phone MPOs open as JPEG
    except Image.DecompressionBombError:
        raise ValueError(
            f"This image claims to be enormous; the limit is {limits.max_image_pixels / 1e6:g} megapixels."
        ) from None
    except Exception:
        raise ValueError(f"This file is not an image we can read. Please upload a {accepted} file.") from None


def _decode(handle, limits: Limits, working_size: bool) -> Image.Image:
    image = _open_header(handle, limits)
    _check_size(*image.size, limits)
    original = image.size
    try:
        image.seek(0)  # animations: the first frame
        if working_size and image.format in ("JPEG", "MPO"):
            # Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding: far less memory and
            # time for a 40 MP photo that will be shrunk anyway.
            scale = (limits.working_pixels / (image.width * image.height)) ** 0.5
            if scale < 1:
                image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
        image.load()
        decoded = image.size
        upright = ImageOps.exif_transpose(image)
        rgb = _to_rgb(upright)
        if decoded != original:  # the JPEG decoder already shrank it: remember the real size, upright
            rgb.info["original_size"] = original if upright.size == decoded else original[::-1]
        return rgb
    except ValueError:
        raise
    except Exception:
        raise ValueError(
            "This image file is damaged or incomplete (perhaps the upload was cut short), so it cannot be decoded."
        ) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, rescaling deep images and putting alpha on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in ("1", "L", "CMYK", "YCbCr", "HSV"):
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_rescale_to_uint8(np.asarray(image), mode)).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise ValueError(f"Images in the {mode} colour mode are not supported. Please save it as RGB.") from None


def _rescale_to_uint8(values: np.ndarray, mode: str = "") -> np.ndarray:
    """Map integer or float pixel values onto 0-255 without clipping bright pixels to white."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if np.issubdtype(values.dtype, np.floating):
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        if low >= 0.0 and high <= 1.0:  # the usual float convention
            return np.round(values * 255.0).astype(np.uint8)
        if low >= 0.0 and high <= 255.0:
            return np.round(values).astype(np.uint8)
        span = high - low or 1.0
        return np.round((values - low) / span * 255.0).astype(np.uint8)
    # Integers: 16-bit sources are scaled by 255/65535, never clipped.
    sixteen_bit = mode.startswith("I;16") or values.dtype == np.uint16
    values = values.astype(np.int64)
    if sixteen_bit:
        full_scale = 65535
    else:
        high = int(values.max(initial=0))
        low = int(values.min(initial=0))
        if low < 0:
            values = values - low
            high -= low
        full_scale = 255 if high <= 255 else 65535 if high <= 65535 else high
    return np.round(values * (255.0 / full_scale)).astype(np.uint8)


def _from_array(array: np.ndarray, limits: Limits) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"An image array must have shape (H, W), (H, W, 3) or (H, W, 4); got {tuple(array.shape)}.")
    _check_size(array.shape[1], array.shape[0], limits)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"Image arrays must hold numbers, not {array.dtype}.")
    if array.dtype == np.uint16:
        array = _rescale_to_uint8(array, "I;16")
    else:
        array = _rescale_to_uint8(array)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))  # L, RGB or RGBA from the shape


def load_photo_file(path: str | os.PathLike) -> Image.Image:
    """:func:`load_image` of a file at working size, through a cache of decoded photos bounded in bytes,
    so that moving a slider (or a class of learners clicking on their own photos) does not decode the
    same upload again.

    Uploads are immutable files named by their content hash and nothing mutates the returned image, so
    two users of the same photo may share an entry. Size and modification time are in the key in case a
    path is ever reused; failures are not cached.
    """
    key = photo_file_key(path)
    photo = _PHOTOS.get(key)
    if photo is None:
        photo = load_image(path)
        _PHOTOS.put(key, photo, photo.width * photo.height * len(photo.getbands()))
    return photo


def photo_file_key(path: str | os.PathLike) -> tuple:
    """What identifies a photo file's contents for caches: its path, size and modification time."""
    stat = os.stat(path)
    return (os.fspath(path), stat.st_size, stat.st_mtime_ns)


def forget_decoded_photos() -> None:
    """Empty the cache of decoded photos (benchmarks time a first decode with it)."""
    _PHOTOS.clear()


class BytesLRU:
    """A thread-safe least-recently-used cache bounded by the bytes of what it holds."""

    def __init__(self, max_bytes: Callable[[], int]):
        self._max_bytes = max_bytes  # read when needed, so the limit comes from the environment at use
        self._items: collections.OrderedDict = collections.OrderedDict()  # key -> (value, bytes)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key, value, size: int) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self._max_bytes():
                return  # larger than the whole cache: not kept
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self._max_bytes():
                self._bytes -= self._items.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes


_PHOTOS = BytesLRU(lambda: get_limits().decoded_photos_bytes)
