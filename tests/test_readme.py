"""What a new user reads first: the README's commands are the ones that work offline, in the
order the issue (#15) asks for, and its `new.csv` recipe makes a file `annlab predict` takes."""

from __future__ import annotations

import re

from annlab.serving.inputs import read_features
from conftest import ROOT

README = (ROOT / "README.md").read_text()
CODE = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL))


def commands(prefix: str) -> list[str]:
    return [line.strip() for line in CODE.splitlines() if line.strip().startswith(prefix)]


def test_quick_tests_come_first_and_durations_are_stated():
    first = commands("pytest")[0]
    assert first.startswith('pytest -m "not slow"') and "min" in first
    full_suite = r"^pytest( -n \d+)?\s+#.*~?\d+ min"
    assert re.search(full_suite, CODE, flags=re.MULTILINE), "the full suite's duration"


def test_dvc_exp_show_is_always_given_options_that_fit_a_terminal():
    shown = re.findall(r"dvc exp show[^\n#]*", CODE)
    assert shown and all(re.search(r"--only-changed|--md|--keep", s) for s in shown), shown


def test_no_machine_paths_and_dvc_plots_ignored():
    assert "/work/" not in README
    assert "dvc_plots/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_new_csv_recipe_makes_rows_annlab_predict_takes(tmp_path, monkeypatch):
    (recipe,) = [c for c in commands("python -c") if "new.csv" in c]
    code = re.fullmatch(r'python -c "(.*)"', recipe).group(1)
    monkeypatch.chdir(tmp_path)
    exec(code, {})  # the README's one-liner, in this interpreter (scikit-learn is loaded already)
    meta = {
        "task": "multiclass",
        "feature_names": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        "input_shape": [8, 8],
        "is_image": True,
    }
    features = read_features(tmp_path / "new.csv", meta)
    assert features.X.shape == (5, 8, 8) and features.by_position == "no header row"
    assert CODE.index("new.csv', load_digits()") < CODE.index("annlab predict new.csv")
