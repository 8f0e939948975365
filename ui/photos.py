"""Photos in and pictures out: the photo input every tab uses, the example photos, the check that a path
is an upload, opening a photo at working size, and the exact-PNG result image."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import os
import tempfile
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from gradio.utils import get_upload_folder
from PIL import Image

from playground import activations as A
from playground.config import get_limits
from playground.images import load_image, load_photo_file, photo_file_key

# scikit-image ships these photos, so the repository carries none. The coffee cup comes first.
EXAMPLE_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")
EXAMPLES_DIR = Path(tempfile.gettempdir()) / "alexnet-playground-examples"


UNREADABLE = "That image could not be found on the server. Please upload it again."


def uploaded_path(path) -> str:
    """``path`` if it is a file Gradio stored for an upload (or an example it cached), else ``gr.Error``.

    Gradio checks a payload's path only when the payload says it is a FileData; a hand-written API call
    can leave that out and name any file on the server. So every path is checked here, and a path
    outside the upload folder gets the same message as a missing one: nothing is revealed either way.
    """
    real = os.path.realpath(str(path))
    roots = (os.path.realpath(get_upload_folder()), os.path.realpath(EXAMPLES_DIR))
    if not any(os.path.commonpath([root, real]) == root for root in roots) or not os.path.isfile(real):
        raise gr.Error(UNREADABLE)
    return real


def _decode_data_url(url: str) -> bytes:
    """The bytes of a ``data:`` URL, size-checked before decoding; the image itself is not opened here."""
    header, _, body = url.partition(",")
    if ";base64" not in header or len(body) > get_limits().max_request_bytes * 4 // 3 + 4:
        raise gr.Error("That image is too large or not in a form we accept. Please upload a file.")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise gr.Error("That image could not be read. Please try another file.") from None


class PhotoInput(gr.Image):
    """A ``gr.Image`` that hands uploads to our own intake untouched.

    Plain ``gr.Image`` opens uploads with Pillow before our code runs, so a broken or hostile file (or a
    data: URL holding a decompression bomb) is decoded inside Gradio, before our size limits apply. Here
    the handler receives either the path of the uploaded file (checked to be an upload) or the raw bytes
    of a data: URL, and :func:`playground.images.load_image` checks and decodes them.
    """

    is_template = True  # rendered by the frontend as a normal image component
    # No __init__ override: Gradio reads a component's settings from its constructor's signature.

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path:
            return uploaded_path(payload.path)
        if payload.url and payload.url.startswith("data:"):
            return _decode_data_url(payload.url)
        raise gr.Error("Please upload the image as a file.")


class ResultImage(gr.Image):
    """An output image sent as an exact PNG saved at the fastest compression level, run-length only.

    Gradio's default PNG encoding spends ~190 ms on a 1-megapixel result; level 1 takes ~55 ms for a
    file ~20% larger, and the pixels stay exact (lossy WebP would smear small, pixelated results). zlib's
    run-length strategy is faster again and, on these pictures (colour maps, channel grids, plots), as
    small or smaller: a 1 MP palette result 10.5 ms instead of 13.7, a channel grid 5.3 ms instead of 6.3.
    """

    is_template = True

    def postprocess(self, value):
        if not isinstance(value, Image.Image):
            return super().postprocess(value)
        buffer = io.BytesIO()
        value.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
        data = buffer.getvalue()
        folder = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "image.png"
        if not path.exists():  # the same picture (a kernel's heat map, say) is often sent to many learners
            # Written beside and renamed into place: a learner downloading the file while another request
            # writes it must never read half of it (that broke downloads under load).
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as handle:
                handle.write(data)
            os.replace(handle.name, path)
        self.temp_files.add(str(path))  # so the app's delete_cache clears old results too
        return ImageData(path=str(path), orig_name=path.name)


def result_image(**kwargs) -> ResultImage:
    """A read-only image output (exact PNG)."""
    return ResultImage(interactive=False, format="png", **kwargs)


def photo_input(**kwargs) -> PhotoInput:
    """The photo upload every tab uses: upload, webcam or clipboard, handed over as a file path."""
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    return PhotoInput(type="filepath", image_mode=None, **kwargs)


def photo_with_examples(elem_id: str, height: int = 220) -> PhotoInput:
    """A photo input starting on the coffee cup, with the example photos under it."""
    image = photo_input(label="Photo", value=example_paths()[0], height=height, elem_id=elem_id)
    gr.Examples([[path] for path in example_paths()], inputs=[image], label="Examples")
    return image


def open_photo(source) -> Image.Image:
    """Load a photo (an upload's path, or the bytes of a data: URL) at working size for interactive work.

    Raises:
        ValueError: no photo, or one that cannot be used (the sentence says why).
    """
    return _open_photo(source)[0]


def _open_photo(source) -> tuple[Image.Image, tuple | None]:
    """The photo, and what identifies its file for caches (None for the bytes of a data: URL)."""
    if source is None:
        raise ValueError("Upload a photo, use the webcam, or click one of the examples first.")
    if isinstance(source, (bytes, bytearray)):
        return load_image(source), None
    try:
        path = uploaded_path(source)
        return load_photo_file(path), photo_file_key(path)
    except OSError:
        raise ValueError(UNREADABLE) from None


def look(model, source) -> A.Seen:
    """A photo (as :func:`open_photo` takes it) through ``model``: its input, every layer and its scores,
    computed once per photo and weights however many tabs ask (see :func:`playground.activations.look`)."""
    photo, key = _open_photo(source)
    return A.look(model, photo, key=key)


@functools.cache
def example_paths() -> tuple[str, ...]:
    """Write the scikit-image sample photos to PNG files once per process and return their paths."""
    from skimage import data

    folder = EXAMPLES_DIR
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
