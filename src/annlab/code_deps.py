"""The project files a module runs: its import closure, read from the code itself (AST).

DVC cannot see Python imports, so `dvc.yaml` names each stage's code by hand; a test derives
the same list from here and fails when the two differ. The Hydra app's data cache keys its
prepared data on the loaders' code with it too. Every `import` counts, also those inside
functions (lazy imports), and importing `a.b.c` runs the packages `a` and `a.b` first.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # src/
PROJECT_PACKAGES = ("annlab",)


def module_file(name: str) -> Path | None:
    """The file that defines module `name` if it is project code, else None."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = SOURCE_ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_names(file: Path, module: str) -> set[str]:
    """Every name an import statement of `file` may load as a module, lazy imports included
    (`from a import b` may load the module `a.b`)."""
    tree = ast.parse(file.read_text(), str(file))
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(*modules: str) -> list[Path]:
    """The project files that importing `modules` may run, sorted."""
    seen: set[Path] = set()
    queue = list(modules)
    while queue:
        for name in _with_parents(queue.pop()):
            file = module_file(name)
            if file is None or file in seen:
                continue
            seen.add(file)
            queue.extend(imported_names(file, name))
    return sorted(seen)


def code_digest(*modules: str) -> str:
    """A hash of the code `modules` run: changes when any file of their closure changes."""
    digest = hashlib.sha256()
    for file in import_closure(*modules):
        digest.update(str(file.relative_to(SOURCE_ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()
