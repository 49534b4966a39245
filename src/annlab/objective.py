"""The objective every run is ranked by: a metric, its direction, and picking the best.

Training records the objective as the metric `objective_<metric>` (the value of the model it
kept); sweeps, `annlab promote`, `annlab compare` and the report all rank with the helpers here.
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
