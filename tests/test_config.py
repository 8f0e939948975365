import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from playground.config import Limits, limits_from_env

ROOT = Path(__file__).resolve().parent.parent
# Environment variables that are settings (where things are), not limits; everything else is a Limits field.
SETTINGS = {
    "PLAYGROUND_OFFLINE",
    "PLAYGROUND_ALEXNET_WEIGHTS",
    "PLAYGROUND_DATA_DIR",
    "PLAYGROUND_FASHION_MNIST_DIR",
    "PLAYGROUND_CHROMIUM",
    "PLAYGROUND_BENCH_DATA",
    "PLAYGROUND_PROXY_HOPS",  # how many proxies stand in front of the app (0 is a valid answer)
    "PLAYGROUND_RUNS_DIR",  # where every run's folder lives (a path, not a limit)
    "PLAYGROUND_DATABASE_URL",  # the class board's database (an address, not a limit)
    "PLAYGROUND_BENCH_DATABASE_URL",  # the PostgreSQL the class-board benchmark may also measure
}


def test_environment_overrides():
    limits = limits_from_env(
        {
            "PLAYGROUND_MAX_IMAGE_PIXELS": "20_000_000",
            "PLAYGROUND_IMAGE_FORMATS": "png, jpeg",
            "PLAYGROUND_TRAIN_MAX_SECONDS": "60.5",
        }
    )
    assert limits.max_image_pixels == 20_000_000
    assert limits.image_formats == ("PNG", "JPEG")
    assert limits.train_max_seconds == 60.5
    assert limits.max_image_side == Limits().max_image_side


@pytest.mark.parametrize("value", ["lots", "-5", "0"])
def test_bad_environment_values_are_refused(value):
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_IMAGE_SIDE"):
        limits_from_env({"PLAYGROUND_MAX_IMAGE_SIDE": value})


def test_limits_are_frozen():
    with pytest.raises(AttributeError):
        Limits().max_image_pixels = 1


def test_an_environment_limit_reaches_the_code_that_enforces_it():
    code = (
        "from playground.kernels import parse_kernel\n"
        "parse_kernel('1 1 1 1 1')\n"
        "try:\n    parse_kernel('\\n'.join(['1 1 1 1 1 1 1'] * 7))\nexcept ValueError as e:\n    print('refused:', e)\n"
    )
    env = {"PLAYGROUND_MAX_KERNEL_SIDE": "5", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "5" in out.stdout


def test_every_limit_the_code_reads_from_the_environment_lives_in_limits():
    fields = {f"PLAYGROUND_{field.name.upper()}" for field in dataclasses.fields(Limits)}
    read = set()
    for folder in ("playground", "ui", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"PLAYGROUND_[A-Z_]+", path.read_text()))
    read |= set(re.findall(r"PLAYGROUND_[A-Z_]+", (ROOT / "app.py").read_text()))
    assert read - SETTINGS - fields == set()


def test_the_servers_own_numbers_are_limits_too():
    """Concurrency per event, text and message lengths: each follows its environment variable."""
    code = (
        "import app\n"
        "from ui import controls, handlers\n"
        "demo = app.build_demo()\n"
        "by_name = {f.api_name: f.concurrency_limit for f in demo.fns.values()}\n"
        "print(*(by_name[n] for n in ('webcam_frame', 'attribute', 'compare', 'sanity_check')))\n"
        "box = controls.Textbox(label='Kernel')\n"
        "try:\n    box.preprocess('x' * 11)\nexcept Exception as e:\n    print(e)\n"
        "print(len(handlers.bounded('y' * 1000)))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PLAYGROUND_OFFLINE": "1",
        "PLAYGROUND_WEBCAM_CONCURRENCY": "3",
        "PLAYGROUND_ATTRIBUTE_CONCURRENCY": "5",
        "PLAYGROUND_COMPARE_CONCURRENCY": "6",
        "PLAYGROUND_SANITY_CHECK_CONCURRENCY": "7",
        "PLAYGROUND_MAX_TEXT_CHARS": "10",
        "PLAYGROUND_MAX_MESSAGE_CHARS": "50",
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    concurrency, text, message = out.stdout.strip().splitlines()[-3:]
    assert concurrency == "3 5 6 7"
    assert "Kernel: expected text of at most 10 characters" in text
    assert message == "50"


def test_the_memory_budgets_fit_a_16_gb_cpu_space_with_room_to_spare():
    """What the server may hold at once by its own limits, plus its own ~2 GB, leaves headroom on 16 GB."""
    limits = Limits()
    sessions = limits.sessions_kept * 700_000  # Gradio's state of one session with every tab loaded: ~0.7 MB
    caches = (
        limits.decoded_photos_bytes
        + limits.seen_photos_bytes
        + limits.editor_blobs_bytes
        + limits.units_cache_bytes
        + sessions
    )
    workers = limits.workers_memory_bytes  # every job worker's limit together, however the lanes fill
    # ... which holds the full load of the long lanes (the quick Units lane borrows what they leave):
    assert (
        limits.long_jobs_running * limits.worker_memory_bytes
        + limits.units_jobs_running * limits.units_worker_memory_bytes
        <= workers
    )
    total = 2e9 + caches + limits.models_total_bytes + workers
    assert total <= 16e9 - 2e9, f"{total / 1e9:.1f} GB"
    assert limits.max_checkpoint_bytes <= limits.models_session_bytes // 2  # a file the loader takes can be kept
