"""Model builders match the book, and every kind saves and reloads to the same predictions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from annlab.data.dataset import DatasetMeta
from annlab.models.build import build_model, model_inputs
from annlab.models.loading import load_keras_model
from annlab.models.mlp import layer_sizes

FASHION_META = DatasetMeta(
    "fashion_mnist",
    "multiclass",
    [28, 28],
    [f"pixel_{i}" for i in range(784)],
    [str(i) for i in range(10)],
    is_image=True,
)
HOUSING_META = DatasetMeta(
    "california_housing", "regression", [8], [f"f{i}" for i in range(8)], target_names=["MedHouseVal"]
)


def test_book_mlp_has_266610_parameters(compose):
    cfg = compose()
    model, head = build_model(cfg, FASHION_META, {"kind": "none"})
    assert model.count_params() == 266_610
    assert [layer.name for layer in model.layers] == ["flatten", "hidden_1", "hidden_2", "output"]
    assert head.loss == "sparse_categorical_crossentropy" and head.activation == "softmax"


def test_scaling_layer_adds_no_trainable_parameters(compose):
    model, _ = build_model(compose(), FASHION_META, {"kind": "rescale", "divisor": 255.0})
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 266_610
    pixels = np.arange(256, dtype=np.uint8).repeat(4)[:784].reshape(1, 28, 28)
    scaled = model.get_layer("scaling")(pixels.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(scaled), (pixels / 255.0).astype(np.float32))


@pytest.mark.parametrize(
    ("n_hidden", "n_neurons", "expected"),
    [
        (2, [300, 100], [300, 100]),
        (3, [300, 100], [300, 100, 100]),
        (1, [300, 100], [300]),
        (0, 30, []),
        (3, 30, [30, 30, 30]),
    ],
)
def test_layer_sizes(n_hidden, n_neurons, expected):
    assert layer_sizes(n_hidden, n_neurons) == expected


def _standard_scaler(n: int) -> dict:
    return {"kind": "standard", "mean": [0.5] * n, "variance": [2.0] * n}


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=mlp", "model.n_neurons=30"),
        ("model=mlp", "model.n_neurons=30", "model.dropout=0.1"),
    ],
)
def test_sequential_saves_and_reloads(compose, tmp_path, overrides):
    _assert_round_trip(compose(*overrides), HOUSING_META, tmp_path)


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=mlp",),
        ("model=wide_deep",),
        ("model=wide_deep", "model.wide_features=[0,1,2]", "model.deep_features=[2,3,4,5,6,7]"),
    ],
)
def test_clipping_bounds_rows_far_outside_the_training_range(compose, tmp_path, overrides):
    cfg = compose(*overrides, "split.clip=3")
    model, _ = build_model(cfg, HOUSING_META, _standard_scaler(8))
    inside = np.zeros((1, 8), dtype=np.float32)
    inside[0, 5] = 0.5 + 3 * np.sqrt(2.0)  # exactly 3 standard deviations above the mean
    outlier = inside.copy()
    outlier[0, 5] = 1_243.0  # California's largest AveOccup
    np.testing.assert_allclose(_outputs(model, cfg, outlier), _outputs(model, cfg, inside), rtol=1e-6)
    unclipped, _ = build_model(compose(*overrides), HOUSING_META, _standard_scaler(8))
    unclipped.set_weights(model.get_weights())
    assert not np.allclose(_outputs(unclipped, cfg, outlier), _outputs(unclipped, cfg, inside))
    _assert_round_trip(cfg, HOUSING_META, tmp_path)  # built-in layers: loads in safe mode


def test_wide_and_deep_dropout_follows_each_hidden_layer(compose, tmp_path):
    cfg = compose("model=wide_deep", "model.n_hidden=3", "model.dropout=0.2")
    model, _ = build_model(cfg, HOUSING_META, _standard_scaler(8))
    dropouts = [layer for layer in model.layers if layer.name.startswith("dropout_")]
    assert [d.rate for d in dropouts] == [0.2, 0.2, 0.2]
    _assert_round_trip(cfg, HOUSING_META, tmp_path)  # dropout is off at inference


def test_clipping_is_refused_for_models_without_it(compose):
    from annlab.errors import AnnlabError

    with pytest.raises(AnnlabError, match="split.clip.*model=mlp and model=wide_deep"):
        compose("model=perceptron", "split.clip=3")


@pytest.mark.parametrize(("overrides", "width"), [(("model=mlp",), 88), (("model=wide_deep",), 108)])
def test_model_summary_has_every_column_in_a_narrow_terminal(compose, monkeypatch, overrides, width):
    """Keras fits its table to the terminal; the summary file must not lose "Param #" or the
    right border when written from a 40-column terminal (or a log with no terminal)."""
    from annlab.training.outputs import model_summary

    monkeypatch.setenv("COLUMNS", "40")
    model, _ = build_model(compose(*overrides), HOUSING_META, _standard_scaler(8))
    text = model_summary(model)
    table = [line for line in text.splitlines() if line and line[0] in "┏┃┡│├└"]
    assert "Param #" in table[1] and "hidden_1 (Dense)" in text
    assert all(len(line) == width and line[-1] in "┓┃┩│┤┘" for line in table), table
    assert f"{model.count_params():,}" in text
    assert os.environ["COLUMNS"] == "40", "the terminal width is restored"


def _outputs(model, cfg, X):
    """The model's inference outputs on `X`, as NumPy: a direct call (no traced `predict`
    function to build for a few rows), in inference mode as `predict` runs it."""
    out = model(model_inputs(cfg, X), training=False)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _assert_round_trip(cfg, meta, tmp_path):
    model, _ = build_model(cfg, meta, _standard_scaler(8))
    X = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    before = _outputs(model, cfg, X)
    model.save(tmp_path / "model.keras")
    after = _outputs(load_keras_model(tmp_path / "model.keras"), cfg, X)
    if isinstance(before, dict):
        for key in before:
            np.testing.assert_allclose(after[key], before[key], rtol=1e-6)
    else:
        np.testing.assert_allclose(after, before, rtol=1e-6)


def test_subclassed_wide_and_deep_honours_dropout_initializer_and_aux_output(compose, tmp_path):
    """Nothing silently ignored: the subclassed model reads every setting it accepts."""
    cfg = compose("model=wide_deep_subclassed", "model.dropout=0.3", "model.kernel_initializer=zeros")
    model, _ = build_model(cfg, HOUSING_META, _standard_scaler(8))
    assert [d.rate for d in model.dropouts] == [0.3, 0.3]
    assert all(not np.asarray(layer.kernel).any() for layer in model.hidden)  # zeros
    _assert_round_trip(cfg, HOUSING_META, tmp_path)
    single = compose("model=wide_deep_subclassed", "model.aux_output=false", "model.loss_weights=null")
    model, _ = build_model(single, HOUSING_META, _standard_scaler(8))
    X = np.zeros((2, 8), dtype=np.float32)
    assert _outputs(model, single, X).shape == (2, 1)
    _assert_round_trip(single, HOUSING_META, tmp_path)
