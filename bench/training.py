"""Fine-tuning speed: the seeds' plain recipe against our engine on the same photos, and the CPU
target (a head-only fine-tune of 500 uploaded images in under 60 s). GPU figures when CUDA is present.

Data: ``PLAYGROUND_BENCH_DATA`` or ``../shared/data/flowers5`` (five class folders of photos).
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import torch
from torch import nn

from bench.common import report
from playground.data import uploads
from playground.training.finetune import FinetuneConfig, FinetuneResult, finetune

FLOWERS = Path(
    os.environ.get("PLAYGROUND_BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers5")
)


def _subset(root: Path, per_class: int) -> list[Path]:
    return [p for folder in sorted(root.iterdir()) if folder.is_dir() for p in sorted(folder.iterdir())[:per_class]]


def plain_recipe_images_per_second(root: Path, per_class: int, steps: int, device: str) -> float:
    """The notebook's way: ImageFolder, PIL transforms, DataLoader, fp32, pretrained-shape AlexNet, Adam."""
    import torchvision
    from torchvision import transforms as T

    transform = T.Compose(
        [
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
    keep = set(map(str, _subset(root, per_class)))
    folder.samples = [s for s in folder.samples if s[0] in keep]
    loader = torch.utils.data.DataLoader(folder, batch_size=16, shuffle=True, num_workers=2, drop_last=True)
    model = torchvision.models.alexnet(num_classes=5).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, start, done = 0, None, 0
    while done < steps + 2:
        for x, y in loader:
            if done == 2:  # two warm-up steps
                if device == "cuda":
                    torch.cuda.synchronize()
                start, seen = time.perf_counter(), 0
            x, y = x.to(device), y.to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
            done += 1
            if done >= steps + 2:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def engine_images_per_second(dataset, epochs: int, device: str, batch_size: int = 16) -> float:
    config = FinetuneConfig(
        model="alexnet", mode="full", pretrained=False, epochs=epochs, batch_size=batch_size, device=device
    )
    result = [r for r in finetune(config, dataset) if isinstance(r, FinetuneResult)][0]
    return result.images_per_second


def head_only_from_zip(root: Path, n: int) -> tuple[float, float]:
    """Zip 500 photos as a user would upload them, then time reading + head-only fine-tuning, end to end."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in _subset(root, n // 5):
            archive.write(path, f"{path.parent.name}/{path.name}")
    start = time.perf_counter()
    dataset = uploads.read_zip(io.BytesIO(buffer.getvalue()))
    result = [
        r for r in finetune(FinetuneConfig(model="alexnet", mode="head"), dataset) if isinstance(r, FinetuneResult)
    ][0]
    return time.perf_counter() - start, result.val_accuracy


def run() -> None:
    if not FLOWERS.is_dir():
        print(f"(no photo folder at {FLOWERS}; set PLAYGROUND_BENCH_DATA to time fine-tuning)")
        return
    seconds, accuracy = head_only_from_zip(FLOWERS, 500)
    report(
        f"CPU: head-only fine-tune of 500 zipped photos, 10 epochs, end to end (val {accuracy:.0%})",
        seconds * 1000,
        60_000,
    )
    plain = plain_recipe_images_per_second(FLOWERS, 20, steps=6, device="cpu")
    ours = engine_images_per_second(uploads.read_folder(FLOWERS, limit=100), epochs=1, device="cpu")
    print(
        f"CPU, full fine-tune of AlexNet at 224 px, batch 16: plain recipe {plain:.1f} img/s, engine {ours:.1f} img/s "
        f"({ours / plain:.2f}x)",
        flush=True,
    )
    if not torch.cuda.is_available():
        print("No GPU here: the GPU comparison (target 15x) and the Fashion-MNIST run need a CUDA machine.", flush=True)
        return
    name = torch.cuda.get_device_name(0)
    plain = plain_recipe_images_per_second(FLOWERS, 200, steps=60, device="cuda")
    ours = engine_images_per_second(uploads.read_folder(FLOWERS), epochs=3, device="cuda", batch_size=256)
    print(
        f"GPU {name}: plain recipe {plain:.0f} img/s, engine {ours:.0f} img/s ({ours / plain:.1f}x, target 15x)",
        flush=True,
    )
