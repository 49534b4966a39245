"""The Hydra app's data cache is keyed on what the data is, not on the config alone."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from annlab.data.cache import data_key, ensure_prepared
from annlab.data.split import load_splits


def write_csv(path, n_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, 3)), columns=["a", "b", "c"])
    frame["y"] = rng.normal(size=n_rows)
    frame.to_csv(path, index=False)


def test_editing_the_data_file_prepares_the_new_data(compose, workdir):
    csv = workdir / "table.csv"
    write_csv(csv, 40, seed=0)
    cfg = compose("dataset=tabular", f"dataset.path={csv}", "dataset.target=y")
    first = ensure_prepared(cfg)
    assert ensure_prepared(cfg) == first  # unchanged file: the cache is used
    write_csv(csv, 60, seed=1)
    os.utime(csv, ns=(1, 1))  # even with an old modification time, the size differs
    second = ensure_prepared(cfg)
    assert second != first
    assert sum(load_splits(second).sizes().values()) == 60
    assert sum(load_splits(first).sizes().values()) == 40


def test_same_size_new_content_is_seen_by_its_modification_time(compose, workdir):
    csv = workdir / "table.csv"
    write_csv(csv, 30, seed=0)
    cfg = compose("dataset=tabular", f"dataset.path={csv}", "dataset.target=y")
    before = data_key(cfg)
    text = csv.read_text().replace("-", "+", 1)  # same size, other values
    csv.write_text(text)
    os.utime(csv, ns=(10**18, 10**18))
    assert data_key(cfg) != before


def test_the_loaders_code_is_part_of_the_key(compose):
    cfg = compose()
    assert data_key(cfg) == data_key(cfg)
    assert data_key(cfg, code="a") != data_key(cfg, code="b")
    assert data_key(cfg) != data_key(compose("split.test_size=0.3"))
