"""Fine-tuning: one generator, ``finetune(config, dataset)``, on a CPU or a GPU, alone or under torchrun.

The whole decoded dataset sits on the device as one uint8 tensor; batches are index slices of a
random permutation, and augmentation (random resized crops, flips, colour jitter, PCA colour noise;
:mod:`playground.training.batches`) runs on the same device as the model, batch by batch. On a GPU the model also runs in bf16 autocast with channels_last
memory and, for longer runs, ``torch.compile``. The same code runs on a CPU without those.

Hardware, time and accuracy (``python -m bench``; 2-core Xeon, no GPU, torch 2.14, untrained backbone
because ImageNet weights cannot be downloaded there):
- head only, 500 zipped 128 px flower photos (five classes), 10 epochs, unzip + decode + train: ~4 s,
  about 46 % validation accuracy (random conv features; with ImageNet weights the lecture reports 80-90 %);
- full fine-tuning of AlexNet at 224 px, batch 16: ~24 images/s (the plain DataLoader + PIL recipe: ~18).
GPU figures are unmeasured (no GPU was at hand); the bench prints them when CUDA is present.

Beyond the course's recipe, a run can follow the paper's: any of the network options of
:class:`playground.models.Options`, PCA colour noise, SGD with weight decay, the learning rate divided by
10 when validation stops improving, early stopping, top-5 error and ten-crop testing.

Randomness is private to the run: the split, initial weights, order and augmentation come from
generators seeded by ``config.seed``. Dropout draws from torch's process-wide generators, which other
users' work shares: each training step's forward pass runs in a fork of them seeded by (seed, rank, step)
(:func:`_private_dropout`), so equal runs draw equal masks and the process-wide state is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from playground import models
from playground.data.datasets import ImageDataset, stratified_split
from playground.layers import conv_layers, cut_at, cut_points, without_inplace
from playground.training.batches import ColourPCA, colour_pca, prepare_batch, ten_crops
from playground.weights import checkpoints

FEATURE_CHUNK = 64  # head-only: images per backbone pass (a stop or the time cap acts between chunks)


# The defaults a run's start calls for (FinetuneConfig fields), with batch 16 and Adam in both. From ImageNet weights,
# the course's recipe. From random weights with every layer learning, Adam at 1e-3 leaves the loss flat at ln(classes):
# the compact AlexNet on 200 flower photos (five classes, 224 px) predicted one class for everything, 15 % validation
# accuracy after 10 epochs; at 1e-4 its loss fell from epoch 5 and it reached 42.5 % (chance: 20 %).
COURSE_RECIPE = {"lr": 1e-3, "epochs": 10}
SCRATCH_RECIPE = {"lr": 1e-4, "epochs": 10}


def from_scratch(model: str, pretrained: bool, mode: str) -> bool:
    """Whether a run trains a network's every layer from random weights (an AlexNet in full without ImageNet
    weights here); the baselines, on raw pixels, keep the course's recipe."""
    record = models.MODELS.get(model)  # None for a baseline or an unknown name (validate names it)
    return record is not None and mode == "full" and not imagenet_start(model, pretrained)


def recipe(model: str, pretrained: bool, mode: str) -> dict:
    """The defaults (``lr``, ``epochs``) a run of ``model`` with this start and ``mode`` trains with."""
    return dict(SCRATCH_RECIPE if from_scratch(model, pretrained, mode) else COURSE_RECIPE)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    model: str = "alexnet"  # alexnet, alexnet2012, alexnet_compact, or the baselines linear / mlp
    pretrained: bool = True  # start from ImageNet weights when they exist (alexnet only)
    mode: str = "head"  # "head": only the final layer learns; "full": every layer does
    optimizer: str = "adam"  # "adam", or "sgd" with momentum
    lr: float | None = None  # None: the start's recipe (see recipe): the course's Adam at 1e-3, lower from scratch
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # the paper used 5e-4 with SGD
    epochs: int | None = None  # None: the start's recipe (the course's 10)
    batch_size: int = 16
    image_size: int = 224  # what the network sees; stored images are resized to it
    crop: bool = True  # random resized crops (area 35-100 %, aspect 3:4-4:3)
    flip: bool = True  # random horizontal flips
    color_jitter: bool = False  # random brightness, contrast and saturation (±30 %)
    val_fraction: float = 0.2  # stratified validation split
    seed: int = 0  # initial weights, batch order and augmentation (and the split, unless split_seed says)
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    max_seconds: float | None = None  # wall-clock cap: stop after the step that crosses it
    compile: str = "auto"  # torch.compile: "auto" (GPU runs of 200+ steps), "yes" or "no"
    # The network's shape: models.Options, whose defaults build each variant as published.
    activation: str = "relu"  # "tanh" or "sigmoid": the paper's Figure 1 compares ReLU with tanh
    lrn: bool | None = None  # local response normalisation after conv1/conv2 (None: the variant's choice)
    pooling: str = "overlapping"  # "plain": 2 x 2 windows instead of the paper's overlapping 3 x 3 at stride 2
    dropout: float = 0.5  # the head's dropout probability (0: none; the paper says the net overfits then)
    batch_norm: bool = False  # batch normalisation after every conv (it came three years after AlexNet)
    init: str = "default"  # "paper": N(0, 0.01) weights, biases 1 in conv2/4/5 and fc6/fc7
    drop_conv: int | None = None  # remove conv2, conv3 or conv4 (the paper: about 2 points of top-1 each)
    # The paper's training recipe, each part optional.
    pca_colour: bool = False  # "fancy PCA": shift each image's colours along the data's principal RGB axes
    schedule: str = "constant"  # "constant" (the course's recipe), "cosine" to zero, "plateau": ÷10 when stuck
    plateau_patience: int = 1  # "plateau": epochs without a better validation accuracy tolerated before ÷10
    early_stopping: int = 0  # stop after this many epochs without a better validation accuracy (0: never)
    ten_crop: bool = False  # validate on the paper's ten views (corners, centre, mirrored), averaged
    split_seed: int | None = None  # the train/validation split (None: seed); experiments share one split

    def __post_init__(self):
        for name, value in recipe(self.model, self.pretrained, self.mode).items():  # what was left to the recipe
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def model_options(self) -> dict:
        """The :class:`playground.models.Options` this run builds with, those that differ from the defaults.

        Raises:
            ValueError: an impossible option value.
        """
        names = [field.name for field in dataclasses.fields(models.Options)]
        return models.parse_options({name: getattr(self, name) for name in names}).changed()

    def validate(self) -> None:
        record = models.spec(self.model)  # raises for an unknown name
        for name, value, low, high in (
            ("epochs", self.epochs, 1, 1000),
            ("batch_size", self.batch_size, 1, 4096),
            ("image_size", self.image_size, 16, 512),
            ("plateau_patience", self.plateau_patience, 0, 100),
            ("early_stopping", self.early_stopping, 0, 1000),
        ):
            if int(value) != value or not low <= value <= high:
                raise ValueError(f"{name.replace('_', ' ')} must be a whole number from {low} to {high}, got {value}.")
        if not 0 < self.lr <= 1:
            raise ValueError(f"The learning rate must be between 0 and 1, got {self.lr}.")
        if not 0 <= self.weight_decay <= 1:
            raise ValueError(f"Weight decay must be between 0 and 1, got {self.weight_decay}.")
        if (
            self.mode not in ("head", "full")
            or self.optimizer not in ("adam", "sgd")
            or self.compile not in ("auto", "yes", "no")
            or self.schedule not in ("constant", "cosine", "plateau")
        ):
            raise ValueError(
                "mode is 'head' or 'full', optimizer 'adam' or 'sgd', compile 'auto', 'yes' or 'no', "
                "schedule 'constant', 'cosine' or 'plateau'."
            )
        options = self.model_options()
        if record.convolutional and self.image_size < (smallest := models.smallest_input(self.model, **options)):
            raise ValueError(
                f"{self.model} cannot see {self.image_size} px images: they shrink to nothing before its last "
                f"pooling layer. Use {smallest} px or more."
            )
        if options and not record.convolutional:
            raise ValueError(
                f"The {self.model} baseline has no convolutional layers: the AlexNet options do not apply."
            )
        if self.pretrained and record.weights is not None:
            shape = {key: value for key, value in options.items() if key != "dropout"}  # dropout has no weights
            if "drop_conv" in shape:
                raise ValueError(
                    f"Removing conv{self.drop_conv} from a pretrained AlexNet leaves the next layer without the inputs "
                    "its ImageNet weights were learned on. Train from scratch (no pretrained weights) to remove a layer."
                )
            if shape:
                raise ValueError(
                    f"The ImageNet weights were learned by AlexNet as published; with {_words(shape)} they would not "
                    "compute what they learned. Train from scratch (no pretrained weights) to change the network."
                )
        if record.convolutional and self.mode == "head" and (self.pca_colour or self.ten_crop):
            raise ValueError(
                "PCA colour noise and ten-crop testing change the images, and head-only training computes each "
                "image's features once, unaugmented. Use full training for them."
            )


def _words(options: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in options.items())


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
    classes: int = 0  # how many classes the data holds: chance is 1 / classes


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
    top5_accuracy: float | None = None  # validation; None with five classes or fewer (it would always be 100 %)
    best_epoch: int | None = None  # early stopping: the epoch whose weights (and scores) these are
    imagenet_start: bool = False  # whether it started from ImageNet weights (not random ones)

    def model(self) -> nn.Module:
        """The trained network, rebuilt on the CPU in eval mode."""
        network = models.build(
            self.variant,
            num_classes=len(self.classes),
            input_shape=self.input_shape,
            **self.config.model_options(),
        )
        network.load_state_dict(self.state_dict)
        return network.eval()

    def metrics(self) -> dict:
        return {
            "val_accuracy": self.val_accuracy,
            "top5_accuracy": self.top5_accuracy,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "classes": list(self.classes),
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy)),
            "confusion": self.confusion.tolist(),
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "stopped_early": self.stopped_early,
            "notice": self.notice,
            "imagenet_start": self.imagenet_start,
            "config": dataclasses.asdict(self.config),
        }

    def save(self, path) -> None:
        """safetensors with class names, variant, input shape, config and metrics in the metadata."""
        metrics = {k: v for k, v in self.metrics().items() if k not in ("config", "confusion")}
        checkpoints.save_checkpoint(
            self.model(),
            path,
            variant=self.variant,
            classes=self.classes,
            options=self.config.model_options(),
            extra={
                "input_shape": list(self.input_shape),
                "config": dataclasses.asdict(self.config),
                "metrics": metrics,
            },
        )


# --- models ----------------------------------------------------------------------------------------------


def imagenet_weights_at_hand() -> bool:
    """Whether a pretrained AlexNet would start from ImageNet weights here, without downloading anything: torch's
    cache holds them (an online app fetches them as it starts) or ``PLAYGROUND_ALEXNET_WEIGHTS`` names a file."""
    named = os.environ.get(checkpoints.WEIGHTS_ENV)
    return checkpoints.imagenet_weights_path().is_file() or bool(named and Path(named).is_file())


def imagenet_start(model: str, pretrained: bool, at_hand: bool | None = None) -> bool:
    """Whether a run of ``model`` really starts from ImageNet weights (``at_hand``: None to look)."""
    record = models.spec(model)
    if not (pretrained and record.convolutional and record.weights is not None):
        return False
    return imagenet_weights_at_hand() if at_hand is None else at_hand


def pretrained_choice(model: str) -> tuple[str, bool]:
    """The words of a "start from ImageNet weights" switch for ``model``, and whether that start is possible here."""
    record = models.spec(model)
    if record.weights is None:
        return f"Start from ImageNet weights (none exist for {model}: it starts from random weights)", False
    if not imagenet_weights_at_hand():
        return f"Start from ImageNet weights ({model}: not available here, so random weights)", False
    return f"Start from ImageNet weights ({model})", True


def describe_start(model: str, mode: str, pretrained: bool, at_hand: bool | None = None) -> str:
    """What a run really starts from and what learns, in a sentence a learner reads before (and after) training.

    ``at_hand``: whether ImageNet weights are here (None: look, see :func:`imagenet_weights_at_hand`).
    """
    record = models.spec(model)
    if not record.convolutional:
        return f"The {model} baseline trains from scratch on raw pixels (no pretrained weights exist for it)."
    if imagenet_start(model, pretrained, at_hand):
        if mode == "head":
            return f"{model} starts from ImageNet weights; only its last layer learns, on the frozen ImageNet features."
        return f"{model} starts from ImageNet weights and every layer fine-tunes."
    if pretrained and record.weights is not None:
        who = f"ImageNet weights are unavailable here, so {model}"
    elif pretrained:
        who = f"{model} has no ImageNet weights, so it"
    else:
        who = model
    if mode == "head":
        return (
            f"{who} starts from random weights and only its last layer learns, on frozen random features "
            "(ImageNet features do far better; training in full lets the features learn too)."
        )
    return f"{who} trains every layer from scratch (random weights)."


def _make_model(config: FinetuneConfig, num_classes: int, generator: torch.Generator) -> tuple[nn.Module, str, bool]:
    """The network to train, initialised from ``generator``, a notice when it is not what was asked for, and
    whether it starts from ImageNet weights."""
    record = models.spec(config.model)
    notice, imagenet = "", False
    if not record.convolutional:
        model = models.build(
            config.model,
            num_classes=num_classes,
            input_shape=(3, config.image_size, config.image_size),
            generator=generator,
        )
    elif config.pretrained and record.weights is not None:
        model, info = checkpoints.load(config.model, "imagenet", generator=generator)
        imagenet = info.source == "imagenet"
        if not imagenet:
            notice = (
                describe_start(config.model, config.mode, True, at_hand=False)
                + " "
                + checkpoints.how_to_get_imagenet_weights()
            )
        head = nn.Linear(model.classifier[-1].in_features, num_classes)  # a fresh head for our classes
        models.initialise(head, generator)
        model.classifier[-1] = head
        for module in model.modules():  # the one option that leaves ImageNet weights meaningful (see validate)
            if isinstance(module, nn.Dropout):
                module.p = config.dropout
    else:
        if config.pretrained:
            notice = describe_start(config.model, config.mode, True)
        options = config.model_options()
        model = models.build(config.model, num_classes=num_classes, generator=generator, **options)
    # Training needs no in-place tricks, and they upset autograd hooks.
    return without_inplace(model), notice, imagenet


def _split_head(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """(frozen backbone up to the last layer's input, the last linear layer) of an AlexNet."""
    *_, before_head, head = cut_points(model)  # classifier.5, classifier.6
    return cut_at(model, before_head), model.get_submodule(head)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("A CUDA GPU was asked for, but none is available here.")
    return torch.device(name)


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """What the fast path turns on, decided from the device and the run's length."""

    autocast: bool  # bf16 autocast
    channels_last: bool
    compile: bool


def device_plan(device: torch.device, config: FinetuneConfig, total_steps: int) -> DevicePlan:
    gpu = device.type == "cuda"
    compile_it = config.compile == "yes" or (config.compile == "auto" and gpu and total_steps >= 200)
    # bf16 needs Ampere or newer to be fast (a T4 would run it slower than fp32).
    bf16 = gpu and torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    return DevicePlan(autocast=bf16, channels_last=gpu, compile=compile_it)


# GPU milliseconds per image at 224 px (forward and backward, bf16), assumed for planning a ZeroGPU slot: a
# third of an H100's measured AlexNet rate, as a safety margin. Unmeasured here (no GPU was at hand).
_GPU_MS_PER_IMAGE = {"alexnet": 1.0, "alexnet2012": 1.2, "alexnet_compact": 0.5, "linear": 0.01, "mlp": 0.02}
_GPU_START_SECONDS = 20.0  # moving the data, building the model, validation passes, the ONNX export
_GPU_COMPILE_SECONDS = 60.0


def steps_per_epoch(train_images: int, batch_size: int, world: int = 1) -> int:
    """Optimizer steps in one epoch: each of ``world`` ranks takes an equal share of the training images (the
    remainder is left out, or DDP would wait forever) in batches of ``batch_size``, the last one smaller."""
    return math.ceil((train_images // world) / batch_size)


def gpu_seconds(config: FinetuneConfig, images: int) -> float:
    """A generous estimate of the GPU time a run needs, from its planned steps (to book a ZeroGPU slot)."""
    train_images = images * (1 - config.val_fraction)
    per_image = _GPU_MS_PER_IMAGE.get(config.model, 1.0) / 1000 * (config.image_size / 224) ** 2
    if config.mode == "head" and models.spec(config.model).convolutional:
        seconds = images * per_image / 3  # the backbone once, forward only; the head costs nothing
    else:
        seconds = train_images * config.epochs * per_image + images * config.epochs * per_image / 3
    if config.ten_crop:  # nine more passes over the validation images, every epoch
        seconds += 9 * images * config.val_fraction * config.epochs * per_image / 3
    steps = steps_per_epoch(int(train_images), config.batch_size) * config.epochs
    compiling = config.compile == "yes" or (config.compile == "auto" and steps >= 200)
    return _GPU_START_SECONDS + seconds + (_GPU_COMPILE_SECONDS if compiling else 0.0)


def _optimizer(config: FinetuneConfig, parameters) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


# --- the engine ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """Everything one run holds while it trains (on the device); dropped as a whole when it ends."""

    config: FinetuneConfig
    dataset: ImageDataset
    device: torch.device
    plan: DevicePlan
    rank: int
    world: int
    started: float  # the run's clock, from before the data moved to the device
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    model: nn.Module  # the whole network (what is saved)
    forward: nn.Module  # what each step calls: the model, its compiled or DDP wrapper, or only the head
    inputs: torch.Tensor  # uint8 images, or (head only) the standardised backbone features
    labels: torch.Tensor
    head_only: bool
    notice: str
    initial_first_conv: torch.Tensor | None
    imagenet: bool = False  # whether it started from ImageNet weights
    fold: tuple | None = None  # head only: (head, mean, scale) to fold back into the head at the end
    pca: ColourPCA | None = None  # the training set's colour axes, for PCA colour noise


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
    split_seed = config.seed if config.split_seed is None else config.split_seed
    train_idx, val_idx = stratified_split(dataset.labels, config.val_fraction, split_seed)
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise ValueError("Too few images to train and validate on: use at least a few images per class.")
    run = model = None
    try:
        started = time.perf_counter()  # the run's clock includes computing head-only features
        model, notice, imagenet = _make_model(config, len(dataset.classes), torch.Generator().manual_seed(config.seed))
        convs = conv_layers(model)
        plan = device_plan(device, config, steps_per_epoch(len(train_idx), config.batch_size, world) * config.epochs)
        model = model.to(device, memory_format=torch.channels_last) if plan.channels_last else model.to(device)
        run = _Run(
            config=config,
            dataset=dataset,
            device=device,
            plan=plan,
            rank=rank,
            world=world,
            started=started,
            train_idx=train_idx,
            val_idx=val_idx,
            model=model,
            forward=model,
            inputs=dataset.images.to(device),  # the decoded dataset lives on the device, as uint8
            labels=dataset.labels.to(device),
            head_only=config.mode == "head" and bool(convs),
            notice=notice,
            imagenet=imagenet,
            initial_first_conv=model.get_submodule(convs[0]).weight.detach().cpu().clone() if convs else None,
        )
        if config.pca_colour:  # the training images' principal colour axes (validate() refused head only)
            run.pca = colour_pca(run.inputs[train_idx.to(device)])
        if run.head_only:
            yield from _standardised_features(run)
        elif plan.compile:
            run.forward = torch.compile(model)
        if world > 1:
            run.forward = torch.nn.parallel.DistributedDataParallel(run.forward)
        trainable = run.fold[0] if run.head_only else model
        result = yield from _train(run, _optimizer(config, trainable.parameters()))
    except torch.cuda.OutOfMemoryError:
        run = model = None
        gc.collect()
        torch.cuda.empty_cache()
        raise ValueError(
            f"The GPU ran out of memory with batch size {config.batch_size} at {config.image_size} px; "
            "try a smaller batch or image size."
        ) from None
    finally:
        run = model = None  # a finished or cancelled run lets go of the dataset and the model on the device
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    yield result


def _standardised_features(run: _Run) -> Iterator[Progress]:
    """Head only: the frozen backbone's features, computed once (augmentation cannot apply to them),
    standardised for training; ``run.forward`` becomes the head alone.

    A random backbone's features are ~1e-3 in size and a trained one's are not centred, which stalls
    Adam; so the head trains on standardised features and the scaling is folded back at the end.
    """
    backbone, head = _split_head(run.model)
    backbone.eval()
    images, chunks = run.inputs, []
    for start in range(0, len(images), FEATURE_CHUNK):  # in chunks, so a stop or the time cap acts soon
        with torch.no_grad(), torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.plan.autocast):
            chunks.append(backbone(_batch(run, images[start : start + FEATURE_CHUNK], train=False)).float())
        done = min(len(images), start + FEATURE_CHUNK)
        yield Progress(
            step=0, total_steps=0, epoch=0, epochs=run.config.epochs, loss=0.0, accuracy=0.0, val_accuracy=None,
            images_per_second=0.0, seconds_left=0.0,
            message=f"Computing the frozen backbone's features once: {done} of {len(images)} images…",
            classes=len(run.dataset.classes),
        )  # fmt: skip
        if run.config.max_seconds is not None and time.perf_counter() - run.started > run.config.max_seconds:
            raise ValueError(
                f"The {run.config.max_seconds:g} s time cap was reached while computing features; use fewer images."
            )
    features = torch.cat(chunks)  # (N, D)
    mean, scale = standardisation(features[run.train_idx.to(run.device)])
    run.inputs, run.forward, run.fold = (features - mean) / scale, head, (head, mean, scale)


def standardisation(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature (mean, scale) of (N, D) training features, as scikit-learn's StandardScaler computes.

    A feature that (nearly) never changes, such as a ReLU that is zero on every training image, gets
    scale 1: dividing by its ~0 spread would multiply its untrained weights by ~1e12 when the scaling is
    folded back, and any input where it does fire would then swamp every other class score.
    """
    mean, std = features.mean(dim=0), features.std(dim=0)
    constant = std <= 1e-6 * mean.abs().clamp_min(1e-6)
    return mean, torch.where(constant, torch.ones_like(std), std)


def _batch(run: _Run, images: torch.Tensor, *, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    config = run.config
    x = prepare_batch(
        images,
        config.image_size,
        train=train,
        crop=config.crop,
        flip=config.flip,
        color_jitter=config.color_jitter,
        pca=run.pca,
        generator=generator,
    )
    return x.contiguous(memory_format=torch.channels_last) if run.plan.channels_last else x


def _inputs(run: _Run, index: torch.Tensor, *, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """A batch ready for ``run.forward``: features as they are (head only), or augmented images."""
    return run.inputs[index] if run.head_only else _batch(run, run.inputs[index], train=train, generator=generator)


def _batches(order: torch.Tensor, batch_size: int):
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@dataclasses.dataclass(frozen=True)
class _Scores:
    """One validation pass, on the CPU."""

    predicted: torch.Tensor  # (N,) the top class
    confidence: torch.Tensor  # (N,) its probability
    top5: torch.Tensor  # (N,) whether the true class is among the five most probable
    accuracy: float

    @property
    def top5_accuracy(self) -> float:
        return float(self.top5.float().mean())


def _predict(run: _Run) -> _Scores:
    """Every validation image's prediction; with ``ten_crop``, the mean probabilities of its ten views."""
    run.forward.eval()
    predictions, confidences, top5 = [], [], []
    with torch.no_grad(), torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.plan.autocast):
        for index in _batches(run.val_idx.to(run.device), max(64, run.config.batch_size)):
            if run.config.ten_crop:
                views = ten_crops(run.inputs[index], run.config.image_size)  # (10, B, 3, size, size)
                probabilities = torch.stack([torch.softmax(run.forward(v).float(), dim=1) for v in views]).mean(0)
            else:
                probabilities = torch.softmax(run.forward(_inputs(run, index, train=False)).float(), dim=1)
            confidence, predicted = probabilities.max(dim=1)
            best = probabilities.topk(min(5, probabilities.shape[1]), dim=1).indices  # (B, 5)
            predictions.append(predicted)
            confidences.append(confidence)
            top5.append((best == run.labels[index][:, None]).any(dim=1))
    predicted = torch.cat(predictions).cpu()
    truth = run.dataset.labels[run.val_idx]
    return _Scores(
        predicted, torch.cat(confidences).cpu(), torch.cat(top5).cpu(), float((predicted == truth).float().mean())
    )


def _schedule(config: FinetuneConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    """torch's learning-rate scheduler for ``config.schedule`` (None: a constant rate)."""
    if config.schedule == "cosine":  # stepped after every step, down to zero at the last
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if config.schedule == "plateau":  # stepped after every epoch with the validation accuracy
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=config.plateau_patience
        )
    return None


def _step_seed(seed: int, rank: int, step: int) -> int:
    """The dropout seed of one step of one rank: distinct for every (seed, rank, step) of a run."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63


@contextlib.contextmanager
def _private_dropout(seed: int, device: torch.device) -> Iterator[None]:
    """torch's process-wide generators (the CPU's, and ``device``'s on a GPU), seeded by ``seed`` inside and
    given back unchanged after: dropout, which cannot take a generator of its own, draws the run's masks."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _train(run: _Run, optimizer: torch.optim.Optimizer) -> Generator[Progress, None, FinetuneResult]:
    config, device, rank, world = run.config, run.device, run.rank, run.world
    augment = torch.Generator().manual_seed(config.seed + 7919 * rank)  # each rank its own crops and flips
    per_rank = len(run.train_idx) // world  # every rank takes the same number of steps, or DDP waits forever
    per_epoch = steps_per_epoch(len(run.train_idx), config.batch_size, world)
    total_steps = per_epoch * config.epochs
    scheduler = _schedule(config, optimizer, total_steps)
    history, val_accuracy, step, seen, stopped_early = [], None, 0, 0, False
    best = None  # early stopping: (epoch, scores, weights on the CPU) of the best validation accuracy so far
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    shown, last_sync = (0.0, 0.0), 0.0
    for epoch in range(1, config.epochs + 1):
        run.forward.train()
        epoch_start, count, rate = time.perf_counter(), 0, optimizer.param_groups[0]["lr"]
        loss_sum.zero_()
        correct.zero_()
        # The same permutation on every rank (seeded by the epoch), cut into equal disjoint shards.
        shuffle = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = run.train_idx[torch.randperm(len(run.train_idx), generator=shuffle)][: per_rank * world][rank::world]
        for index in _batches(order.to(device), config.batch_size):
            x, y = _inputs(run, index, train=True, generator=augment), run.labels[index]
            with (
                _private_dropout(_step_seed(config.seed, rank, step), device),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.plan.autocast),
            ):
                logits = run.forward(x)  # dropout's masks are kept for the backward pass: no draws there
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.schedule == "cosine":
                scheduler.step()
            step, seen, count = step + 1, seen + len(index), count + len(index)
            # Running sums stay on the device; reading them forces a GPU sync, so do it twice a second.
            loss_sum += loss.detach() * len(index)
            correct += (logits.argmax(dim=1) == y).sum()
            now = time.perf_counter()
            elapsed = now - run.started
            if now - last_sync > 0.5 or step % per_epoch == 0:
                shown, last_sync = (float(loss_sum) / count, float(correct) / count), now
            yield Progress(
                step=step, total_steps=total_steps, epoch=epoch, epochs=config.epochs, loss=shown[0],
                accuracy=shown[1], val_accuracy=val_accuracy, images_per_second=seen * world / max(elapsed, 1e-9),
                seconds_left=(total_steps - step) * elapsed / step, classes=len(run.dataset.classes),
            )  # fmt: skip
            if _all_agree(config.max_seconds is not None and elapsed > config.max_seconds, device, world):
                stopped_early = True
                break
        scores = _predict(run)
        val_accuracy = scores.accuracy  # the same on every rank: every rank validates the whole set
        history.append(
            {"epoch": epoch, "loss": float(loss_sum) / max(count, 1), "accuracy": float(correct) / max(count, 1),
             "val_accuracy": val_accuracy, "val_top5_accuracy": scores.top5_accuracy, "lr": rate,
             "seconds": time.perf_counter() - epoch_start}
        )  # fmt: skip
        if config.schedule == "plateau":
            scheduler.step(val_accuracy)
        if config.early_stopping and (best is None or val_accuracy > best[1].accuracy):
            best = (epoch, scores, {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()})
        if stopped_early:
            _tell(run, f"Stopped at the {config.max_seconds:g} s time cap after epoch {epoch}.")
            break
        if config.early_stopping and epoch - best[0] >= config.early_stopping and epoch < config.epochs:
            _tell(
                run,
                f"Stopped early after epoch {epoch}: validation accuracy had not improved for {epoch - best[0]} epoch(s).",
            )
            break
    if best is not None:  # early stopping keeps the best epoch's weights, and reports that epoch's scores
        run.model.load_state_dict(best[2])
        scores = best[1]
        _tell(run, f"The weights kept are epoch {best[0]}'s, the best on validation.")
    seconds = time.perf_counter() - run.started
    if run.fold is not None:
        _fold(*run.fold)
    result = _result(
        run, history, scores, seconds=seconds, images_per_second=seen * world / max(seconds, 1e-9),
        stopped_early=stopped_early,
    )  # fmt: skip
    return dataclasses.replace(result, best_epoch=best[0] if best else None)


def _on_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """A weight as float32 on the CPU; a counter (batch norm's num_batches_tracked) stays a whole number."""
    tensor = tensor.detach().cpu().clone()
    return tensor.float() if tensor.is_floating_point() else tensor


def _tell(run: _Run, sentence: str) -> None:
    run.notice = f"{run.notice} {sentence}" if run.notice else sentence


def _result(run: _Run, history, scores: _Scores, *, seconds, images_per_second, stopped_early) -> FinetuneResult:
    """The validation report (confusion matrix, per-class accuracy, mistakes) and the weights, on the CPU."""
    predicted, confidence = scores.predicted, scores.confidence
    truth = run.dataset.labels[run.val_idx]
    k = len(run.dataset.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth.numpy(), predicted.numpy()), 1)
    per_class = [float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else 0.0 for i in range(k)]
    wrong = torch.nonzero(predicted != truth).flatten()
    misclassified = [(int(run.val_idx[i]), int(truth[i]), int(predicted[i]), float(confidence[i])) for i in wrong]
    misclassified.sort(key=lambda item: -item[3])  # the most confident mistakes first
    return FinetuneResult(
        state_dict={key: _on_cpu(value) for key, value in run.model.state_dict().items()},
        variant=run.config.model,
        input_shape=(3, run.config.image_size, run.config.image_size),
        classes=run.dataset.classes,
        config=run.config,
        history=history,
        val_accuracy=float(np.trace(confusion) / max(confusion.sum(), 1)),
        confusion=confusion,
        per_class_accuracy=per_class,
        misclassified=misclassified,
        seconds=seconds,
        images_per_second=images_per_second,
        notice=run.notice.strip(),
        stopped_early=stopped_early,
        initial_first_conv=run.initial_first_conv,
        top5_accuracy=scores.top5_accuracy if k > 5 else None,
        imagenet_start=run.imagenet,
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
