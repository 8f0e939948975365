"""Every limit the app enforces, in one frozen object.

Defaults follow the product spec; each field can be overridden through an environment variable
named ``PLAYGROUND_<FIELD>`` (for example ``PLAYGROUND_MAX_IMAGE_PIXELS=20000000``), read once
when :func:`get_limits` is first called.
"""

from __future__ import annotations

import dataclasses
import functools
import os

ENV_PREFIX = "PLAYGROUND_"


@dataclasses.dataclass(frozen=True)
class Limits:
    # Images: checked from the file header, before any pixel is decoded.
    max_image_pixels: int = 40_000_000  # 40 MP: a modern phone photo fits, a decompression bomb does not
    max_image_side: int = 10_000  # px; also stops 1 x 40,000,000 strips
    image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
    # Interactive tabs work on a copy no larger than this; the convolution budget assumes 1 MP.
    working_pixels: int = 1_000_000
    # Uploads (Gradio's max_file_size) and zips of class folders.
    max_upload_bytes: int = 256 * 1024**2
    max_zip_members: int = 5_000
    max_zip_bytes: int = 500 * 1024**2  # uncompressed total
    min_classes: int = 2
    max_classes: int = 100
    # Convolution lab.
    max_kernel_side: int = 11
    max_stride: int = 8
    max_padding: int = 16
    max_dilation: int = 8
    max_pool_size: int = 8
    # Captum.
    max_ig_steps: int = 200
    # Server.
    queue_max_size: int = 64  # requests waiting beyond this are turned away with a message


def _parse(field: dataclasses.Field, text: str):
    if field.type in ("int", int):
        return int(text.replace("_", ""))
    if field.type in ("tuple[str, ...]",):
        return tuple(part.strip().upper() for part in text.split(",") if part.strip())
    raise TypeError(f"Limit {field.name} cannot be set from the environment")


def limits_from_env(environ: dict[str, str] | None = None) -> Limits:
    """Build :class:`Limits` from defaults overridden by ``PLAYGROUND_*`` variables.

    Raises:
        ValueError: a variable holds something that is not a valid value for its limit.
    """
    environ = os.environ if environ is None else environ
    overrides = {}
    for field in dataclasses.fields(Limits):
        text = environ.get(ENV_PREFIX + field.name.upper())
        if text is None:
            continue
        try:
            value = _parse(field, text)
        except ValueError as error:
            raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={text!r} is not valid: {error}") from None
        if isinstance(value, int) and value <= 0:
            raise ValueError(f"{ENV_PREFIX}{field.name.upper()} must be positive, got {value}")
        overrides[field.name] = value
    return Limits(**overrides)


@functools.cache
def get_limits() -> Limits:
    """The process-wide limits (environment read once)."""
    return limits_from_env()
