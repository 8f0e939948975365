"""Command line fine-tuning: ``python -m playground.training.train --data NAME_OR_PATH --model NAME --out DIR``.

The same command under ``torchrun --nproc_per_node=N`` trains with DistributedDataParallel (gloo on a
CPU, nccl on GPUs); only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from playground import models
from playground.data import datasets as data
from playground.training.finetune import FinetuneConfig, FinetuneResult, Progress, finetune


def parse_args(argv=None) -> argparse.Namespace:
    defaults = FinetuneConfig()
    parser = argparse.ArgumentParser(prog="python -m playground.training.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        required=True,
        help=f"a dataset name ({', '.join(data.DATASETS)}), a .zip of class folders, or a folder of them",
    )
    parser.add_argument("--model", default=defaults.model, choices=[*models.MODELS, *models.BASELINES])
    parser.add_argument(
        "--mode", default=defaults.mode, choices=["head", "full"], help="train the final layer only, or every layer"
    )
    parser.add_argument("--no-pretrained", action="store_true", help="start from random weights")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--optimizer", default=defaults.optimizer, choices=["adam", "sgd"])
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--color-jitter", action="store_true")
    parser.add_argument("--no-augment", action="store_true", help="no random crops or flips")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many images")
    parser.add_argument("--device", default=defaults.device, choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-seconds", type=float, default=None, help="wall-clock cap")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    paper = parser.add_argument_group("the paper's options (see playground.models.Options and FinetuneConfig)")
    paper.add_argument("--activation", default=defaults.activation, choices=["relu", "tanh", "sigmoid"])
    paper.add_argument("--lrn", choices=["on", "off"], help="local response normalisation (default: the model's)")
    paper.add_argument("--pooling", default=defaults.pooling, choices=["overlapping", "plain"])
    paper.add_argument("--dropout", type=float, default=defaults.dropout)
    paper.add_argument("--batch-norm", action="store_true")
    paper.add_argument("--init", default=defaults.init, choices=["default", "paper"])
    paper.add_argument("--drop-conv", type=int, choices=[2, 3, 4], help="remove this convolutional layer")
    paper.add_argument("--pca-colour", action="store_true", help="the paper's PCA colour noise")
    paper.add_argument("--schedule", default=defaults.schedule, choices=["constant", "cosine", "plateau"])
    paper.add_argument("--early-stopping", type=int, default=0, help="stop after N epochs without improvement")
    paper.add_argument("--ten-crop", action="store_true", help="validate on the paper's ten crops")
    parser.add_argument("--out", required=True, help="folder for model.safetensors and metrics.json")
    return parser.parse_args(argv)


def _bar(progress: Progress) -> str:
    if not progress.total_steps:
        return progress.message
    done = int(30 * progress.step / progress.total_steps)
    val = "" if progress.val_accuracy is None else f" val {progress.val_accuracy:.1%}"
    return (
        f"\r[{'#' * done}{'.' * (30 - done)}] epoch {progress.epoch}/{progress.epochs} step {progress.step}/{progress.total_steps} "
        f"loss {progress.loss:.3f} acc {progress.accuracy:.1%}{val} {progress.images_per_second:.0f} img/s "
        f"{progress.seconds_left:.0f} s left "
    )


@contextlib.contextmanager
def distributed(device: str):
    """Join torchrun's process group when there is one (``WORLD_SIZE`` > 1); yields this process's rank."""
    joined = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if joined:
        use_cuda = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        yield dist.get_rank() if joined else 0
    finally:
        if joined:
            dist.destroy_process_group()


def main(argv=None) -> int:
    args = parse_args(argv)
    with distributed(args.device) as rank:
        return _train(args, rank)


def _train(args: argparse.Namespace, rank: int) -> int:
    try:
        dataset = data.open_dataset(args.data, limit=args.limit)
        config = FinetuneConfig(
            model=args.model,
            pretrained=not args.no_pretrained,
            mode=args.mode,
            optimizer=args.optimizer,
            lr=args.lr,
            weight_decay=args.weight_decay,
            epochs=args.epochs,
            batch_size=args.batch_size,
            image_size=args.image_size,
            crop=not args.no_augment,
            flip=not args.no_augment,
            color_jitter=args.color_jitter,
            seed=args.seed,
            device=args.device,
            max_seconds=args.max_seconds,
            activation=args.activation,
            lrn=None if args.lrn is None else args.lrn == "on",
            pooling=args.pooling,
            dropout=args.dropout,
            batch_norm=args.batch_norm,
            init=args.init,
            drop_conv=args.drop_conv,
            pca_colour=args.pca_colour,
            schedule=args.schedule,
            early_stopping=args.early_stopping,
            ten_crop=args.ten_crop,
        )
        result, shown = None, 0.0
        for record in finetune(config, dataset):
            if isinstance(record, FinetuneResult):
                result = record
            elif rank == 0 and (time.monotonic() - shown > 0.2 or record.step == record.total_steps):
                shown = time.monotonic()  # at most five refreshes a second
                print(_bar(record), end="" if record.total_steps else "\n", file=sys.stderr, flush=True)
        if rank == 0 and result is not None:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            result.save(out / "model.safetensors")
            (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=2))
            print(
                f"\n{dataset.name}: validation accuracy {result.val_accuracy:.1%} after {len(result.history)} epoch(s), "
                f"{result.images_per_second:.0f} images/s. Wrote {out / 'model.safetensors'} and {out / 'metrics.json'}.",
                file=sys.stderr,
            )
            if result.notice:
                print(f"Note: {result.notice}", file=sys.stderr)
        return 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
