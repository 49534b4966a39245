"""Quick checks of the predict / registry helpers that need no trained model: reading new data
against a model's metadata, the predictions table, the serving request, metric directions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annlab.errors import AnnlabError
from annlab.objective import guess_direction
from annlab.serving.inputs import read_features
from annlab.serving.predict import prediction_columns
from annlab.serving.request import serving_request

TABLE_META = {"task": "regression", "feature_names": ["a", "b", "c"], "input_shape": [3], "is_image": False}
IMAGE_META = {
    "task": "multiclass",
    "feature_names": [f"p{i}" for i in range(4)],
    "input_shape": [2, 2],
    "is_image": True,
    "class_names": ["x", "y"],
}


def test_tables_are_matched_by_column_name(tmp_path):
    frame = pd.DataFrame({"id": [7, 8], "c": [3.0, 6.0], "b": [True, False], "a": ["1", "4"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    features = read_features(tmp_path / "t.csv", TABLE_META)
    np.testing.assert_array_equal(features.X, [[1, 1, 3], [4, 0, 6]])
    assert features.X.dtype == np.float32 and features.ignored == ["id"]
    frame.to_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(read_features(tmp_path / "t.parquet", TABLE_META).X, features.X)


@pytest.mark.parametrize("shape", [(5, 2, 2), (5, 4), (5, 2, 2, 1)])
def test_image_arrays_take_several_shapes(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.arange(20, dtype=np.uint8).reshape(shape))
    X = read_features(tmp_path / "x.npy", IMAGE_META).X
    assert X.shape == (5, 2, 2) and X.dtype == np.uint8
    np.save(tmp_path / "one.npy", np.ones((2, 2)))
    assert read_features(tmp_path / "one.npy", IMAGE_META).X.shape == (1, 2, 2)


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AnnlabError, match="x.npy.*Python objects"):
        read_features(tmp_path / "x.npy", IMAGE_META)


def test_classification_columns_binary_and_top_k():
    meta = {"task": "binary", "class_names": ["no", "yes"]}
    cols = prediction_columns({"output": np.array([[0.2], [0.9]])}, meta, top_k=5)
    assert cols["predicted"].tolist() == ["no", "yes"]
    np.testing.assert_allclose(cols["probability"], [0.8, 0.9])
    assert list(cols) == [
        "predicted",
        "probability",
        "top1",
        "top1_probability",
        "top2",
        "top2_probability",
    ]  # top-k stops at the number of classes
    multi = {"task": "multiclass", "class_names": ["a", "b", "c"]}
    cols = prediction_columns(
        {"output": np.array([[0.1, 0.7, 0.2]]), "aux_output": np.array([[0.6, 0.3, 0.1]])}, multi, top_k=2
    )
    assert (cols["predicted"][0], cols["top2"][0], cols["aux_output_predicted"][0]) == ("b", "c", "a")
    assert "top3" not in cols and "aux_output_top1" not in cols
    labels = prediction_columns(
        {"output": np.array([[0.7, 0.1, 0.9]])}, {"task": "multilabel", "class_names": ["a", "b", "c"]}
    )
    assert labels["predicted"][0] == "a;c" and labels["top1"][0] == "c"
    with pytest.raises(AnnlabError, match="top-k"):
        prediction_columns({"output": np.array([[0.5]])}, meta, top_k=0)


def test_regression_columns_one_per_output_and_target():
    meta = {"task": "regression", "target_names": ["price"]}
    cols = prediction_columns(
        {"output": np.array([[1.5], [2.5]]), "aux_output": np.array([[1.0], [2.0]])}, meta
    )
    assert list(cols) == ["predicted", "aux_output"]
    two = prediction_columns(
        {"output": np.array([[1.0, 2.0]])}, {"task": "regression", "target_names": ["lat", "lon"]}
    )
    assert list(two) == ["predicted_lat", "predicted_lon"]


def test_serving_request_splits_two_input_rows():
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert serving_request(TABLE_META, X) == {"inputs": X.tolist()}
    two = {**TABLE_META, "two_inputs": True, "wide_features": [0, 1], "deep_features": [1, 2]}
    assert serving_request(two, X) == {"inputs": {"wide": [[0, 1], [3, 4]], "deep": [[1, 2], [4, 5]]}}


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("val_loss", "minimize"),
        ("test_mse", "minimize"),
        ("val_RootMeanSquaredError", "minimize"),
        ("test_accuracy", "maximize"),
        ("test_r2", "maximize"),
        ("epochs_run", None),
    ],
)
def test_metric_directions_from_names(metric, direction):
    assert guess_direction(metric) == direction
