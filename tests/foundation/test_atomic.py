"""Atomic outputs: nothing half-written on failure, usual permissions on success."""

from __future__ import annotations

import os

import pytest

from ocx.harness.atomic import atomic_dir, atomic_write_text


def test_a_failed_block_leaves_no_folder_and_no_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_published_files_and_folders_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
