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


DIGITS_META = {
    "task": "multiclass",
    "feature_names": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
    "input_shape": [8, 8],
    "is_image": True,
}
FASHION_META = {
    "task": "multiclass",
    "feature_names": [f"pixel_{i}" for i in range(784)],
    "input_shape": [28, 28],
    "is_image": True,
}


@pytest.mark.parametrize("meta", [DIGITS_META, FASHION_META], ids=["digits", "fashion"])
def test_image_tables_are_taken_by_position_when_not_named_as_in_training(tmp_path, meta):
    size = len(meta["feature_names"])
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, size))
    shape = (3, *meta["input_shape"])
    plain = pd.DataFrame(pixels)
    plain.to_csv(tmp_path / "plain.csv", index=False, header=False)  # rows of numbers only
    plain.to_csv(tmp_path / "default.csv", index=False)  # pandas' header: 0, 1, ..., n-1
    plain.set_axis([f"px{i}" for i in range(size)], axis=1).to_csv(tmp_path / "other.csv", index=False)
    named = plain.set_axis(meta["feature_names"], axis=1)
    named[named.columns[::-1]].to_csv(tmp_path / "named.csv", index=False)  # any order, by name
    for name, how in [
        ("plain", "no header row"),
        ("default", "the column names are not the training names"),
        ("other", "the column names are not the training names"),
        ("named", ""),
    ]:
        features = read_features(tmp_path / f"{name}.csv", meta)
        np.testing.assert_array_equal(features.X, pixels.reshape(shape), err_msg=name)
        assert features.by_position == how and (how in features.note()), name


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1,2,3\n4,5,6\n", ["the model takes 64", "3 columns per row", "images of shape (8, 8)", "(n, 64)"]),
        ("pixel_0_0,x\n1,2\n", ["lacks the feature columns", "images of shape (8, 8)", "(n, 64)"]),
        ("", ["empty", "images of shape (8, 8)", "64 pixel columns"]),
    ],
)
def test_image_table_refusals_state_the_shape(tmp_path, content, expected):
    (tmp_path / "new.csv").write_text(content)
    with pytest.raises(AnnlabError) as err:
        read_features(tmp_path / "new.csv", DIGITS_META)
    message = str(err.value)
    assert "\n" not in message and "new.csv" in message
    for part in expected:
        assert part in message, (part, message)


def test_every_refusal_states_what_the_model_takes(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    np.save(tmp_path / "x.npy", np.zeros((2, 5)))
    for path in (tmp_path / "nope.csv", tmp_path / "x.json", tmp_path / "x.npy"):
        with pytest.raises(AnnlabError, match=r"The model takes 3 features: a table with the columns \['a'"):
            read_features(path, TABLE_META)
    pd.DataFrame([[1, 2, 3]]).to_csv(tmp_path / "plain.csv", index=False, header=False)
    features = read_features(tmp_path / "plain.csv", TABLE_META)
    np.testing.assert_array_equal(features.X, [[1, 2, 3]])


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
