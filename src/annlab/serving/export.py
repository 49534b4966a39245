"""Export a trained model as a TensorFlow SavedModel for TensorFlow Serving.

TensorFlow Serving watches a base folder and serves its highest numbered version, so the
export goes to `<base>/<version>/` (default base `export/<experiment>`, next free version).
Keras' `model.export` writes the `serving_default` signature; the scaling layer is part of the
graph, so the SavedModel takes raw features too. annlab's `meta.json` (task, feature and class
names) goes to `assets.extra/`, the SavedModel folder TensorFlow reserves for such files.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np

from annlab.errors import AnnlabError
from annlab.io import write_json
from annlab.models.feeding import feed

DEFAULT_ROOT = Path("export")
FORMATS = ("savedmodel",)


def next_version(base: Path) -> int:
    versions = (
        [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    )
    return max(versions, default=0) + 1


def export_model(
    model_ref: str, output: str | Path | None = None, version: int | None = None, fmt: str = "savedmodel"
) -> Path:
    """Write the SavedModel of `model_ref` to `<output>/<version>` and return that folder."""
    from annlab.serving.source import load_model

    if fmt not in FORMATS:
        raise AnnlabError(f"Expected --format one of {', '.join(FORMATS)}. Received: {fmt!r}.")
    if version is not None and version < 1:
        raise AnnlabError(f"Expected --version >= 1. Received: --version={version}.")
    loaded = load_model(model_ref)
    base = Path(output) if output else DEFAULT_ROOT / str(loaded.meta.get("experiment_name") or "model")
    target = base / str(version or next_version(base))
    if target.exists():
        raise AnnlabError(
            f"Export folder '{target}' already exists: pick another --version, or "
            "leave it out to write the next one."
        )
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=base))  # unique: exports may race
    shape = [int(d) for d in loaded.meta["input_shape"]]
    # A reloaded subclassed model has not been called yet, and Keras exports only called models.
    loaded.model(feed(loaded.meta, np.zeros((1, *shape), dtype=np.float32)))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the signature
            loaded.model.export(str(tmp), format="tf_saved_model")
        write_json(tmp / "assets.extra" / "annlab_meta.json", loaded.meta)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_summary(model_ref: str, output: str | Path | None, version: int | None, fmt: str) -> str:
    target = export_model(model_ref, output, version, fmt)
    return (
        f"export: {model_ref} -> {target} (TensorFlow SavedModel, signature serving_default; "
        f"serve with tensorflow_model_server --model_base_path={target.parent.resolve()})"
    )
