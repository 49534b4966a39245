"""Atomic writes create files and folders with the mode a plain `open()` / `mkdir()` gives."""

from __future__ import annotations

import pytest

from annlab.io import atomic_dir, atomic_file, write_json
from conftest import mode_of, umask


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_atomic_outputs_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        with atomic_file(tmp_path / "report.md") as handle:
            handle.write("# report\n")
        write_json(tmp_path / "metrics.json", {"accuracy": 1.0})
        with atomic_dir(tmp_path / "figures") as folder:
            (folder / "curve.png").write_bytes(b"png")
        (tmp_path / "plain.txt").write_text("as open() makes it")
    assert mode_of(tmp_path / "plain.txt") == file_mode
    assert mode_of(tmp_path / "report.md") == file_mode
    assert mode_of(tmp_path / "metrics.json") == file_mode
    assert mode_of(tmp_path / "figures") == dir_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "metrics.json", "plain.txt", "report.md"]


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    write_json(tmp_path / "metrics.json", {"accuracy": 1.0})
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "metrics.json") as handle:
        handle.write("{half")
        raise RuntimeError("crash")
    assert (tmp_path / "metrics.json").read_text().startswith('{\n  "accuracy"')
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
