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
