"""dvc.yaml is exact: each stage depends on every project file its module runs, and on no other.

DVC cannot see Python imports; `annlab.code_deps` reads them from the code (lazy imports too).
When a test here fails, its message holds the `deps:` lines the stage needs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from annlab.code_deps import import_closure
from conftest import ROOT

SOURCE_DIR = "src/"


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_module(stage: dict) -> str:
    """`python -m annlab.stages.train` -> `annlab.stages.train`."""
    words = stage["cmd"].split()
    assert words[:2] == ["python", "-m"], f"stage command {stage['cmd']!r} is not `python -m MODULE`"
    return words[2]


def files_under(path: Path) -> set[Path]:
    """What DVC hashes for a dependency (.dvcignore keeps `__pycache__/` out)."""
    if path.is_file():
        return {path}
    return {p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def listed_code(stage: dict) -> set[Path]:
    deps = [d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith(SOURCE_DIR)]
    return {f for d in deps for f in files_under(ROOT / d)}


def needed_code(stage: dict) -> set[Path]:
    return set(import_closure(stage_module(stage)))


def as_deps(files: set[Path]) -> list[str]:
    """The shortest `deps:` list for `files`: a folder where every file in it is needed."""
    out: list[str] = []
    covered: set[Path] = set()
    folders = sorted({p for f in files for p in f.parents if ROOT / "src" in p.parents})
    for folder in folders:
        inside = files_under(folder)
        if inside <= files and not inside <= covered:
            out.append(str(folder.relative_to(ROOT)))
            covered |= inside
    out += [str(f.relative_to(ROOT)) for f in sorted(files - covered)]
    return sorted(out)


def test_dvc_ignores_python_bytecode():
    """Folder dependencies must not change when Python writes `__pycache__`."""
    assert "__pycache__/" in (ROOT / ".dvcignore").read_text().split()


def test_each_stage_depends_on_exactly_the_code_it_runs():
    wrong = {}
    for name, stage in dvc_stages().items():
        listed, needed = listed_code(stage), needed_code(stage)
        if listed != needed:
            missing = sorted(str(p.relative_to(ROOT)) for p in needed - listed)
            extra = sorted(str(p.relative_to(ROOT)) for p in listed - needed)
            wrong[name] = (missing, extra, as_deps(needed))
    message = "\n".join(
        f"stage {name}: missing {missing}, not run {extra}; its code deps should be:\n      - "
        + "\n      - ".join(deps)
        for name, (missing, extra, deps) in wrong.items()
    )
    assert not wrong, f"dvc.yaml does not match the code the stages import:\n{message}"


def test_the_closure_follows_lazy_relative_and_package_imports():
    closure = {str(p.relative_to(ROOT / "src")) for p in import_closure("annlab.stages.evaluate")}
    assert "annlab/__init__.py" in closure  # a package runs before its modules
    assert "annlab/evaluation/metrics.py" in closure  # imported inside a function
    assert "annlab/stages/evaluate.py" in closure
    assert not any(p.startswith("annlab/reporting/") for p in closure)  # evaluate draws nothing


def test_reporting_code_is_not_a_dependency_of_training():
    """A change to the report must not retrain."""
    stages = dvc_stages()
    train, report = needed_code(stages["train"]), needed_code(stages["report"])
    only_report = {str(p.relative_to(ROOT)) for p in report - train}
    assert any(p.startswith("src/annlab/reporting/") for p in only_report)
    assert all(ROOT / p not in listed_code(stages["train"]) for p in only_report)


def test_a_change_to_the_mlflow_code_reruns_no_stage_that_never_logs():
    """prepare, split and evaluate never open an MLflow run: editing tracking/ must not rerun
    them (their exit passes no MLflow queue to flush; train and report, which log from their
    own process where no helper can fork, hand theirs over)."""
    stages = dvc_stages()
    for name in ("prepare", "split", "evaluate"):
        tracking = {p for p in needed_code(stages[name]) if "tracking" in p.relative_to(ROOT).parts}
        assert not tracking, f"{name} runs {sorted(str(p.relative_to(ROOT)) for p in tracking)}"
    assert any("tracking" in p.parts for p in needed_code(stages["train"]))


def test_dvc_reads_its_yaml_files_with_the_c_parser():
    """pyproject.toml installs ruamel.yaml.clib so that DVC's safe YAML loader (dvc.yaml, dvc.lock,
    params.yaml) parses in C: 0.3-0.5 s less CPU per `dvc` command (a no-op `dvc repro`: 2.0 ->
    1.7 s of CPU on the default job, 1.85 -> 1.3 s wall with Fashion-MNIST's outputs). ruamel.yaml
    0.19 made the extension optional; this pins that it is installed and used, and parses alike."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is not installed: `pip install -e .`"
    safe = YAML(typ="safe")  # what DVC's parse_yaml makes
    assert safe.Parser is CParser
    text = (ROOT / "dvc.yaml").read_text()
    assert safe.load(text) == yaml.safe_load(text)
