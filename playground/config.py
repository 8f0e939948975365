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
    seen_photos_bytes: int = 256 * 1024**2  # photos through a network: input, every layer, scores (~5 MB each)
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
    # classes x features of a final layer: ImageNet's AlexNet has 4.1 M; this lets ~4,900 classes reach its 4,096
    # features, and keeps a 2 KB file from claiming a head of gigabytes.
    max_checkpoint_head_values: int = 20_000_000
    # A checkpoint's weights once widened to float32 (half-precision files double), checked from the file's
    # shapes before any value is read: loading one costs about this much at its peak (ImageNet's is 244 MB).
    max_checkpoint_bytes: int = 320 * 1024**2
    # Convolution lab.
    max_kernel_side: int = 11
    max_stride: int = 8
    max_padding: int = 16
    max_dilation: int = 8
    max_pool_size: int = 8
    # Captum, and the Explain tab's editor (paint to cover).
    max_ig_steps: int = 200
    # Requests of these events that run at once: a webcam streams frames (each a forward pass of ~20 ms); one
    # explanation takes up to a second or two; comparing all ten and the sanity check take seconds of both cores.
    webcam_concurrency: int = 4
    attribute_concurrency: int = 2
    compare_concurrency: int = 1
    sanity_check_concurrency: int = 1
    editor_max_layers: int = 4
    editor_max_pixels: int = 4_000_000  # per picture of the editor, from its header (a 2,000 x 2,000 canvas)
    editor_blob_bytes: int = 16 * 1024**2  # one picture the editor sends
    editor_blobs_bytes: int = 64 * 1024**2  # all pictures waiting for their event, every session together
    editor_blob_seconds: int = 600  # how long pictures may wait for the event that uses them
    # Models kept for users (charged twice their weights: an explanation works on a private copy).
    models_per_session: int = 3  # the session's oldest goes first
    models_session_bytes: int = 1024**3  # one session: two full-size AlexNets, or a dozen compact ones
    # All sessions together (four full-size AlexNets, or thirty compact ones); the heaviest visitor makes room.
    models_total_bytes: int = 2 * 1024**3
    # Training (and other long jobs), each in a worker process of its own.
    train_max_seconds: float = 900.0  # one job's wall-clock cap, reading the data included
    worker_nice: int = 10  # added CPU niceness: clicks win the cores, training still progresses
    worker_threads: int = 1  # torch threads per worker: two cores are shared with everyone's clicks
    # A training worker's data-segment limit (CPU runs); past it, a sentence. A full fine-tune of AlexNet at
    # batch 16 peaked at 2.2 GB, so this leaves room for the 5,000 images a zip may hold. The memory budget of a
    # 16 GB CPU Space: the server ~2 GB + its caches and sessions 1.1 GB + users' models 2 GiB + two training
    # workers 6 GiB + one unit pass 2 GiB = 13.8 GB (a test adds these up).
    worker_memory_bytes: int = 3 * 1024**3
    worker_stale_seconds: float = 10.0  # a job whose progress nobody has read for this long is stopped
    # A live learning-curve plot is redrawn at most this often (the status line every half second): drawing
    # one takes ~150 ms of the server's CPU, which every 0.5 s cost a class's clicks a third of a core.
    plot_seconds: float = 3.0
    long_jobs_running: int = 2  # at once on a CPU server (on a GPU, one: the others wait their turn)
    long_jobs_waiting: int = 4  # in the whole queue; more are refused at the door, so clicks always have room
    long_jobs_per_address: int = 2  # queued or running, from one network address (one per session)
    gpu_slot_seconds: float = 300.0  # on a ZeroGPU Space: the longest GPU slot a job may book
    runs_kept: int = 16  # finished runs kept across sessions (API callers never close a tab)
    experiment_runs: int = 24  # runs times seeds in one experiment (the time cap still covers them all)
    experiment_weights_bytes: int = 1024**3  # one experiment's runs kept on disk, to open in the other tabs
    misclassified_thumbnails: int = 500  # per run, for browsing the confusion matrix
    # Units tab: feature visualisation, top patches, fc7 maps (each pass in a worker process).
    units_cache_bytes: int = 256 * 1024**2  # finished passes kept (AlexNet's top-9 patches of one dataset: ~115 MB)
    units_dataset_images: int = 1_000  # images of a dataset (built-in, a zip or a folder) one pass reads
    units_dataset_pixels: int = 4_000_000_000  # what those images' headers declare, together (JPEGs at draft size)
    units_jobs_per_address: int = 1  # Units passes queued or running from one address (a few addresses cannot fill it)
    units_max_seconds: float = 180.0  # one Units pass, start to end; past it, it is stopped with a sentence
    units_max_steps: int = 512  # feature visualisation steps (256 is the default)
    units_max_size: int = 224  # px per side of a feature visualisation
    units_jobs_running: int = 1  # unit passes at once (CPU); more wait in the queue with their place shown
    units_worker_memory_bytes: int = 2 * 1024**3  # a unit pass's worker (1,000 photos through AlexNet fit)
    # A single channel's feature visualisation runs in a lane of its own, so it never waits behind a whole-layer
    # grid or a dataset pass; its worker is charged to the pool below like every other.
    units_quick_running: int = 1
    # Every job worker's memory limit, added up, may not exceed this (two trainings and a Units pass by default):
    # a worker whose limit does not fit waits for one to end, so the server's memory sum holds however the
    # lanes fill.
    workers_memory_bytes: int = 8 * 1024**3
    zips_remembered: int = 256  # sessions whose last upload (zip or folder) Train, Experiments and Units read
    # Server.
    # Requests waiting beyond this are turned away with a message. Opening the page sends 12 events, so a class
    # of 40 arriving together queues ~480 at once (64 turned most of them away).
    queue_max_size: int = 1024
    # Sessions whose page state Gradio keeps (~0.7 MB each, created by any request naming a new session;
    # Gradio's default of 10,000 let a stream of tiny requests take 4 GB). A class is a few dozen.
    sessions_kept: int = 500
    # Waiting requests one visitor may hold, so no one fills the queue for everyone: opening the page fires 12
    # events of one session at once; a network address may hold half the queue (a class behind one school
    # address shares it: 40 learners opening the page together queue ~480).
    queued_events_per_session: int = 16
    queued_events_per_address: int = 512
    concurrency: int = 2  # requests of one event that run at once
    server_threads: int = 1  # torch threads per request: concurrent requests on few cores must not fight
    cache_sweep_seconds: int = 3600  # how often Gradio's upload/result cache is swept ...
    cache_max_age_seconds: int = 7200  # ... and how old a file must be to go
    uploads_disk_bytes: int = 4 * 1024**3  # uploads and results on disk; past it, the oldest are swept
    upload_bytes_per_address_hour: int = 2 * 1024**3  # what one network address may upload in an hour
    max_request_bytes: int = 64 * 1024**2  # one event's values (a photo sent inline as a data: URL included)
    small_request_bytes: int = 1024**2  # any other request; an upload this small may carry any kind of file
    disk_rescan_seconds: float = 30.0  # the upload folder is measured at most this often (and whenever it looks full)
    disk_sweep_seconds: float = 60.0  # and swept this often in the background (results fill it as well as uploads)
    max_text_chars: int = 20_000  # in a text box or a choice (a kernel of 11 x 11 numbers takes a few hundred)
    max_message_chars: int = 400  # our sentences are shorter; a value quoted in one is cut, never echoed whole
    # A browser drains its event stream as messages arrive; this many unread means nobody is listening.
    unread_messages_when_gone: int = 8
    download_timeout_seconds: float = 15.0  # ImageNet weights and datasets, when online
    # The class board: a class's life unless its teacher closes it, a class's or a learner's name, and how much a class,
    # a learner and one entry may hold (an experiment of 24 runs with their curves is ~60 KB as JSON).
    board_class_days: int = 30
    board_name_chars: int = 60
    board_learners_per_class: int = 200
    board_entries_per_class: int = 2_000
    board_entries_per_learner: int = 50
    board_entry_bytes: int = 512 * 1024
    # Per minute, counted by each server: a learner's publishes; joins from one network address (a class behind one
    # school address joins in a minute or two); codes that name no class from one address (guessing stays out of reach).
    board_publishes_per_minute: int = 10
    board_joins_per_minute: int = 20
    board_misses_per_minute: int = 30


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
