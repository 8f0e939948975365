"""Convolution lab: the work behind /apply_kernel on a 1-megapixel photo (budget 50 ms on 2 cores)."""

from __future__ import annotations

import os
import tempfile

from PIL import Image
from skimage import data

from bench.common import median_ms, report
from playground.images import forget_decoded_photos, load_photo_file
from playground.lab import LabSettings, run_lab

BUDGET_MS = 50.0


def one_megapixel_photo(folder: str) -> str:
    """The coffee cup scaled to 1224 × 816 (0.999 MP), saved as PNG and as JPEG."""
    image = Image.fromarray(data.coffee()).resize((1224, 816), Image.Resampling.LANCZOS)
    path = os.path.join(folder, "coffee_1mp.png")
    image.save(path)
    return path


def run(http: bool = True) -> None:
    def work(**settings):
        # What the endpoint runs: the (cached) decode of the upload, convolve, render, explain the sizes.
        return run_lab(load_photo_file(photo), LabSettings(**settings))

    def first_call():
        forget_decoded_photos()  # a new upload: the photo is decoded too
        return work()

    with tempfile.TemporaryDirectory() as folder:
        photo = one_megapixel_photo(folder)
        report("/apply_kernel work, 1 MP, defaults, new upload (decode)", median_ms(first_call), BUDGET_MS)
        report("/apply_kernel work, 1 MP, defaults, same photo (gray, Sobel x)", median_ms(work), BUDGET_MS)
        report(
            "/apply_kernel work, 1 MP, colour, Gaussian 5x5",
            median_ms(lambda: work(kernel="gaussian_blur", color="rgb")),
        )
        dense = "\n".join([" ".join(["1/121"] * 11)] * 11)
        report(
            "/apply_kernel work, 1 MP, colour, dense 11x11",
            median_ms(lambda: work(kernel="custom", custom_kernel=dense, color="rgb"), repeat=10),
        )
        if http:
            _http(photo)


def _http(photo: str) -> None:
    """The whole round trip a user waits for: upload, queue, work, PNG encoding, download."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client, handle_file

    import app

    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        ms = median_ms(lambda: client.predict(handle_file(photo), api_name="/apply_kernel"), repeat=10, warmup=2)
        report("/apply_kernel over HTTP (gradio_client, upload + PNG)", ms)
    finally:
        demo.close()
