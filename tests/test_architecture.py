"""The structure reads as floors, each importing only from below (lazy imports count):

config -> data -> models -> training / sweeps -> tracking -> evaluation / reporting / serving
-> stages / cli, on top of a few shared utilities; and MLflow is called only from tracking/.
"""

from __future__ import annotations

from pathlib import Path

from annlab.code_deps import SOURCE_ROOT, imported_names

FLOORS = [
    # shared utilities
    {"errors", "io", "locks", "objective", "code_deps", "signals", "quiet_tensorflow", "__init__"},
    {"config"},
    {"data"},
    {"models"},
    {"training", "sweeps"},
    {"tracking"},
    {"evaluation", "reporting", "serving"},
    {"stages", "cli"},
]
SHARED_FLOORS = (0, 7)  # utilities, and the entry points, may use each other
PACKAGE = SOURCE_ROOT / "annlab"


def unit(module: str) -> str:
    """`annlab.tracking.store` -> `tracking`; `annlab.io` -> `io`; `annlab` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(name: str) -> int:
    return next(i for i, units in enumerate(FLOORS) if name in units)


def project_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_every_part_of_the_package_has_a_floor():
    units = {unit(m) for m in project_modules()}
    placed = set().union(*FLOORS)
    assert units <= placed, f"give these a floor in FLOORS: {sorted(units - placed)}"


def test_imports_run_down_the_floors():
    upward = []
    for module, path in project_modules().items():
        own = unit(module)
        for name in imported_names(path, module):
            if not name.startswith("annlab.") or unit(name) == own:
                continue
            target = unit(name)
            same_floor_ok = floor(target) == floor(own) and floor(own) in SHARED_FLOORS
            if floor(target) > floor(own) or (floor(target) == floor(own) and not same_floor_ok):
                upward.append(f"{module} imports {name}")
    assert not upward, "imports against the floors:\n" + "\n".join(sorted(set(upward)))


def test_mlflow_is_called_only_from_tracking():
    outside = [
        module
        for module, path in project_modules().items()
        if unit(module) != "tracking"
        and any(n == "mlflow" or n.startswith("mlflow.") for n in imported_names(path, module))
    ]
    plugins = SOURCE_ROOT / "hydra_plugins"
    outside += [
        str(path.relative_to(SOURCE_ROOT))
        for path in plugins.rglob("*.py")
        if any(n == "mlflow" or n.startswith("mlflow.") for n in imported_names(path, "hydra_plugins.x"))
    ]
    assert not outside, f"MLflow used outside annlab/tracking: {outside}"
