"""DVC stage `evaluate`: score the trained model on the test split.

The train stage wrote the model's outputs on the test split (and Keras' test loss and metrics)
beside the model, so this stage imports neither TensorFlow nor MLflow: scores, the predictions
table, plot data. The report stage, which talks to MLflow anyway, logs the scores to the
training run (`annlab-train` logs them itself).
"""

from __future__ import annotations

from pathlib import Path

from annlab.config.schema import Config
from annlab.data.split import load_splits
from annlab.errors import AnnlabError
from annlab.io import atomic_dir, load_arrays, read_json, write_csv, write_json
from annlab.stages.common import stage_main

METRICS_FILE = "metrics.json"
EVALUATION_DIR = "evaluation"


def evaluate_stage(
    cfg: Config,
    data_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
) -> str:
    splits = load_splits(data_dir or cfg.paths.processed)
    model_dir = Path(model_dir or cfg.paths.models)
    reports = Path(reports_dir or cfg.paths.reports)
    from annlab.evaluation.metrics import evaluate

    outputs, scores = read_test_outputs(model_dir)
    result = evaluate(cfg, splits, outputs, scores)
    with atomic_dir(reports / EVALUATION_DIR) as tmp:
        write_csv(tmp / "predictions.csv", result.predictions)
        write_plot_data(tmp, splits.meta.task, result.predictions)
        write_json(tmp / "details.json", result.details)
    write_json(reports / METRICS_FILE, result.metrics)
    headline = ("test_loss", "test_accuracy", "test_mse", "test_rmse", "test_r2")
    shown = ", ".join(f"{k} {result.metrics[k]:.4f}" for k in headline if k in result.metrics)
    return f"evaluate: {shown} -> {reports / METRICS_FILE}"


def read_test_outputs(model_dir: Path) -> tuple[dict, dict[str, float]]:
    """What the train stage computed on the test split: the model's outputs, Keras' scores."""
    from annlab.training.outputs import TEST_OUTPUTS_FILE, TEST_SCORES_FILE

    outputs_file, scores_file = model_dir / TEST_OUTPUTS_FILE, model_dir / TEST_SCORES_FILE
    for file in (outputs_file, scores_file):
        if not file.is_file():
            raise AnnlabError(f"'{file}' not found: run `dvc repro train` to write the model's test outputs.")
    try:
        scores = read_json(scores_file)
    except ValueError as err:
        raise AnnlabError(f"'{scores_file}' is corrupt ({err}): rerun `dvc repro train`.") from None
    return load_arrays(outputs_file), scores


def write_plot_data(folder: Path, task: str, predictions: dict) -> None:
    """Data for dvc.yaml's plots: the confusion matrix (classes.csv) for classification,
    predicted against actual (values.csv) for regression. The file that does not apply holds
    only its header, so `dvc plots show` renders every run without a load error."""
    pairs = {k: predictions[k] for k in ("actual", "predicted")}
    empty = {k: [] for k in pairs}
    classify = task in ("multiclass", "binary")
    write_csv(folder / "classes.csv", pairs if classify else empty)
    write_csv(folder / "values.csv", empty if classify else pairs)


def main() -> None:
    stage_main("evaluate", evaluate_stage)


if __name__ == "__main__":
    main()
