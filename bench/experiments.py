"""Experiments: the ReLU-vs-tanh preset on 2,000 Fashion-MNIST images (compact AlexNet at 64 px, one seed:
target under 3 minutes on a 2-core CPU, and ReLU reaching the target in fewer epochs than tanh; the paper
saw 6x), and the ladder on 1,000 five-flowers photos (one seed: under 5 minutes). When CUDA is present the
same presets run again at full size (224 px, more images and epochs) and their figures are printed too.

Data: Debian's dataset-fashion-mnist files (``apt-get install -y dataset-fashion-mnist``), and
``PLAYGROUND_BENCH_DATA`` or ``../shared/data/flowers5`` for the flowers.
"""

from __future__ import annotations

import time

import torch

from bench.training import FLOWERS
from playground.data import datasets as data
from playground.data import uploads
from playground.training.experiments import PRESETS, ExperimentConfig, plan, run_experiment
from playground.training.report import ExperimentResult


def timed(config: ExperimentConfig, dataset) -> tuple[ExperimentResult, float]:
    started = time.perf_counter()
    result = [r for r in run_experiment(config, dataset) if isinstance(r, ExperimentResult)][0]
    return result, time.perf_counter() - started


def relu_vs_tanh(scale: str, device: str) -> None:
    config = ExperimentConfig(preset="relu-vs-tanh", scale=scale, device=device)
    try:
        dataset = data.fashion_mnist(limit=config.limit())
    except ValueError as error:
        print(f"(Fashion-MNIST unavailable: {error})", flush=True)
        return
    result, seconds = timed(config, dataset)
    relu, tanh = result.rows
    budget = "" if scale == "gpu" else f" (budget 180 s: {'OK' if seconds < 180 else 'OVER'})"
    size = plan(config)[0].config.image_size
    print(
        f"{scale.upper()}: ReLU vs tanh, {len(dataset):,} Fashion-MNIST images at {size} px, one seed: {seconds:.0f} s{budget}"
    )
    target = result.target.describe()
    print(
        f"  epochs to {target}: ReLU {relu.epochs_to_target}, tanh {tanh.epochs_to_target}; validation accuracy "
        f"ReLU {relu.val_accuracy:.1%}, tanh {tanh.val_accuracy:.1%}",
        flush=True,
    )
    ratio = [note for note in result.notes if note.startswith("tanh needed")]
    print(f"  {ratio[0] if ratio else 'no ratio: a run did not reach the target'} (the paper: 6x)", flush=True)


def ladder(scale: str, device: str) -> None:
    if not FLOWERS.is_dir():
        print(f"(no photo folder at {FLOWERS}; set PLAYGROUND_BENCH_DATA to time the ladder)", flush=True)
        return
    config = ExperimentConfig(preset="ladder", scale=scale, device=device)
    dataset = uploads.read_folder(FLOWERS, limit=config.limit())
    result, seconds = timed(config, dataset)
    budget = "" if scale == "gpu" else f" (budget 300 s: {'OK' if seconds < 300 else 'OVER'})"
    print(f"{scale.upper()}: the ladder, {len(dataset):,} five-flowers photos, one seed: {seconds:.0f} s{budget}")
    for row in result.rows:
        print(f"  {row.label:<34} validation accuracy {row.val_accuracy:.1%}  ({row.seconds:.0f} s)", flush=True)
    print(f"  theirs: {PRESETS['ladder'].theirs}", flush=True)
    for note in result.notes:
        if "ImageNet weights are unavailable" in note:
            print("  (the transfer rung had no ImageNet weights here: its features were random)", flush=True)
            break


def run() -> None:
    relu_vs_tanh("cpu", "cpu")
    ladder("cpu", "cpu")
    if not torch.cuda.is_available():
        print("No GPU here: the full-size presets (224 px) need a CUDA machine.", flush=True)
        return
    print(f"GPU {torch.cuda.get_device_name(0)}:", flush=True)
    relu_vs_tanh("gpu", "cuda")
    ladder("gpu", "cuda")
