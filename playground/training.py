"""Fine-tuning: one generator, ``finetune(config, dataset)``, on a CPU or a GPU, alone or under torchrun.

The whole decoded dataset sits on the device as one uint8 tensor; batches are index slices of a
random permutation, and augmentation (random resized crops, flips, colour jitter) runs on the same
device as the model, batch by batch. On a GPU the model also runs in bf16 autocast with channels_last
memory and, for longer runs, ``torch.compile``. The same code runs on a CPU without those.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from playground import models
from playground.activations import MEAN, STD
from playground.data import ImageDataset, stratified_split


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    model: str = "alexnet"  # alexnet, alexnet2012, alexnet_compact, or the baselines linear / mlp
    pretrained: bool = True  # start from ImageNet weights when they exist (alexnet only)
    mode: str = "head"  # "head": only the final layer learns; "full": every layer does
    optimizer: str = "adam"  # "adam", or "sgd" with momentum
    lr: float = 1e-3  # the course's recipe: Adam at 1e-3, batch 16, 10 epochs
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # the paper used 5e-4 with SGD
    epochs: int = 10
    batch_size: int = 16
    image_size: int = 224  # what the network sees; stored images are resized to it
    crop: bool = True  # random resized crops (area 35-100 %, aspect 3:4-4:3)
    flip: bool = True  # random horizontal flips
    color_jitter: bool = False  # random brightness, contrast and saturation (±30 %)
    val_fraction: float = 0.2  # stratified validation split
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    max_seconds: float | None = None  # wall-clock cap: stop after the step that crosses it
    compile: str = "auto"  # torch.compile: "auto" (GPU runs of 200+ steps), "yes" or "no"

    def validate(self) -> None:
        if self.model not in models.MODELS and self.model not in models.BASELINES:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {', '.join([*models.MODELS, *models.BASELINES])}.")
        for name, value, low, high in (
            ("epochs", self.epochs, 1, 1000), ("batch_size", self.batch_size, 1, 4096), ("image_size", self.image_size, 16, 512)
        ):
            if int(value) != value or not low <= value <= high:
                raise ValueError(f"{name.replace('_', ' ')} must be a whole number from {low} to {high}, got {value}.")
        if not 0 < self.lr <= 1:
            raise ValueError(f"The learning rate must be between 0 and 1, got {self.lr}.")
        if self.mode not in ("head", "full") or self.optimizer not in ("adam", "sgd") or self.compile not in ("auto", "yes", "no"):
            raise ValueError("mode is 'head' or 'full', optimizer 'adam' or 'sgd', compile 'auto', 'yes' or 'no'.")


@dataclasses.dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: int  # 1-based
    epochs: int
    loss: float  # this epoch's running mean
    accuracy: float  # this epoch's running training accuracy
    val_accuracy: float | None  # after the last finished epoch
    images_per_second: float
    seconds_left: float
    message: str = ""


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    state_dict: dict  # CPU tensors
    variant: str
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    config: FinetuneConfig
    history: list  # one dict per epoch: epoch, loss, accuracy, val_accuracy, seconds
    val_accuracy: float
    confusion: np.ndarray  # (K, K): rows are true classes, columns predictions (validation set)
    per_class_accuracy: list
    misclassified: list  # (dataset index, true class, predicted class, confidence)
    seconds: float
    images_per_second: float
    notice: str = ""  # e.g. "ImageNet weights unavailable: trained from scratch"
    stopped_early: bool = False
    initial_first_conv: torch.Tensor | None = None  # the first layer's weights before training (CPU)

    def model(self) -> nn.Module:
        """The trained network, rebuilt on the CPU in eval mode."""
        network = models.build(self.variant, num_classes=len(self.classes), input_shape=self.input_shape)
        network.load_state_dict(self.state_dict)
        return network.eval()

    def metrics(self) -> dict:
        return {
            "val_accuracy": self.val_accuracy,
            "history": self.history,
            "classes": list(self.classes),
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy)),
            "confusion": self.confusion.tolist(),
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "stopped_early": self.stopped_early,
            "notice": self.notice,
            "config": dataclasses.asdict(self.config),
        }

    def save(self, path) -> None:
        """safetensors with class names, variant, input shape, config and metrics in the metadata."""
        metrics = {k: v for k, v in self.metrics().items() if k not in ("config", "confusion")}
        models.save_checkpoint(
            self.model(), path, variant=self.variant, classes=self.classes,
            extra={"input_shape": list(self.input_shape), "config": dataclasses.asdict(self.config), "metrics": metrics},
        )


# --- the batch pipeline (the same on CPU and GPU) -------------------------------------------------------


def prepare_batch(images: torch.Tensor, size: int, *, train: bool, crop: bool = True, flip: bool = True, color_jitter: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) on any device -> normalised float (B, 3, size, size), augmented when ``train``.

    Every image gets its own crop, flip and colours: crops are ``roi_align`` boxes, one per image.
    """
    x = images.float().div_(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # gray datasets (Fashion-MNIST) feed the RGB networks
    batch, _, height, width = x.shape
    device = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(device)

    if train and crop:
        area = (0.35 + 0.65 * rand(batch)) * height * width
        aspect = torch.exp(math.log(3 / 4) + rand(batch) * math.log(16 / 9))
        w = torch.sqrt(area * aspect).clamp(max=width)
        h = torch.sqrt(area / aspect).clamp(max=height)
        x0, y0 = rand(batch) * (width - w), rand(batch) * (height - h)
        boxes = torch.stack([torch.arange(batch, device=device, dtype=x.dtype), x0, y0, x0 + w, y0 + h], dim=1)
        x = roi_align(x.contiguous(), boxes, output_size=(size, size), aligned=True)
    elif (height, width) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < height)
    if train and flip:
        mirrored = rand(batch) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
    if train and color_jitter:
        brightness, contrast, saturation = (0.7 + 0.6 * rand(3, batch, 1, 1, 1)).unbind(0)
        x = x * brightness
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray.mean(dim=(2, 3), keepdim=True)) * contrast + gray.mean(dim=(2, 3), keepdim=True)
        gray = x.mean(dim=1, keepdim=True)
        x = (gray + (x - gray) * saturation).clamp_(0, 1)
    return (x - MEAN.to(device)) / STD.to(device)


# --- models ----------------------------------------------------------------------------------------------


def _make_model(config: FinetuneConfig, num_classes: int) -> tuple[nn.Module, str]:
    """The network to train and a notice when it is not what was asked for."""
    if config.model in models.BASELINES:
        return models.build(config.model, num_classes=num_classes, input_shape=(3, config.image_size, config.image_size)), ""
    notice = ""
    if config.model == "alexnet" and config.pretrained:
        model, info = models.load("alexnet", "imagenet")
        if info.source != "imagenet":
            notice = "ImageNet weights are unavailable here, so AlexNet trains from scratch (random weights). " + models.how_to_get_imagenet_weights()
        model.classifier[6] = nn.Linear(model.classifier[6].in_features, num_classes)  # a fresh head for our classes
    else:
        if config.pretrained and config.model != "alexnet":
            notice = f"{config.model} has no pretrained weights; it trains from scratch."
        model = models.build(config.model, num_classes=num_classes)
    for module in model.modules():  # training needs no in-place tricks and they upset autograd hooks
        if getattr(module, "inplace", False):
            module.inplace = False
    return model, notice


def _split_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(frozen backbone up to the last layer's input, the last linear layer)."""
    if isinstance(model, nn.Sequential):  # baselines: the whole thing is the head
        return nn.Identity(), model
    backbone = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *list(model.classifier)[:-1])
    return backbone, model.classifier[-1]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("A CUDA GPU was asked for, but none is available here.")
    return torch.device(name)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the fast path turns on, decided from the device and the run's length."""

    autocast: bool  # bf16 autocast
    channels_last: bool
    compile: bool


def plan_for(device: torch.device, config: FinetuneConfig, total_steps: int) -> Plan:
    gpu = device.type == "cuda"
    compile_it = config.compile == "yes" or (config.compile == "auto" and gpu and total_steps >= 200)
    # bf16 needs Ampere or newer to be fast (a T4 would run it slower than fp32).
    bf16 = gpu and torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    return Plan(autocast=bf16, channels_last=gpu, compile=compile_it)


def _optimizer(config: FinetuneConfig, parameters) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


# --- the engine ------------------------------------------------------------------------------------------


def finetune(config: FinetuneConfig, dataset: ImageDataset) -> Iterator[Progress | FinetuneResult]:
    """Train, yielding a :class:`Progress` after every step and a :class:`FinetuneResult` at the end.

    Closing the generator (or breaking out of the loop) stops within one step and frees the memory;
    nothing is returned then, so an earlier result is never replaced by a cancelled run.

    Raises:
        ValueError: a bad configuration, too little data, or the GPU ran out of memory.
    """
    config.validate()
    device = _device(config.device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    torch.manual_seed(config.seed)
    train_idx, val_idx = stratified_split(dataset.labels, config.val_fraction, config.seed)
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise ValueError("Too few images to train and validate on: use at least a few images per class.")
    num_classes = len(dataset.classes)
    state = {}
    started = time.perf_counter()  # the run's clock includes computing head-only features
    try:
        images = dataset.images.to(device)  # the decoded dataset lives on the device, as uint8
        labels = dataset.labels.to(device)
        model, notice = _make_model(config, num_classes)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        state["initial_first_conv"] = convs[0].weight.detach().cpu().clone() if convs else None
        head_only = config.mode == "head" and config.model not in models.BASELINES
        steps_per_epoch = math.ceil(math.ceil(len(train_idx) / world) / config.batch_size)
        plan = plan_for(device, config, steps_per_epoch * config.epochs)
        model = model.to(device)
        if plan.channels_last:
            model = model.to(memory_format=torch.channels_last)
        state.update(images=images, labels=labels, model=model)
        if head_only:
            backbone, head = _split_head(model)
            # The frozen backbone's features, once: augmentation cannot apply to them. In chunks, so that a
            # stop (closing this generator) or the time cap takes effect within one chunk.
            chunks = []
            for chunk in _features(backbone, images, config, plan):
                chunks.append(chunk)
                done = min(len(images), 64 * len(chunks))
                yield Progress(0, 0, 0, config.epochs, 0.0, 0.0, None, 0.0, 0.0, f"Computing the frozen backbone's features once: {done} of {len(images)} images…")
                if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                    raise ValueError(f"The {config.max_seconds:g} s time cap was reached while computing features; use fewer images.")
            features = torch.cat(chunks)
            # Train on standardised features (a random backbone's are ~1e-3 in size, a trained one's are not
            # centred), then fold the scaling back into the layer so the network takes raw features again.
            mean = features[train_idx.to(device)].mean(dim=0)
            scale = features[train_idx.to(device)].std(dim=0).clamp_min(1e-12)
            inputs = (features - mean) / scale
            state.update(fold=(head, mean, scale))
            trainable, forward = head, head
        else:
            inputs = images
            trainable = model
            forward = torch.compile(model) if plan.compile else model
        if world > 1:
            forward = torch.nn.parallel.DistributedDataParallel(forward)
        optimizer = _optimizer(config, trainable.parameters())
        yield from _train(config, forward, optimizer, inputs, labels, train_idx, val_idx, head_only, plan, device, rank, world, notice, dataset, model, state, started)
    except torch.cuda.OutOfMemoryError:
        state.clear()
        gc.collect()
        torch.cuda.empty_cache()
        raise ValueError(
            f"The GPU ran out of memory with batch size {config.batch_size} at {config.image_size} px; "
            "try a smaller batch or image size."
        ) from None
    finally:
        state.clear()  # a cancelled or finished run lets go of the dataset and the model on the device
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _features(backbone: nn.Module, images: torch.Tensor, config: FinetuneConfig, plan: Plan) -> Iterator[torch.Tensor]:
    """The backbone's output for every image, 64 at a time."""
    backbone.eval()
    for start in range(0, len(images), 64):
        with torch.no_grad(), torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=plan.autocast):
            x = prepare_batch(images[start : start + 64], config.image_size, train=False)
            if plan.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield backbone(x).float()


def _batches(order: torch.Tensor, batch_size: int):
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _inputs(inputs, index, config, head_only, plan, train, generator):
    if head_only:
        return inputs[index]
    x = prepare_batch(inputs[index], config.image_size, train=train, crop=config.crop, flip=config.flip, color_jitter=config.color_jitter, generator=generator)
    return x.contiguous(memory_format=torch.channels_last) if plan.channels_last else x


def _predict(forward, inputs, labels, val_idx, config, head_only, plan, device):
    forward.eval()
    predictions, confidences = [], []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.autocast):
        for index in _batches(val_idx.to(device), max(64, config.batch_size)):
            probabilities = torch.softmax(forward(_inputs(inputs, index, config, head_only, plan, False, None)).float(), dim=1)
            confidence, predicted = probabilities.max(dim=1)
            predictions.append(predicted)
            confidences.append(confidence)
    return torch.cat(predictions).cpu(), torch.cat(confidences).cpu()


def _train(config, forward, optimizer, inputs, labels, train_idx, val_idx, head_only, plan, device, rank, world, notice, dataset, model, state, started):
    augment = torch.Generator().manual_seed(config.seed + 7919 * rank)  # each rank its own crops and flips
    per_rank = len(train_idx) // world  # every rank takes the same number of steps, or DDP waits forever
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    history, val_accuracy, step, seen = [], None, 0, 0
    stopped_early = False
    loss_sum, correct, count, synced = torch.zeros((), device=device), torch.zeros((), device=device), 0, (0.0, 0.0)
    last_sync = 0.0
    for epoch in range(1, config.epochs + 1):
        forward.train()
        epoch_start, count = time.perf_counter(), 0
        loss_sum.zero_()
        correct.zero_()
        # The same permutation on every rank (seeded by the epoch), cut into equal disjoint shards.
        shuffle = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = train_idx[torch.randperm(len(train_idx), generator=shuffle)][: per_rank * world][rank::world]
        for index in _batches(order.to(device), config.batch_size):
            x = _inputs(inputs, index, config, head_only, plan, True, augment)
            y = labels[index]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.autocast):
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(index)
            count += len(index)
            # Running sums stay on the device; reading them forces a GPU sync, so do it twice a second.
            loss_sum += loss.detach() * len(index)
            correct += (logits.argmax(dim=1) == y).sum()
            now = time.perf_counter()
            elapsed = now - started
            if now - last_sync > 0.5 or step % steps_per_epoch == 0:
                synced, last_sync = (float(loss_sum) / count, float(correct) / count), now
            yield Progress(step, total_steps, epoch, config.epochs, synced[0], synced[1], val_accuracy,
                           seen * world / max(elapsed, 1e-9), (total_steps - step) * elapsed / step)
            if _all_agree(config.max_seconds is not None and elapsed > config.max_seconds, device, world):
                stopped_early = True
                break
        predicted, confidence = _predict(forward, inputs, labels, val_idx, config, head_only, plan, device)
        val_accuracy = float((predicted == labels[val_idx.to(device)].cpu()).float().mean())
        history.append({"epoch": epoch, "loss": float(loss_sum) / max(count, 1), "accuracy": float(correct) / max(count, 1),
                        "val_accuracy": val_accuracy, "seconds": time.perf_counter() - epoch_start})
        if stopped_early:
            notice = (notice + " " if notice else "") + f"Stopped at the {config.max_seconds:g} s time cap after epoch {epoch}."
            break
    seconds = time.perf_counter() - started
    truth = dataset.labels[val_idx]
    k = len(dataset.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth.numpy(), predicted.numpy()), 1)
    per_class = [float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else 0.0 for i in range(k)]
    wrong = torch.nonzero(predicted != truth).flatten()
    misclassified = [(int(val_idx[i]), int(truth[i]), int(predicted[i]), float(confidence[i])) for i in wrong]
    misclassified.sort(key=lambda item: -item[3])  # the most confident mistakes first
    if "fold" in state:
        _fold(*state["fold"])
    trained = model._orig_mod if hasattr(model, "_orig_mod") else model
    cpu_state = {key: value.detach().float().cpu().clone() for key, value in trained.state_dict().items()}
    variant = config.model
    input_shape = (3, config.image_size, config.image_size)
    initial_first_conv = state.get("initial_first_conv")
    state.clear()
    yield FinetuneResult(
        cpu_state, variant, input_shape, dataset.classes, config, history, float(np.trace(confusion) / max(confusion.sum(), 1)),
        confusion, per_class, misclassified, seconds, seen * world / max(seconds, 1e-9), notice.strip(), stopped_early,
        initial_first_conv,
    )


def _all_agree(flag: bool, device: torch.device, world: int) -> bool:
    """True when any rank says so (under torchrun every rank must stop at the same step)."""
    if world == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


def _fold(layer: nn.Linear, mean: torch.Tensor, scale: torch.Tensor) -> None:
    """Make ``layer(x)`` equal what it computed on ``(x - mean) / scale`` during training."""
    with torch.no_grad():
        weight = layer.weight / scale  # (K, D) / (D,)
        layer.bias.sub_(weight @ mean)
        layer.weight.copy_(weight)
