"""Crash-safe writes: a reader sees the old file or the complete new one, never half of one, and a failed
write leaves no temporary sibling behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasl_backend.atomic import atomic_file, write_text_atomic


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_text_atomic(path, "old")
    write_text_atomic(path, "新的")
    assert path.read_text(encoding="utf-8") == "新的"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "table.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.npz"]


def test_the_temporary_is_a_hidden_sibling_with_the_same_suffix(tmp_path: Path) -> None:
    """np.savez appends .npz to a name without it: the temporary keeps the suffix, so it is the file written."""
    path = tmp_path / "table.npz"
    with atomic_file(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".table.npz.tmp-") and tmp.suffix == ".npz"
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new"
