"""conf/ is the single source of truth: params.yaml is its composition, and every value is
validated with a message that names the key."""

from __future__ import annotations

import pytest
import yaml

from annlab.config import validate
from annlab.config.loading import compose_tree, load_params
from annlab.config.params import write_params
from annlab.errors import AnnlabError
from conftest import ROOT


def test_committed_params_equal_composition_of_defaults(tmp_path):
    """The committed params.yaml is byte-for-byte what `dvc exp run` would write from conf/."""
    fresh = write_params(tmp_path / "params.yaml", config_dir=ROOT / "conf")
    committed = (ROOT / "params.yaml").read_text()
    assert fresh.read_text() == committed, "params.yaml drifted from conf/: run `annlab params`"
    assert yaml.safe_load(committed)["dataset"]["name"] == "digits"


def test_params_yaml_loads_into_the_book_default():
    cfg = load_params(ROOT / "params.yaml")
    assert (cfg.dataset.name, cfg.model.name, cfg.optimizer.name) == ("digits", "mlp", "sgd")
    assert cfg.model.n_neurons == [300, 100] and cfg.model.n_hidden == 2
    assert cfg.training.loss == "auto" and cfg.optimizer.learning_rate == 0.01


def test_overrides_compose_like_dvc_exp_run(compose):
    cfg = compose("optimizer.learning_rate=0.05", "model.n_hidden=3", "dataset=iris")
    assert cfg.optimizer.learning_rate == 0.05
    assert cfg.model.n_hidden == 3
    assert cfg.dataset.name == "iris"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.epochs=0", "training.epochs"),
        ("training.batch_size=-1", "training.batch_size"),
        ("optimizer.learning_rate=0", "optimizer.learning_rate"),
        ("model.n_hidden=-1", "model.n_hidden"),
        ("model.n_neurons=0", "model.n_neurons"),
        ("model.activation=swishy", "model.activation"),
        ("optimizer.name=adamw2", "optimizer.name"),
        ("model.name=transformer", "model.name"),
        ("dataset.name=cifar", "dataset.name"),
        ("split.test_size=1.5", "split.test_size"),
        ("split.valid_size=0", "split.valid_size"),
        ("training.loss=hinge", "training.loss"),
        ("paths.models=/etc", "paths.models"),
        ("paths.reports=../outside", "paths.reports"),
        # nothing silently ignored: a setting the chosen model or optimizer does not read
        ("optimizer=adam optimizer.momentum=0.9", "`optimizer.momentum` is not used by optimizer=adam"),
        ("optimizer.decay_rate=0.5", "`optimizer.decay_rate` is not used by optimizer.schedule=none"),
        ("model=wide_deep model.loss_weights=[1,1]", "model.aux_output=true"),
    ],
)
def test_bad_values_fail_with_the_key_named(compose, override, expected):
    with pytest.raises(AnnlabError) as err:
        compose(*override.split())
    message = str(err.value)
    assert expected in message and "\n" not in message


def test_unknown_key_and_wrong_type_are_named():
    tree = compose_tree(config_dir=ROOT / "conf")
    tree.training.epochs = "many"
    with pytest.raises(AnnlabError, match="training.epochs"):
        validate(tree)
    tree = compose_tree(["+model.n_layers=3"], config_dir=ROOT / "conf")
    with pytest.raises(AnnlabError, match="model.n_layers"):
        validate(tree)


def test_missing_params_file_names_the_fix(tmp_path):
    with pytest.raises(AnnlabError, match="dvc exp run"):
        load_params(tmp_path / "params.yaml")
