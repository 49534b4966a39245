"""The objective every run is ranked by: a metric, its direction, and picking the best.

Training records the objective as the metric `objective_<metric>` (the value of the model it
kept, or with cross-validation the mean over the held-out folds); sweeps, `annlab promote`,
`annlab compare` and the report all rank with the helpers here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
DIRECTIONS = ("maximize", "minimize")
MINIMIZE_HINTS = ("loss", "mse", "mae", "error", "rmse", "seconds")
MAXIMIZE_HINTS = ("accuracy", "auc", "f1", "precision", "recall", "r2")


def objective_key(metric: str) -> str:
    """The MLflow metric that holds a run's objective."""
    return f"objective_{metric}"


def held_out_metric(metric: str) -> str:
    """What a model scores on held-out rows for a validation metric: `val_loss` -> `loss`.

    Cross-validation ranks a configuration by the mean over its held-out folds of this
    counterpart of `objective.metric`, as scikit-learn's searches score a candidate."""
    return metric[len("val_") :] if metric.startswith("val_") else metric


def fold_key(name: str) -> str:
    """The MLflow metric of a fold's run: its held-out score `name` (`fold_loss`)."""
    return f"fold_{name}"


def cv_key(name: str, statistic: str) -> str:
    """The MLflow metric of a cross-validated run: `cv_loss_mean`, `cv_loss_std`."""
    return f"cv_{name}_{statistic}"


def guess_direction(metric: str) -> str | None:
    """`minimize` for losses and errors, `maximize` for scores, None when the name says neither."""
    name = metric.lower()
    if any(hint in name for hint in MINIMIZE_HINTS):
        return "minimize"
    if any(hint in name for hint in MAXIMIZE_HINTS):
        return "maximize"
    return None


def finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def ranked(items: Iterable[T], value: Callable[[T], float | None], direction: str) -> list[T]:
    """Items best first by `value`; those without a finite value last, in their order."""
    items = list(items)
    sign = -1.0 if direction == "maximize" else 1.0
    scored = [(finite(value(item)), i, item) for i, item in enumerate(items)]
    return [item for v, i, item in sorted(scored, key=lambda s: (s[0] is None, sign * (s[0] or 0.0), s[1]))]


def best(items: Iterable[T], value: Callable[[T], float | None], direction: str) -> T | None:
    """The item with the best finite `value`, or None when none has one."""
    order = ranked(items, value, direction)
    return order[0] if order and finite(value(order[0])) is not None else None


def resolve(
    objectives: set[tuple[str | None, str | None]],
    logged: set[str],
    metric: str | None,
    direction: str | None,
    where: str,
) -> tuple[str, str, str]:
    """What to rank runs by: (the metric key, the per-epoch metric it comes from, direction).

    `objectives` are the runs' own (objective.metric, objective.direction) params and `logged`
    every metric they logged. Without `metric` the runs must share one objective; with it, the
    kept model's value `objective_<metric>` is preferred to the metric's last value.
    """
    from annlab.errors import AnnlabError

    if metric is None:
        if len(objectives) != 1 or None in next(iter(objectives)):
            shown = sorted(f"{m}/{d}" for m, d in objectives)
            raise AnnlabError(
                f"The runs of {where} do not share one objective (params objective.metric / "
                f"objective.direction: {shown}): choose with --metric M --direction D."
            )
        name, own = next(iter(objectives))
        return objective_key(str(name)), str(name), direction or str(own)
    key = objective_key(metric) if objective_key(metric) in logged else metric
    if key not in logged:
        where = where[:1].upper() + where[1:]
        raise AnnlabError(f"{where} has no metric {metric!r}: its runs log {sorted(logged)[:15]}.")
    if direction is None:
        own = {d for m, d in objectives if m == metric}
        direction = own.pop() if len(own) == 1 else guess_direction(metric)
    if direction is None:
        raise AnnlabError(
            f"Cannot tell whether --metric {metric} is better high or low: add "
            "--direction maximize or --direction minimize."
        )
    return key, metric, direction


def run_objectives(runs: Iterable) -> set[tuple[str | None, str | None]]:
    """The (objective.metric, objective.direction) params of MLflow runs."""
    return {(r.data.params.get("objective.metric"), r.data.params.get("objective.direction")) for r in runs}
