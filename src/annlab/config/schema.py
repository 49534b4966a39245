"""Structured configs for every group of `conf/`, and the checks Hydra cannot express.

`conf/` is composed by DVC and by plain `hydra.compose` without importing annlab, so it cannot
refer to these classes; instead every entry point merges the composed tree into `Config`
(unknown keys and wrong types fail there, naming the key) and then runs `check_values`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annlab.errors import AnnlabError

DATASETS = ("digits", "iris", "diabetes", "fashion_mnist", "mnist", "california_housing", "tabular")
MODELS = ("mlp", "wide_deep", "wide_deep_subclassed", "perceptron")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
ACTIVATIONS = (
    "relu",
    "elu",
    "selu",
    "gelu",
    "tanh",
    "sigmoid",
    "softplus",
    "swish",
    "leaky_relu",
    "linear",
)
OUTPUT_ACTIVATIONS = ("auto", "softmax", "sigmoid", "linear", "relu", "softplus")
TASKS = ("auto", "multiclass", "binary", "multilabel", "regression")
SCALINGS = ("standard", "rescale", "none")
SPLIT_STRATEGIES = ("random", "head")
SCHEDULES = ("none", "exponential", "cosine")
CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)
REGRESSION_LOSSES = ("mse", "mae", "huber", "mean_squared_error", "mean_absolute_error")
_NETWORK = {"n_hidden", "n_neurons", "activation", "kernel_initializer", "output_activation", "dropout"}
_WIDE_DEEP = _NETWORK | {"wide_features", "deep_features", "aux_output", "loss_weights"}
# The settings each model and optimizer reads: any other setting of its group must keep its
# default, so that nothing set is silently ignored.
MODEL_SETTINGS = {
    "mlp": _NETWORK | {"rescaling_layer"},
    "wide_deep": _WIDE_DEEP,
    "wide_deep_subclassed": _WIDE_DEEP,
    "perceptron": {"max_iter", "tol"},
}
OPTIMIZER_SETTINGS = {
    "sgd": {"learning_rate", "momentum", "nesterov", "schedule", "decay_steps", "decay_rate"},
    "adam": {"learning_rate", "schedule", "decay_steps", "decay_rate"},
    "rmsprop": {"learning_rate", "momentum", "schedule", "decay_steps", "decay_rate"},
}
SCHEDULE_SETTINGS = {"none": set(), "exponential": {"decay_steps", "decay_rate"}, "cosine": {"decay_steps"}}


@dataclass
class DatasetConfig:
    name: str = "digits"
    path: str | None = None
    target: str | None = None
    task: str = "auto"
    features: list[str] | None = None
    limit: int | None = None


@dataclass
class SplitConfig:
    strategy: str = "random"
    test_size: float | None = 0.2
    valid_size: float = 0.2
    stratify: bool = True
    scaling: str = "standard"
    rescale_divisor: float = 255.0
    clip: float | None = None


@dataclass
class ModelConfig:
    name: str = "mlp"
    n_hidden: int = 2
    n_neurons: Any = field(default_factory=lambda: [300, 100])
    activation: str = "relu"
    kernel_initializer: str = "glorot_uniform"
    output_activation: str = "auto"
    dropout: float = 0.0
    # keras Rescaling (x * 1/divisor) for split.scaling=rescale, instead of the default
    # Normalization layer (x / divisor, bit-identical to the book's `X / 255.`)
    rescaling_layer: bool = False
    wide_features: list[int] | None = None
    deep_features: list[int] | None = None
    aux_output: bool = False
    loss_weights: list[float] | None = None
    # scikit-learn Perceptron baseline
    max_iter: int = 1000
    tol: float = 1e-3


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "none"
    decay_steps: int = 1000
    decay_rate: float = 0.1


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    monitor: str = "val_loss"
    patience: int = 10
    restore_best_weights: bool = True


@dataclass
class CheckpointConfig:
    enabled: bool = False
    save_best_only: bool = True


@dataclass
class TensorBoardConfig:
    enabled: bool = False
    log_dir: str = "tb_logs"


@dataclass
class LRFinderConfig:
    """Grow the learning rate exponentially over one epoch and plot loss against rate."""

    enabled: bool = False
    min_rate: float = 1e-5
    max_rate: float = 10.0
    # use the suggested rate (a tenth of the rate at the lowest loss) for the real training
    apply: bool = False


@dataclass
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 32
    loss: str = "auto"
    metrics: Any = "auto"
    steps_per_execution: int = 128
    verbose: Any = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    deterministic: bool = True
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    lr_finder: LRFinderConfig = field(default_factory=LRFinderConfig)
    # tf.distribute strategy: none, or mirrored (data-parallel over the visible devices)
    strategy: str = "none"
    # split the CPU into this many logical devices (0: leave as is): data-parallel training on
    # one machine without GPUs, e.g. to test `strategy: mirrored`
    logical_cpu_devices: int = 0
    # K-fold cross-validation on the training split (0: off; K >= 2: K folds, as scikit-learn's
    # cv=K makes them); the objective is then the mean over the held-out folds
    cv_folds: int = 0
    # processes fitting the folds at once (0: all folds at once up to twice the cores, else one
    # per core; 1: one after another in this process)
    cv_jobs: int = 0


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None
    run_name: str | None = None
    log_model: bool = True


@dataclass
class ObjectiveConfig:
    metric: str = "val_accuracy"
    direction: str = "maximize"


@dataclass
class PathsConfig:
    raw: str = "data/raw"
    processed: str = "data/processed"
    models: str = "models"
    reports: str = "reports"


@dataclass
class Config:
    experiment_name: str = "digits_mlp"
    seed: int = 42
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


def validate(raw: DictConfig | dict) -> Config:
    """Merge a composed config into the schema and check every value; raise `AnnlabError`."""
    tree = raw if isinstance(raw, DictConfig) else OmegaConf.create(raw)
    tree = OmegaConf.masked_copy(tree, [k for k in tree if k not in ("hydra", "hparams_search")])
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), tree)
        cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise AnnlabError(_omegaconf_message(err)) from None
    check_values(cfg)
    return cfg


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or "?"
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "Missing mandatory value" in first:
        return f"Setting '{key}' is required: add `{key}=...` to the command or conf/."
    if "not in" in first:
        return f"Unknown setting '{key}': check its spelling against conf/ (received: {first})."
    return f"Invalid value for '{key}': {first}. Fix it in conf/ or the override."


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise AnnlabError(message)


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _expect(
        value in allowed,
        f"Expected `{key}` to be one of {', '.join(allowed)}. Received: {key}={value!r}.",
    )


def check_values(cfg: Config) -> None:
    """Range and choice checks: each failure names the key, the received value and the fix."""
    _one_of("dataset.name", cfg.dataset.name, DATASETS)
    _one_of("dataset.task", cfg.dataset.task, TASKS)
    _expect(
        cfg.dataset.limit is None or cfg.dataset.limit > 0,
        f"Expected `dataset.limit` > 0 or null. Received: dataset.limit={cfg.dataset.limit}.",
    )
    if cfg.dataset.name == "tabular":
        _expect(
            bool(cfg.dataset.path),
            "Expected `dataset.path` to name a CSV or Parquet file for dataset=tabular. "
            "Received: dataset.path=null.",
        )
        _expect(
            bool(cfg.dataset.target),
            "Expected `dataset.target` to name the target column for dataset=tabular. "
            "Received: dataset.target=null.",
        )

    split = cfg.split
    _one_of("split.strategy", split.strategy, SPLIT_STRATEGIES)
    _one_of("split.scaling", split.scaling, SCALINGS)
    if split.strategy == "random":
        for key, value in (("split.test_size", split.test_size), ("split.valid_size", split.valid_size)):
            _expect(
                value is not None and 0 < value < 1,
                f"Expected `{key}` to be a fraction in (0, 1). Received: {key}={value}.",
            )
        _expect(
            split.test_size + split.valid_size < 1,  # type: ignore[operator]
            f"Expected `split.test_size` + `split.valid_size` < 1 so the training split is "
            f"not empty. Received: {split.test_size} + {split.valid_size}.",
        )
    else:
        _expect(
            split.valid_size >= 1 and float(split.valid_size).is_integer(),
            "Expected `split.valid_size` to be a row count >= 1 for split=head. "
            f"Received: split.valid_size={split.valid_size}.",
        )
    _expect(
        split.rescale_divisor > 0, f"Expected `split.rescale_divisor` > 0. Received: {split.rescale_divisor}."
    )
    _expect(
        split.clip is None or split.clip > 0,
        f"Expected `split.clip` > 0 or null. Received: split.clip={split.clip}.",
    )

    model = cfg.model
    _one_of("model.name", model.name, MODELS)
    _expect(
        split.clip is None or model.name in ("mlp", "wide_deep"),
        f"Expected `split.clip` to be null for model={model.name}: clipping is built into "
        f"model=mlp and model=wide_deep. Received: split.clip={split.clip}.",
    )
    _one_of("model.activation", model.activation, ACTIVATIONS)
    _one_of("model.output_activation", model.output_activation, OUTPUT_ACTIVATIONS)
    _expect(
        model.n_hidden >= 0, f"Expected `model.n_hidden` >= 0. Received: model.n_hidden={model.n_hidden}."
    )
    sizes = model.n_neurons if isinstance(model.n_neurons, list) else [model.n_neurons]
    _expect(
        len(sizes) > 0 and all(isinstance(s, int) and s >= 1 for s in sizes),
        "Expected `model.n_neurons` to be an integer >= 1 or a list of them. "
        f"Received: model.n_neurons={model.n_neurons}.",
    )
    _expect(
        0 <= model.dropout < 1,
        f"Expected `model.dropout` in [0, 1). Received: model.dropout={model.dropout}.",
    )
    if model.loss_weights is not None:
        _expect(
            all(w >= 0 for w in model.loss_weights),
            f"Expected `model.loss_weights` >= 0. Received: {model.loss_weights}.",
        )

    opt = cfg.optimizer
    _one_of("optimizer.name", opt.name, OPTIMIZERS)
    _one_of("optimizer.schedule", opt.schedule, SCHEDULES)
    _expect(opt.learning_rate > 0, f"Expected `optimizer.learning_rate` > 0. Received: {opt.learning_rate}.")
    _expect(0 <= opt.momentum < 1, f"Expected `optimizer.momentum` in [0, 1). Received: {opt.momentum}.")
    _expect(opt.decay_steps >= 1, f"Expected `optimizer.decay_steps` >= 1. Received: {opt.decay_steps}.")
    _check_used("model", model, MODEL_SETTINGS[model.name])
    schedule_unused = {"decay_steps", "decay_rate"} - SCHEDULE_SETTINGS[opt.schedule]
    _check_used("optimizer", opt, OPTIMIZER_SETTINGS[opt.name] - schedule_unused, opt.schedule)
    _expect(
        model.loss_weights is None or model.aux_output,
        "Expected `model.loss_weights` only with `model.aux_output=true` (they weight the main and "
        f"auxiliary losses). Received: model.loss_weights={model.loss_weights}, model.aux_output=false.",
    )

    tr = cfg.training
    _expect(tr.epochs >= 1, f"Expected `training.epochs` >= 1. Received: training.epochs={tr.epochs}.")
    _expect(
        tr.batch_size >= 1,
        f"Expected `training.batch_size` >= 1. Received: training.batch_size={tr.batch_size}.",
    )
    _expect(
        tr.steps_per_execution >= 1,
        f"Expected `training.steps_per_execution` >= 1. Received: {tr.steps_per_execution}.",
    )
    _expect(
        tr.intra_op_threads >= 0 and tr.inter_op_threads >= 0,
        "Expected `training.intra_op_threads` and `training.inter_op_threads` >= 0.",
    )
    if tr.loss != "auto":
        _one_of("training.loss", tr.loss, CLASSIFICATION_LOSSES + REGRESSION_LOSSES)
    lr = tr.lr_finder
    _expect(
        0 < lr.min_rate < lr.max_rate,
        "Expected 0 < `training.lr_finder.min_rate` < `training.lr_finder.max_rate`. "
        f"Received: {lr.min_rate}, {lr.max_rate}.",
    )
    _one_of("training.strategy", tr.strategy, ("none", "mirrored"))
    _expect(
        tr.logical_cpu_devices >= 0,
        f"Expected `training.logical_cpu_devices` >= 0. Received: {tr.logical_cpu_devices}.",
    )
    _expect(
        tr.cv_folds == 0 or tr.cv_folds >= 2,
        f"Expected `training.cv_folds` to be 0 or >= 2. Received: training.cv_folds={tr.cv_folds}.",
    )
    _expect(tr.cv_jobs >= 0, f"Expected `training.cv_jobs` >= 0. Received: training.cv_jobs={tr.cv_jobs}.")
    _expect(
        tr.cv_folds == 0 or (model.name != "perceptron" and tr.strategy == "none"),
        "Expected `training.cv_folds`=0 with "
        + ("model=perceptron" if model.name == "perceptron" else f"training.strategy={tr.strategy}")
        + f": cross-validation fits Keras models on one device. Received: training.cv_folds={tr.cv_folds}.",
    )
    _one_of("objective.direction", cfg.objective.direction, ("maximize", "minimize"))
    _expect(cfg.seed >= 0, f"Expected `seed` >= 0. Received: seed={cfg.seed}.")
    for key in ("raw", "processed", "models", "reports"):
        _check_project_path(f"paths.{key}", getattr(cfg.paths, key))
    _check_project_path("training.tensorboard.log_dir", tr.tensorboard.log_dir)


def _check_used(group: str, section: Any, used: set[str], schedule: str | None = None) -> None:
    """A setting the chosen model or optimizer does not read must keep its default: a value
    set there would be silently ignored."""
    defaults = type(section)()
    for item in fields(section):
        value = getattr(section, item.name)
        if item.name == "name" or item.name in used or value == getattr(defaults, item.name):
            continue
        chosen = f"{group}={section.name}"
        if schedule is not None and item.name.startswith("decay_"):
            chosen = f"{group}.schedule={schedule}"
        raise AnnlabError(
            f"`{group}.{item.name}` is not used by {chosen}, which reads "
            f"{', '.join(sorted(used - {'schedule'}))}: remove the setting or choose a {group} that "
            f"uses it. Received: {group}.{item.name}={value}."
        )


def _check_project_path(key: str, value: str) -> None:
    """Outputs stay inside the project: no absolute paths, no `..` escapes."""
    from pathlib import PurePosixPath

    path = PurePosixPath(value)
    _expect(
        bool(value) and not path.is_absolute() and ".." not in path.parts,
        f"Expected `{key}` to be a relative path inside the project. Received: {key}={value!r}.",
    )


def to_dict(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain containers (for MLflow params and artifacts)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`: MLflow params of the resolved config."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
