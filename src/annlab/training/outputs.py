"""What a training leaves in its output folder: the model, its history, summary and metadata,
and the objective of the model kept. No MLflow here: `annlab.tracking.training_run` logs it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from annlab.config.schema import Config, to_dict
from annlab.data.split import Splits
from annlab.io import atomic_file, save_arrays, write_json

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.txt"
META_FILE = "meta.json"
LR_FINDER_FIGURE = "lr_finder.png"
# The kept model's outputs on the test split and Keras' own test scores: written by the train
# stage, which holds the model and TensorFlow already, so that evaluate needs neither.
TEST_OUTPUTS_FILE = "test_outputs.npz"
TEST_SCORES_FILE = "test_scores.json"
STATE_ROOT = Path(".annlab") / "state"


def config_fingerprint(cfg: Config) -> str:
    """Same config, same fingerprint: where an interrupted training keeps its state."""
    tree = to_dict(cfg)
    tree.pop("tracking", None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def model_summary(model) -> str:
    """Layer names, output shapes, parameter counts, then every weight's shape.

    Keras sizes the table to the terminal (`COLUMNS`, else the tty, else 80 columns) and cuts
    what does not fit: in a narrow terminal or a DVC log the "Param #" column and the right
    border were lost. The terminal is declared wide while Keras prints, so the table always has
    Keras' own full width (88 columns, 108 with "Connected to") wherever it was written.
    """
    import os

    lines: list[str] = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # rich and shutil.get_terminal_size both read it
    try:
        model.summary(print_fn=lambda text, **_: lines.append(text.rstrip("\n")))
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    weights = [f"  {w.path}: {tuple(w.shape)}" for w in model.weights]
    return "\n".join([*lines, "", "Weights (get_weights shapes):", *weights]) + "\n"


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """Per-epoch metrics, one row per epoch (0-based `epoch`, as Keras' CSVLogger writes)."""
    keys = ["epoch", *[k for k in history if k != "epoch"]]
    n = len(history.get("loss") or next(iter(history.values()), []))
    epochs = history.get("epoch") or [float(i) for i in range(n)]
    with atomic_file(path) as handle:
        handle.write(",".join(keys) + "\n")
        for i in range(n):
            values = [str(int(epochs[i]))] + [repr(history[k][i]) for k in keys[1:]]
            handle.write(",".join(values) + "\n")


def model_meta(cfg: Config, splits: Splits) -> dict[str, Any]:
    """What a user of the saved model needs besides the weights: the task, feature and class
    names, and how raw feature rows map to the model's inputs and outputs."""
    from annlab.models.build import has_aux_output, input_mapping

    meta = splits.meta.to_dict()
    meta.pop("extra", None)
    return {
        **meta,
        "model": cfg.model.name,
        **input_mapping(cfg),
        "aux_output": has_aux_output(cfg),
        "experiment_name": cfg.experiment_name,
    }


def objective_value(metric: str, history: dict[str, list[float]], kept_epoch: int) -> float | None:
    """The objective of the model that was kept: `metric` at the epoch whose weights it holds.

    With early stopping restoring weights, that is the monitor's best epoch (e.g. val_loss's),
    which need not be where `metric` peaks: sweeps, `annlab promote` and `annlab compare` rank
    what was saved, not the best number seen on the way.
    """
    values = history.get(metric)
    epochs = [int(e) for e in history.get("epoch", range(len(values or [])))]
    if not values or kept_epoch not in epochs:
        return None
    return values[epochs.index(kept_epoch)]


def save_training_outputs(
    cfg: Config, splits: Splits, result, out_dir: Path
) -> tuple[str, dict, float | None]:
    """Write the model, history, metadata, summary (and the LR finder's figure) to `out_dir`;
    return (summary, metadata, objective of the kept model). The test outputs are written
    separately (`write_test_outputs`), while the run logs these."""
    result.model.save(out_dir / MODEL_FILE)
    write_history(out_dir / HISTORY_FILE, result.history)
    meta = model_meta(cfg, splits)
    write_json(out_dir / META_FILE, meta)
    summary = model_summary(result.model)
    (out_dir / SUMMARY_FILE).write_text(summary)
    if result.lr_finder is not None:
        from annlab.training.lr_finder import plot_lr_finder

        plot_lr_finder(result.lr_finder, out_dir / LR_FINDER_FIGURE)
    return summary, meta, objective_value(cfg.objective.metric, result.history, result.kept_epoch)


def write_test_outputs(cfg: Config, splits: Splits, model, out_dir: Path) -> None:
    """The model's outputs on the test split (every output, as `annlab predict` computes them)
    and Keras' test loss and metrics, for the evaluate stage."""
    from annlab.models.build import input_mapping, model_inputs, model_targets
    from annlab.models.feeding import BATCH_SIZE, predict_outputs

    X, y = splits.test
    save_arrays(out_dir / TEST_OUTPUTS_FILE, **predict_outputs(model, input_mapping(cfg), X))
    scores = model.evaluate(
        model_inputs(cfg, X), model_targets(cfg, y), batch_size=BATCH_SIZE, verbose=0, return_dict=True
    )
    write_json(out_dir / TEST_SCORES_FILE, {k: float(v) for k, v in scores.items()})
