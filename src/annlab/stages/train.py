"""DVC stage `train`: fit the configured model on data/processed, write models/, log to MLflow."""

from __future__ import annotations

from pathlib import Path

from annlab.config.schema import Config
from annlab.data.split import load_splits
from annlab.io import atomic_dir
from annlab.models.build import check_model_fits_data
from annlab.stages.common import stage_main
from annlab.tracking.runs import flush_logging


def train(
    cfg: Config, data_dir: str | Path | None = None, out_dir: str | Path | None = None, **track_kwargs
) -> str:
    splits = load_splits(data_dir or cfg.paths.processed)
    check_model_fits_data(cfg, splits.meta)  # before TensorFlow is imported
    from annlab.tracking.training_run import train_and_track

    target = Path(out_dir or cfg.paths.models)
    with atomic_dir(target) as tmp:
        outcome = train_and_track(cfg, splits, tmp, **track_kwargs)
    run = f", MLflow run {outcome.run_id}" if outcome.run_id else ""
    cv = ""
    if outcome.cv is not None:
        cv = f"; {len(outcome.cv.folds)}-fold CV {cfg.objective.metric} {outcome.objective:.4f}"
        if not outcome.history:  # a trial of a cross-validated search: the folds only
            return (
                f"train: {cfg.model.name} on {splits.meta.name}, {len(outcome.cv.folds)}-fold "
                f"cross-validation in {outcome.seconds:.1f}s ({cfg.objective.metric} "
                f"{outcome.objective:.4f}: mean of the held-out folds){run} -> {target}"
            )
    if track_kwargs.get("objective_override") is not None:  # the refit of a cross-validated search
        cv = f"; ranked by its configuration's CV {cfg.objective.metric} {outcome.objective:.4f}"
    epochs_seen = [int(e) for e in outcome.history["epoch"]]
    at = epochs_seen.index(outcome.kept_epoch) if outcome.kept_epoch in epochs_seen else -1
    kept = {k: v[at] for k, v in outcome.history.items() if k in ("loss", "val_loss", cfg.objective.metric)}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in kept.items())
    if at != len(epochs_seen) - 1:
        shown += f"; weights of epoch {outcome.kept_epoch + 1} kept"
    resumed = f", resumed after epoch {outcome.resumed_from_epoch}" if outcome.resumed_from_epoch else ""
    epochs = len(outcome.history.get("loss", []))
    return (
        f"train: {cfg.model.name} on {splits.meta.name}, {epochs} epochs in "
        f"{outcome.seconds:.1f}s{resumed} ({shown}{cv}){run} -> {target}"
    )


def main() -> None:
    stage_main("train", train, flush=flush_logging)  # MLflow runs here where no helper forks


if __name__ == "__main__":
    main()
