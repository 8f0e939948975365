"""Every limit the app enforces, in one frozen object.

Defaults follow the product spec; each field can be overridden through an environment variable
named ``PLAYGROUND_<FIELD>`` (for example ``PLAYGROUND_MAX_IMAGE_PIXELS=20000000``), read once
when :func:`get_limits` is first called. Code that enforces a limit reads it from here, never from
a constant of its own.
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
    decoded_photos_bytes: int = 192 * 1024**2  # decoded working-size photos kept (a 1 MP photo takes 3 MB)
    # Uploads (Gradio's max_file_size), and zips of class folders.
    max_upload_bytes: int = 256 * 1024**2
    max_zip_members: int = 5_000
    max_zip_bytes: int = 500 * 1024**2  # uncompressed total
    max_zip_ratio: int = 100  # uncompressed / compressed size of one member: JPEGs and PNGs are near 1
    min_classes: int = 2
    max_classes: int = 100
    min_per_class: int = 3  # at least one validation image and two to train on
    # Checkpoints: a file's tensors may hold at most this many times the file's own size (torch.save
    # stores them raw), and a final layer at most this many classes.
    max_checkpoint_expansion: int = 2
    max_checkpoint_classes: int = 100_000
    # Convolution lab.
    max_kernel_side: int = 11
    max_stride: int = 8
    max_padding: int = 16
    max_dilation: int = 8
    max_pool_size: int = 8
    # Captum, and the Explain tab's editor (paint to cover).
    max_ig_steps: int = 200
    editor_max_layers: int = 4
    editor_max_pixels: int = 4_000_000  # per picture of the editor, from its header (a 2,000 x 2,000 canvas)
    editor_blob_bytes: int = 16 * 1024**2  # one picture the editor sends
    editor_blobs_bytes: int = 64 * 1024**2  # all pictures waiting for their event, every session together
    editor_blob_seconds: int = 600  # how long pictures may wait for the event that uses them
    # Models kept for users (charged twice their weights: an explanation works on a private copy).
    models_per_session: int = 3  # the session's oldest goes first
    models_session_bytes: int = 1024**3  # one session: two full-size AlexNets, or a dozen compact ones
    models_total_bytes: int = 6 * 1024**3  # all sessions together; the heaviest visitor makes room
    # Training (and other long jobs), each in a worker process of its own.
    train_max_seconds: float = 900.0  # one job's wall-clock cap, reading the data included
    worker_nice: int = 10  # added CPU niceness: clicks win the cores, training still progresses
    worker_threads: int = 1  # torch threads per worker: two cores are shared with everyone's clicks
    worker_memory_bytes: int = 6 * 1024**3  # a worker's data-segment limit (CPU runs); past it, a sentence
    worker_stale_seconds: float = 10.0  # a job whose progress nobody has read for this long is stopped
    long_jobs_running: int = 2  # at once on a CPU server (on a GPU, one: the others wait their turn)
    long_jobs_waiting: int = 4  # in the whole queue; more are refused at the door, so clicks always have room
    long_jobs_per_address: int = 2  # queued or running, from one network address (one per session)
    gpu_slot_seconds: float = 300.0  # on a ZeroGPU Space: the longest GPU slot a job may book
    runs_kept: int = 16  # finished runs kept across sessions (API callers never close a tab)
    experiment_runs: int = 24  # runs times seeds in one experiment (the time cap still covers them all)
    experiment_weights_bytes: int = 1024**3  # one experiment's runs kept on disk, to open in the other tabs
    misclassified_thumbnails: int = 500  # per run, for browsing the confusion matrix
    # Server.
    queue_max_size: int = 64  # requests waiting beyond this are turned away with a message
    concurrency: int = 2  # requests of one event that run at once
    server_threads: int = 1  # torch threads per request: concurrent requests on few cores must not fight
    cache_sweep_seconds: int = 3600  # how often Gradio's upload/result cache is swept ...
    cache_max_age_seconds: int = 7200  # ... and how old a file must be to go
    uploads_disk_bytes: int = 4 * 1024**3  # uploads and results on disk; past it, the oldest are swept
    upload_bytes_per_address_hour: int = 2 * 1024**3  # what one network address may upload in an hour
    max_request_bytes: int = 64 * 1024**2  # one event's values (a photo sent inline as a data: URL included)
    download_timeout_seconds: float = 15.0  # ImageNet weights and datasets, when online


def _parse(field: dataclasses.Field, text: str):
    if field.type in ("int", int):
        return int(text.replace("_", ""))
    if field.type in ("float", float):
        return float(text.replace("_", ""))
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
        if isinstance(value, (int, float)) and not value > 0:
            raise ValueError(f"{ENV_PREFIX}{field.name.upper()} must be positive, got {value}")
        overrides[field.name] = value
    return Limits(**overrides)


@functools.cache
def get_limits() -> Limits:
    """The process-wide limits (environment read once)."""
    return limits_from_env()
