"""Units: feature visualisation, whole-layer grid, top patches and fc7 map of 1,000 photos, neighbours, deconvnet.

The passes run as a worker runs them (one torch thread, in process here so the figures are the work itself);
one feature visualisation is also timed end to end through a real worker process, as the Units tab starts one
(forked from the running fork server, niced, previews through the pipe).
Data: ``PLAYGROUND_BENCH_DATA`` or ``../shared/data/flowers5`` (1,000 of its photos, spread over the classes).
"""

from __future__ import annotations

import time

import torch
from PIL import Image
from skimage import data as photos

from bench.common import median_ms, report
from bench.training import FLOWERS
from playground import activations as A
from playground import models
from playground.config import get_limits
from playground.data import uploads
from playground.layers import cut_at, frozen_copy
from playground.serving.workers import Worker, WorkerSettings, warm_up
from playground.units import probes as units
from playground.units.featurevis import FeatureVisSettings, grid_settings, visualise
from playground.units.jobs import UnitJob, layer_grid, pack, run_job
from playground.units.retrieval import Fc7Features, dataset_features, draw_map, fc7, neighbours, query_batch
from playground.units.toppatches import TopPatches, top_patches


def _timed(records) -> tuple[float, float, object]:
    """(seconds in all, longest gap between two records, the last record)."""
    start = last = time.perf_counter()
    gap, final = 0.0, None
    for final in records:  # noqa: B007 (the last record is the result)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    return time.perf_counter() - start, gap, final


def run(images: int = 1000) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a worker (and a request in the server) gets
    try:
        model = models.build("alexnet").eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        seconds, gap, _ = _timed(visualise(frozen_copy(cut_at(model, "features.10")), [3], FeatureVisSettings()))
        report("feature visualisation, conv5 channel, 256 steps at 128 px", seconds * 1000, 10_000)
        report("  longest wait between two previews", gap * 1000, 1000)
        job = UnitJob("featurevis", pack(model, trunk=True), "features.10", (3,), FeatureVisSettings())
        warm_up()  # the app starts its fork server when it starts, long before the first click ...
        settings = WorkerSettings.from_limits(
            memory_bytes=get_limits().units_worker_memory_bytes, kind="Units", idle=False
        )
        tiny = UnitJob("featurevis", job.network, "features.10", (3,), FeatureVisSettings(steps=1, size=32))
        list(Worker(run_job, tiny, settings=settings).records())  # ... and has imported torch by then
        start = time.perf_counter()
        worker, first = Worker(run_job, job, settings=settings), None
        for record in worker.records():
            if record is not None and first is None:
                first = time.perf_counter() - start
        report("  the same through a worker process: first preview", first * 1000)
        report("  the same through a worker process: final picture", (time.perf_counter() - start) * 1000, 10_000)
        settings = grid_settings(11)
        seconds, gap, _ = _timed(layer_grid(model, "features.0", list(range(64)), settings))
        report(f"whole conv1 grid, 64 channels, {settings.steps} steps at {settings.size} px", seconds * 1000, 20_000)

        if not FLOWERS.is_dir():
            print(f"(no {FLOWERS}: top patches and fc7 map over 1,000 photos skipped)")
            return
        start = time.perf_counter()
        dataset = uploads.read_folder(FLOWERS, limit=images)
        report(f"  reading {len(dataset)} flowers5 photos (not counted below)", (time.perf_counter() - start) * 1000)
        seconds, _, found = _timed(top_patches(model, dataset))
        assert isinstance(found, TopPatches)
        report(f"top-9 of every channel of all 5 conv layers, {len(dataset)} photos", seconds * 1000, 60_000)
        start = time.perf_counter()
        _, _, features = _timed(dataset_features(model, dataset))
        assert isinstance(features, Fc7Features)
        draw_map(features)
        report(
            f"fc7 map of {len(dataset)} photos (features, t-SNE, drawing)", (time.perf_counter() - start) * 1000, 30_000
        )
        cup = Image.fromarray(photos.coffee())
        ms = median_ms(lambda: neighbours(features, fc7(model, query_batch(cup))[0], k=8), repeat=10, warmup=2)
        report(f"8 nearest neighbours of one photo among {len(dataset)}", ms, 1000)
        x = A.preprocess(cup)
        for method in units.NEURON_METHODS:
            ms = median_ms(lambda m=method: units.unit_attribution(model, x, "features.10", 3, m), repeat=5, warmup=1)
            report(f"{method} for one conv5 channel, with its receptive field", ms, 1000)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    run()
