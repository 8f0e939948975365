"""Writing a trained model out: safetensors, a small JSON description, and ONNX."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import torch

from playground.training.finetune import FinetuneResult


def export_onnx(model: torch.nn.Module, path: str | Path, input_shape: tuple[int, int, int]) -> Path:
    """An ONNX file taking ``image`` (N, C, H, W, ImageNet-normalised) and giving ``logits`` (N, K)."""
    path = Path(path)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter is chatty
        # The torch.export-based exporter: the TorchScript one cannot export adaptive pooling at sizes
        # other than 224 px. One self-contained file, weights inside.
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, *input_shape),),
            str(path),
            dynamo=True,
            external_data=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    return path


def write_bundle(result: FinetuneResult, folder: str | Path, stem: str = "model") -> list[Path]:
    """``stem.safetensors`` (weights + metadata), ``stem.json`` (class names, variant, config, metrics)
    and ``stem.onnx`` in ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{stem}.safetensors"
    result.save(weights)
    description = folder / f"{stem}.json"
    metrics = result.metrics()
    description.write_text(
        json.dumps(
            {
                "variant": result.variant,
                "input_shape": list(result.input_shape),
                "classes": list(result.classes),
                "config": dataclasses.asdict(result.config),
                "metrics": {k: v for k, v in metrics.items() if k != "config"},
                "preprocessing": "RGB, resized to the input size, scaled to 0-1, normalised with ImageNet mean and std",
            },
            indent=2,
        )
    )
    onnx_path = export_onnx(result.model(), folder / f"{stem}.onnx", result.input_shape)
    return [weights, description, onnx_path]
