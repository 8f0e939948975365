"""Command line fine-tuning: ``python -m playground.training.train --data NAME_OR_PATH --model NAME --out DIR``.

The same command under ``torchrun --nproc_per_node=N`` trains with DistributedDataParallel (gloo on a
CPU, nccl on GPUs); only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
import typing
from pathlib import Path

import torch
import torch.distributed as dist

from playground import models
from playground.data import datasets as data
from playground.data.sources import DatasetSource
from playground.training.finetune import FinetuneConfig, FinetuneResult, Progress, finetune

# What a flag says beyond its field: its choices and its help. Every FinetuneConfig field gets a flag whether
# or not it is named here (``--batch-size`` for ``batch_size``, typed from the field): this only adds detail.
FLAG_DETAILS: dict[str, dict] = {
    "model": dict(choices=[*models.MODELS, *models.BASELINES]),
    "pretrained": dict(help="start from ImageNet weights where the model has them (--no-pretrained: random weights)"),
    "mode": dict(choices=["head", "full"], help="train the final layer only, or every layer"),
    "optimizer": dict(choices=["adam", "sgd"]),
    "crop": dict(help="random resized crops"),
    "flip": dict(help="random horizontal flips"),
    "device": dict(choices=["auto", "cpu", "cuda"]),
    "max_seconds": dict(help="wall-clock cap"),
    "compile": dict(choices=["auto", "yes", "no"], help="torch.compile (auto: GPU runs of 200 steps or more)"),
    "activation": dict(choices=list(models.ACTIVATIONS)),
    "lrn": dict(help="local response normalisation (default: the model's)"),
    "pooling": dict(choices=["overlapping", "plain"]),
    "init": dict(choices=["default", "paper"]),
    "drop_conv": dict(choices=[2, 3, 4], help="remove this convolutional layer"),
    "pca_colour": dict(help="the paper's PCA colour noise"),
    "schedule": dict(choices=["constant", "cosine", "plateau"]),
    "early_stopping": dict(help="stop after N epochs without improvement"),
    "ten_crop": dict(help="validate on the paper's ten crops"),
    "split_seed": dict(help="the train/validation split (default: the seed)"),
}


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"'on' or 'off', not {text!r}")
    return text == "on"


def add_config_options(
    parser: argparse.ArgumentParser,
    config_type: type = FinetuneConfig,
    *,
    defaults: bool = True,
    leave_out=(),
    title: str = "training settings (FinetuneConfig, see playground.training.finetune)",
) -> None:
    """A flag for every field of ``config_type`` (a FinetuneConfig), named after it: ``--batch-size``, a switch
    ``--crop/--no-crop`` for a bool, ``--lrn on|off`` for a bool that may be None, typed from the field; and
    ``--no-augment`` for ``--no-crop --no-flip``.

    Args:
        defaults: the fields' defaults; False: None, meaning "not given" (the experiments' overrides).
        leave_out: fields the command line sets another way.
        title: the heading of these flags in ``--help``.
    """
    group = parser.add_argument_group(title)
    hints, default = typing.get_type_hints(config_type), config_type()
    for field in dataclasses.fields(config_type):
        if field.name in leave_out:
            continue
        types = [t for t in typing.get_args(hints[field.name]) if t is not type(None)] or [hints[field.name]]
        # A field's own default (None for lr and epochs: the run's start picks them, see finetune.recipe).
        value = getattr(default, field.name) if field.default is dataclasses.MISSING else field.default
        options = {"default": value if defaults else None, **FLAG_DETAILS.get(field.name, {})}
        if types[0] is bool and typing.get_args(hints[field.name]):  # bool | None: on, off, or left to the model
            options.update(type=_on_off, metavar="{on,off}")
        elif types[0] is bool:
            options.update(action=argparse.BooleanOptionalAction)
        else:
            options.update(type=types[0])
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, **options)
    group.add_argument("--no-augment", action="store_true", help="no random crops or flips")


def config_values(args: argparse.Namespace, config_type: type = FinetuneConfig, *, leave_out=()) -> dict:
    """The settings :func:`add_config_options` read, by field name (None: not given, where it had no defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_type) if f.name not in leave_out}
    if args.no_augment:
        values.update(crop=False, flip=False)
    return values


def training_parser(config_type: type = FinetuneConfig) -> argparse.ArgumentParser:
    """This command line: the data, where to write, and every field of ``config_type``."""
    line = argparse.ArgumentParser(prog="python -m playground.training.train", description=__doc__.splitlines()[0])
    line.add_argument(
        "--data",
        required=True,
        help=f"a dataset name ({', '.join(data.DATASETS)}), a .zip of class folders, or a folder of them",
    )
    line.add_argument("--limit", type=int, default=None, help="use at most this many images")
    line.add_argument("--out", required=True, help="folder for model.safetensors and metrics.json")
    add_config_options(line, config_type)
    return line


def parse_args(argv=None) -> argparse.Namespace:
    return training_parser().parse_args(argv)


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
        config = FinetuneConfig(**config_values(args))
        dataset = DatasetSource.parse(args.data, limit=args.limit).open()
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
