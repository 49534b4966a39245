"""A search space written in Hydra's override grammar, as Optuna distributions.

model.n_hidden: range(0, 4)                           -> int 0..3 (range's stop is excluded)
model.n_neurons: tag(int, interval(1, 99))            -> int 1..99
optimizer.learning_rate: tag(log, interval(3e-4, 3e-2)) -> float, log-uniform
optimizer: choice(sgd, adam)                          -> categorical
training.epochs: 20                                   -> fixed for every trial
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep

from annlab.errors import AnnlabError

PRIMITIVES = (type(None), bool, int, float, str)


def parse_search_space(
    params: Mapping[str, Any], arguments: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """(key -> distribution, fixed overrides) from the sweeper's `params` and the command line;
    a command-line override of a key replaces the config's entry for it."""
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    try:
        overrides = OverridesParser.create().parse_overrides(lines)
    except Exception as err:  # hydra's OverrideParseException
        raise AnnlabError(f"Cannot parse the search space: {' '.join(str(err).split())}") from None
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())


def distribution(override: Override):
    """One sweep override as an Optuna distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    sweep = override.value()
    tags = getattr(sweep, "tags", set())
    log = "log" in tags
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([_choice(v) for v in sweep.list])
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise AnnlabError(f"Expected a non-empty range for `{key}`. Received: {override.input_line}.")
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=1 if log else int(sweep.step), log=log)
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(sweep.step))
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        if log and low <= 0:
            raise AnnlabError(
                f"Expected a log interval above 0 for `{key}`. Received: {override.input_line}."
            )
        if "int" in tags:
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise AnnlabError(
        f"Unsupported sweep for `{key}`: {override.input_line}. Use choice(...), "
        "range(...) or interval(...), optionally in tag(log, ...) or tag(int, ...)."
    )


def _choice(value: Any) -> Any:
    """Optuna stores None/bool/int/float/str choices; lists and dicts travel as override text."""
    if isinstance(value, PRIMITIVES):
        return value
    return grammar_text(value)


def grammar_text(value: Any) -> str:
    """A value written in Hydra's override grammar: `[300,100]`, `{a:1,b:x}`, `null`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(grammar_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{grammar_text(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w./-]*", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def as_override(key: str, value: Any) -> str:
    """A sampled value as `key=value` in Hydra's grammar."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return f"{key}={text}"
