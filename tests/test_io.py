"""Atomic outputs (one step, the mode a plain `open()` / `mkdir()` gives) and store retries:
the reliability edges every stage stands on."""

from __future__ import annotations

import pytest

from annlab.io import _exchange, atomic_dir, atomic_file, write_json
from annlab.tracking.store import retry_dataset_race, retry_locked
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


def siblings(folder) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p != folder)


def test_a_folder_is_swapped_for_its_new_version_in_one_step(tmp_path):
    """Linux swaps the two folders with renameat2(RENAME_EXCHANGE): at every moment one
    complete version is in place (pins the system call the fallback-free path relies on)."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "a").write_text("old")
    (new / "b").write_text("new")
    assert _exchange(new, old)
    assert [p.name for p in old.iterdir()] == ["b"] and [p.name for p in new.iterdir()] == ["a"]


def test_atomic_dir_replaces_on_success_and_keeps_the_old_on_failure(tmp_path):
    target = tmp_path / "models"
    with atomic_dir(target) as tmp:
        (tmp / "model.keras").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "model.keras").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "model.keras").read_text() == "v1"
    with atomic_dir(target) as tmp:
        (tmp / "model.keras").write_text("v2")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x").write_text("x")
    assert (target / "model.keras").read_text() == "v2" and (target / "sub" / "x").is_file()
    assert siblings(target) == []  # no temporary or old folder left beside it


def test_atomic_file_replaces_on_success_and_keeps_the_old_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    with atomic_file(target) as handle:
        handle.write("{}")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write('{"half": ')
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "{}" and siblings(target) == []


def test_only_a_locked_sqlite_database_is_retried():
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"

    assert retry_locked(locked_twice, first_wait=0.001) == "done" and len(calls) == 3
    calls.clear()

    def constraint():
        calls.append(1)
        raise RuntimeError("UNIQUE constraint failed: experiments.name")

    with pytest.raises(RuntimeError, match="UNIQUE"):
        retry_locked(constraint, first_wait=0.001)
    assert len(calls) == 1  # a real error is raised at once, not retried


def test_only_a_concurrent_insert_of_the_same_data_set_is_retried():
    """What MLflow's server answered one of two Ray sweep jobs that logged one data set at once."""
    calls = []
    raced = (
        "RestException: BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates "
        'unique constraint "dataset_pk" DETAIL: Key (experiment_id, name, digest)=(4, digits, '
        "faaa6972) already exists."
    )

    def raced_once():
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError(raced)
        return "linked"

    assert retry_dataset_race(raced_once) == "linked" and len(calls) == 2
    calls.clear()

    def other_key():
        calls.append(1)
        raise RuntimeError('duplicate key value violates unique constraint "experiments_name_key"')

    with pytest.raises(RuntimeError, match="experiments_name_key"):
        retry_dataset_race(other_key)
    assert len(calls) == 1
