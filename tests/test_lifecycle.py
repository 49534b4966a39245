"""`annlab predict`, `annlab request` and `annlab export` on small real models: raw rows give
exactly the evaluate stage's predictions, whatever the file format and however the model is
named (path, run id, MLflow model URI); wrong inputs end in one clear line."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pandas as pd
import pytest

from annlab.errors import AnnlabError
from conftest import mode_of, run, seed_store, tool_env, umask
from lifecycle_support import (
    DIABETES,
    DIGITS,
    IRIS,
    SUBCLASSED,
    WIDE_DEEP,
    raw_table,
    tracking_store,
    train_small,
)

pytestmark = pytest.mark.slow  # trains real models once per module
MODELS = {
    "iris": IRIS,
    "diabetes": DIABETES,
    "wide_deep": WIDE_DEEP,
    "subclassed": SUBCLASSED,
    "digits": DIGITS,
}


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, empty_store) -> str:
    return f"sqlite:///{seed_store(empty_store, tmp_path_factory.mktemp('store') / 'mlruns.db')}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, store_uri):
    """The five small models, trained once for the module, logged to one MLflow store."""
    root = tmp_path_factory.mktemp("trained")
    with tracking_store(store_uri):
        return {name: train_small(root / name, *overrides) for name, overrides in MODELS.items()}


@pytest.fixture
def use_store(monkeypatch, store_uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)


def load(trained_model):
    from annlab.serving.source import load_model

    return load_model(str(trained_model.models / "model.keras"))


def evaluate_outputs(trained_model) -> dict[str, np.ndarray]:
    """What the evaluate stage computes on the test split (arrays fed by the training config),
    at full precision."""
    from annlab.models.build import input_mapping
    from annlab.models.feeding import predict_outputs

    X, _ = trained_model.test_split()
    return predict_outputs(load(trained_model).model, input_mapping(trained_model.cfg), X)


def raw_file(trained_model, folder):
    """The test split as a user would hand it over: a table with named columns for tabular
    data, a .npy array for images."""
    if trained_model.meta["is_image"]:
        X, _ = trained_model.test_split()
        np.save(folder / "new.npy", X)
        return folder / "new.npy"
    return raw_table(trained_model, folder / "new.csv")


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_on_raw_rows_equals_evaluate(trained, name, workdir):
    from annlab.models.feeding import predict_outputs
    from annlab.serving.inputs import read_features
    from annlab.serving.predict import predict_file

    model = trained[name]
    data = raw_file(model, workdir)
    summary = predict_file(str(model.models / "model.keras"), data, workdir / "pred.csv")
    predicted = pd.read_csv(workdir / "pred.csv", keep_default_na=False)
    evaluated = model.evaluate_predictions()
    assert len(predicted) == len(evaluated) == len(model.test_split()[0])

    # The numbers themselves: raw rows in, bit for bit what evaluate computed.
    loaded = load(model)
    ours = predict_outputs(loaded.model, loaded.meta, read_features(data, loaded.meta).X)
    theirs = evaluate_outputs(model)
    assert list(ours) == list(theirs)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key].reshape(len(ours[key]), -1))

    if model.meta["task"] == "multiclass":
        assert list(predicted.columns[:2]) == ["predicted", "probability"]
        assert predicted["predicted"].astype(str).tolist() == evaluated["predicted"].astype(str).tolist()
        np.testing.assert_allclose(predicted["probability"], evaluated["probability"], rtol=1e-5)
        assert (predicted["top1"].astype(str) == predicted["predicted"].astype(str)).all()
        assert {"top3", "top3_probability"} <= set(predicted.columns)
        assert (predicted["top1_probability"] >= predicted["top2_probability"]).all()
        np.testing.assert_allclose(predicted["probability"], theirs["output"].max(axis=1), rtol=1e-6)
    else:
        np.testing.assert_allclose(predicted["predicted"], evaluated["predicted"], rtol=1e-5)
        np.testing.assert_array_equal(
            predicted["predicted"].to_numpy(np.float32), theirs["output"].reshape(-1)
        )
    if name in ("wide_deep", "subclassed"):
        assert list(predicted.columns) == ["predicted", "aux_output"]
        np.testing.assert_array_equal(
            predicted["aux_output"].to_numpy(np.float32), theirs["aux_output"].reshape(-1)
        )
    if not model.meta["is_image"]:
        assert "ignored columns ['id', 'target']" in summary


def test_predict_from_run_id_and_parquet(trained, use_store, workdir):
    """The same predictions from the MLflow run (runs:/ID, bare id) and from a Parquet file."""
    from annlab.serving.predict import predict_file

    model = trained["wide_deep"]
    predict_file(str(model.models), raw_table(model, workdir / "new.csv"), workdir / "a.csv")
    parquet = raw_table(model, workdir / "new.parquet")
    summary = predict_file(f"runs:/{model.run_id}", parquet, workdir / "b.csv")
    assert "models:/m-" in summary
    predict_file(model.run_id, parquet, workdir / "c.csv")
    first = (workdir / "a.csv").read_text()
    assert first == (workdir / "b.csv").read_text() == (workdir / "c.csv").read_text()


def write_idx(path, images: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, images.ndim) + b"".join(
        struct.pack(">I", d) for d in images.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + images.astype(np.uint8).tobytes())


def test_predict_images_from_idx_and_flat_npy(trained, workdir):
    from annlab.serving.predict import predict_file

    model = trained["digits"]
    X, _ = model.test_split()
    write_idx(workdir / "t10k-images-idx3-ubyte.gz", X)
    np.save(workdir / "flat.npy", X.reshape(len(X), -1).astype(np.float32))
    np.save(workdir / "one.npy", X[0])
    ref = str(model.models / "model.keras")
    predict_file(ref, workdir / "t10k-images-idx3-ubyte.gz", workdir / "idx.csv", top_k=5)
    predict_file(ref, workdir / "flat.npy", workdir / "flat.csv", top_k=5)
    predict_file(ref, workdir / "one.npy", workdir / "one.csv", top_k=5)
    idx = pd.read_csv(workdir / "idx.csv")
    assert idx.equals(pd.read_csv(workdir / "flat.csv"))
    assert "top5_probability" in idx.columns and "top6" not in idx.columns
    assert pd.read_csv(workdir / "one.csv").iloc[0].equals(idx.iloc[0])
    assert (
        idx["predicted"].astype(str).tolist()
        == model.evaluate_predictions()["predicted"].astype(str).tolist()
    )


def test_predict_images_from_a_headerless_csv_of_pixels(trained, workdir):
    """Plain rows of 64 pixel values (no header, or columns named another way) are taken by
    position and give the same predictions as the array; the summary line says so."""
    from annlab.serving.predict import predict_file

    model = trained["digits"]
    X, _ = model.test_split()
    np.save(workdir / "flat.npy", X.reshape(len(X), -1))
    pd.DataFrame(X.reshape(len(X), -1)).to_csv(workdir / "plain.csv", index=False, header=False)
    ref = str(model.models / "model.keras")
    predict_file(ref, workdir / "flat.npy", workdir / "from_npy.csv")
    summary = predict_file(ref, workdir / "plain.csv", workdir / "from_csv.csv")
    assert f"predict: {len(X)} rows of" in summary and "columns taken by position (no header row)" in summary
    assert (workdir / "from_csv.csv").read_text() == (workdir / "from_npy.csv").read_text()
    pd.DataFrame(X[:, :7].reshape(len(X), -1)).to_csv(workdir / "narrow.csv", index=False, header=False)
    refusal = r"56 columns per row; the model takes 64.*\(n, 8, 8\) or \(n, 64\)"
    with pytest.raises(AnnlabError, match=refusal):
        predict_file(ref, workdir / "narrow.csv", workdir / "out.csv")


def test_cli_predict_and_its_error_line(trained, workdir):
    """The real `annlab predict` command: a summary line on success, one error line and
    exit 1 on a file with a missing column."""
    model = trained["iris"]
    data = raw_table(model, workdir / "new.csv")
    ok = run(
        [
            "annlab",
            "predict",
            str(data),
            "--model",
            str(model.models / "model.keras"),
            "--output",
            "out.csv",
            "--top-k",
            "2",
        ],
        workdir,
        tool_env(),
    )
    assert ok.stdout.startswith("predict: 30 rows of") and "-> out.csv" in ok.stdout
    columns = pd.read_csv(workdir / "out.csv").columns.tolist()
    assert columns == ["predicted", "probability", "top1", "top1_probability", "top2", "top2_probability"]
    pd.read_csv(data).drop(columns=["petal width (cm)"]).to_csv(workdir / "bad.csv", index=False)
    bad = run(
        ["annlab", "predict", "bad.csv", "--model", str(model.models)], workdir, tool_env(), check=False
    )
    assert bad.returncode == 1
    lines = [line for line in bad.stderr.splitlines() if line.startswith("annlab predict")]
    assert len(lines) == 1, bad.stderr
    assert "bad.csv" in lines[0] and "'petal width (cm)'" in lines[0]
    assert not (workdir / "predictions.csv").exists()


def _table(model, folder, edit):
    frame = pd.read_csv(raw_table(model, folder / "base.csv"))
    edit(frame)
    frame.to_csv(folder / "bad.csv", index=False)
    return folder / "bad.csv"


def _set(column, row, value):
    def edit(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value

    return edit


BAD_INPUTS = {
    "missing column": (
        "iris",
        lambda m, d: _table(m, d, lambda f: f.drop(columns=["sepal length (cm)"], inplace=True)),
        ["bad.csv", "'sepal length (cm)'", "named as in training"],
    ),
    "non-numeric": (
        "iris",
        lambda m, d: _table(m, d, _set("sepal width (cm)", 2, "wide")),
        ["bad.csv", "non-numeric", "row 3", "'wide'"],
    ),
    "missing value": (
        "diabetes",
        lambda m, d: _table(m, d, _set("bmi", 4, None)),
        ["bad.csv", "'bmi'", "missing", "row 5"],
    ),
    "wrong feature count": (
        "iris",
        lambda m, d: _npy(d, np.zeros((3, 5))),
        ["x.npy", "shape (5,)", "(n, 4)"],
    ),
    "wrong image shape": (
        "digits",
        lambda m, d: _npy(d, np.zeros((2, 28, 28), np.uint8)),
        ["x.npy", "images of shape (28, 28)", "(n, 8, 8)"],
    ),
    "text array": ("digits", lambda m, d: _npy(d, np.array([["a"] * 64])), ["x.npy", "numeric"]),
    "nan in array": ("iris", lambda m, d: _npy(d, np.array([[1.0, np.nan, 2.0, 3.0]])), ["x.npy", "NaN"]),
    "empty table": ("iris", lambda m, d: _text(d / "e.csv", ""), ["e.csv", "empty"]),
    "header only": (
        "iris",
        lambda m, d: _text(d / "h.csv", ",".join(m.meta["feature_names"]) + "\n"),
        ["h.csv", "no rows"],
    ),
    "unknown format": ("iris", lambda m, d: _text(d / "x.json", "{}"), ["x.json", ".csv"]),
    "no such file": ("iris", lambda m, d: d / "nope.csv", ["nope.csv", "does not exist"]),
    "corrupt idx": (
        "digits",
        lambda m, d: _text(d / "images-idx3-ubyte", "garbage"),
        ["images-idx3-ubyte", "IDX"],
    ),
}


def _npy(folder, array):
    np.save(folder / "x.npy", array)
    return folder / "x.npy"


def _text(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_wrong_inputs_get_one_clear_line(trained, workdir, case):
    from annlab.serving.predict import predict_file

    name, make, expected = BAD_INPUTS[case]
    data = make(trained[name], workdir)
    with pytest.raises(AnnlabError) as err:
        predict_file(str(trained[name].models / "model.keras"), data, workdir / "out.csv")
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)
    assert not (workdir / "out.csv").exists()


def test_wrong_model_references(trained, use_store, workdir):
    from annlab.serving.predict import predict_file

    data = raw_table(trained["iris"], workdir / "new.csv")
    cases = {
        "models/none.keras": "not found",
        "runs:/0123456789abcdef0123456789abcdef": "not found",
        "models:/no_such_model@champion": "not found",
    }
    for ref, expected in cases.items():
        with pytest.raises(AnnlabError, match=expected):
            predict_file(ref, data, workdir / "out.csv")
    (workdir / "lone").mkdir()
    (workdir / "lone" / "model.keras").write_bytes((trained["iris"].models / "model.keras").read_bytes())
    with pytest.raises(AnnlabError, match="meta.json"):
        predict_file(str(workdir / "lone" / "model.keras"), data, workdir / "out.csv")
    with pytest.raises(AnnlabError, match="top-k"):
        predict_file(str(trained["iris"].models), data, workdir / "out.csv", top_k=0)


def test_serving_request_feeds_the_logged_pyfunc(trained, use_store, workdir, capfd):
    """The body `annlab request` writes, given to the logged MLflow model as a pyfunc (what
    `mlflow models serve` calls), gives annlab predict's numbers, silently (no progress bar);
    two-input models get their `wide` / `deep` feature subsets by name."""
    import mlflow

    from annlab.serving.request import write_request

    for name in ("iris", "wide_deep"):
        model = trained[name]
        data = raw_table(model, workdir / f"{name}.csv")
        write_request(f"runs:/{model.run_id}", data, workdir / f"{name}.json")
        body = json.loads((workdir / f"{name}.json").read_text())
        pyfunc = mlflow.pyfunc.load_model(mlflow.get_run(model.run_id).data.tags["annlab.model_uri"])
        inputs = body["inputs"]
        if name == "wide_deep":
            assert set(inputs) == {"wide", "deep"}
            assert len(inputs["wide"][0]) == 5 and len(inputs["deep"][0]) == 8
            inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
        else:
            inputs = np.asarray(inputs, dtype=np.float32)
        capfd.readouterr()
        served = pyfunc.predict(inputs)
        printed = capfd.readouterr()
        assert printed.out == "" and "━" not in printed.err, printed
        theirs = evaluate_outputs(model)
        if isinstance(served, np.ndarray) and served.dtype == object:
            served = served.item()
        if isinstance(served, dict):
            for key in theirs:
                np.testing.assert_allclose(np.asarray(served[key]), theirs[key], rtol=1e-6)
        else:
            np.testing.assert_allclose(np.asarray(served), theirs["output"], rtol=1e-6)


@pytest.mark.parametrize("name", ["iris", "wide_deep", "subclassed"])
def test_export_savedmodel_predicts_the_same(trained, name, workdir):
    import tensorflow as tf

    from annlab.models.feeding import feed
    from annlab.serving.export import export_model

    model = trained[name]
    ref = str(model.models / "model.keras")
    first = export_model(ref)
    assert first == workdir.joinpath("export", model.meta["experiment_name"], "1").relative_to(workdir)
    assert (first / "saved_model.pb").is_file()
    assert json.loads((first / "assets.extra" / "annlab_meta.json").read_text()) == model.meta
    assert export_model(ref).name == "2"  # TensorFlow Serving serves the highest version
    with pytest.raises(AnnlabError, match="already exists"):
        export_model(ref, version=1)

    X, _ = model.test_split()
    saved = tf.saved_model.load(str(first))
    inputs = feed(model.meta, X)
    inputs = {k: tf.constant(v) for k, v in inputs.items()} if isinstance(inputs, dict) else tf.constant(X)
    served = saved.serve(inputs)
    served = served if isinstance(served, dict) else {"output": served}
    theirs = evaluate_outputs(model)
    for key in theirs:
        np.testing.assert_allclose(served[key].numpy(), theirs[key], rtol=1e-5, atol=1e-6)
    signature = saved.signatures["serving_default"]
    assert signature.structured_outputs  # what TensorFlow Serving answers with


def test_cli_request_and_export(trained, workdir, capsys):
    from annlab.cli import main

    model = trained["wide_deep"]
    data = raw_table(model, workdir / "new.csv")
    main(["request", str(data), "--model", str(model.models), "--output", "body.json"])
    assert capsys.readouterr().out.startswith("request: 89 rows of")
    body = json.loads((workdir / "body.json").read_text())
    assert set(body["inputs"]) == {"wide", "deep"} and len(body["inputs"]["wide"]) == 89
    main(["export", "--model", str(model.models), "--output", "served", "--version", "3"])
    assert "-> served/3 (TensorFlow SavedModel" in capsys.readouterr().out
    assert (workdir / "served" / "3" / "saved_model.pb").is_file()
    assert not list((workdir / "served").glob(".*"))  # no temporary folder left behind


def test_predictions_and_request_files_have_the_mode_a_plain_open_gives(trained, workdir):
    """Under umask 022 the files a user asks for are 0644, like any file their shell writes."""
    from annlab.serving.predict import predict_file
    from annlab.serving.request import write_request

    model = trained["iris"]
    data = raw_table(model, workdir / "new.csv")
    with umask(0o022):
        predict_file(str(model.models), data, workdir / "predictions.csv")
        write_request(str(model.models), data, workdir / "request.json")
    assert mode_of(workdir / "predictions.csv") == 0o644
    assert mode_of(workdir / "request.json") == 0o644
