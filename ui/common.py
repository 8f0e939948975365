"""Pieces every tab shares: the photo input, example photos, and turning core errors into messages."""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import os
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from PIL import Image

from playground.images import load_image

# scikit-image ships these photos, so the repository carries none. The coffee cup comes first.
EXAMPLE_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")


class PhotoInput(gr.Image):
    """A ``gr.Image`` that hands the uploaded file's path to our own intake untouched.

    Plain ``gr.Image`` opens uploads with Pillow before our code runs, so a broken or hostile file fails
    inside Gradio with a message that names a server path. Here the file goes straight to
    :func:`playground.images.load_image`, which checks it and explains what is wrong.
    """

    is_template = True  # rendered by the frontend as a normal image component
    # No __init__ override: Gradio reads a component's settings from its constructor's signature.

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path:  # Gradio has already checked that this is a file it received
            return payload.path
        try:
            return super().preprocess(payload)  # data: URLs
        except Exception:
            raise gr.Error("That image could not be read. Please try another file.") from None


class ResultImage(gr.Image):
    """An output image sent as an exact PNG saved at the fastest compression level.

    Gradio's default PNG encoding spends ~190 ms on a 1-megapixel result; level 1 takes ~55 ms for a
    file ~20% larger, and the pixels stay exact (lossy WebP would smear small, pixelated results).
    """

    is_template = True

    def postprocess(self, value):
        if not isinstance(value, Image.Image):
            return super().postprocess(value)
        buffer = io.BytesIO()
        value.save(buffer, format="PNG", compress_level=1)
        data = buffer.getvalue()
        folder = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "image.png"
        path.write_bytes(data)
        return ImageData(path=str(path), orig_name=path.name)


def result_image(**kwargs) -> ResultImage:
    """A read-only image output (exact PNG)."""
    return ResultImage(interactive=False, format="png", **kwargs)


def photo_input(**kwargs) -> PhotoInput:
    """The photo upload every tab uses: upload, webcam or clipboard, handed over as a file path."""
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    return PhotoInput(type="filepath", image_mode=None, **kwargs)


def open_photo(path) -> Image.Image:
    """Load a photo for interactive work, or tell the user (through ``gr.Error``) why not."""
    if path is None:
        raise gr.Error("Upload a photo, use the webcam, or click one of the examples first.")
    try:
        stat = os.stat(path)
        return _decoded(str(path), stat.st_size, stat.st_mtime_ns)
    except (ValueError, OSError) as error:
        message = str(error) if isinstance(error, ValueError) else "The photo could not be found; please upload it again."
        raise gr.Error(message) from None


@functools.lru_cache(maxsize=16)
def _decoded(path: str, size: int, mtime_ns: int) -> Image.Image:
    """Decoded working-size photos, so moving a slider does not decode the upload again.

    Uploads are immutable files named by their content hash, and nothing mutates the returned image,
    so sharing an entry between two users of the same photo is safe. Size and mtime are in the key in
    case a path is ever reused. Failures are not cached (lru_cache does not store exceptions).
    """
    return load_image(path)


def user_errors(fn):
    """Show the core's ``ValueError`` messages to the user as ``gr.Error``; the server keeps serving.

    Works for plain functions and for generators (streamed results), which Gradio must still see as
    generator functions.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except ValueError as error:
                raise gr.Error(str(error)) from None

        return streaming

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return wrapper


@functools.cache
def example_paths() -> tuple[str, ...]:
    """Write the scikit-image sample photos to PNG files once per process and return their paths."""
    from skimage import data

    folder = Path(tempfile.gettempdir()) / "alexnet-playground-examples"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXAMPLE_PHOTOS:
        path = folder / f"{name}.png"
        if not path.exists():
            pixels = np.asarray(getattr(data, name)())
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".png", delete=False) as handle:
                Image.fromarray(pixels).save(handle, format="PNG")
            Path(handle.name).replace(path)  # atomic: another process never reads half a file
        paths.append(str(path))
    return tuple(paths)
