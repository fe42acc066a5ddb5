"""ModelStore: atomic versions, restart behaviour, retention and path safety."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lasl_backend.serving.store import VERSION_RE, ModelStore, StoreError, UnsafePathError, check_project_id, check_version


def _write(store: ModelStore, pid: int, payload: str = "w") -> str:
    v = store.new_version_name(pid)
    store.write_version(pid, v, lambda d: (d / "model").mkdir() or (d / "model" / "weights.txt").write_text(payload), {"note": payload})
    return v


def test_version_names_are_unique_increasing_and_strict(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    t = datetime(2026, 11, 26, 5, 12, 0, tzinfo=timezone.utc)
    a = s.new_version_name(3, now=t)
    b = s.new_version_name(3, now=t)
    assert a == "lasl-v0001-20261126T051200"
    assert b == "lasl-v0002-20261126T051200"
    assert VERSION_RE.match(a) and a != b


def test_counter_persists_across_restarts(tmp_path: Path) -> None:
    v1 = _write(ModelStore(tmp_path), 1)
    s2 = ModelStore(tmp_path)  # a "restart"
    v2 = s2.new_version_name(1)
    assert int(VERSION_RE.match(v2).group(1)) == int(VERSION_RE.match(v1).group(1)) + 1


def test_allocated_versions_carry_their_number(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    t = datetime(2026, 11, 26, 5, 12, 0, tzinfo=timezone.utc)
    a = s.allocate_version(4, now=t)
    assert (a.name, a.number) == ("lasl-v0001-20261126T051200", 1)
    s.write_version(4, a.name, lambda d: (d / "model").mkdir())
    b = ModelStore(tmp_path).allocate_version(4)  # after a restart: the persisted counter
    assert b.number == 2 and VERSION_RE.match(b.name).group(1) == "0002"
    (tmp_path / "projects" / "4" / "state.json").unlink()  # the counter is lost, written versions still count
    c = ModelStore(tmp_path).allocate_version(4)
    assert c.number == 2  # b was never written: only names on disk are known
    s.write_version(4, c.name, lambda d: (d / "model").mkdir())
    (tmp_path / "projects" / "4" / "state.json").unlink()
    assert ModelStore(tmp_path).allocate_version(4).number == 3


def test_version_visible_only_after_complete_write_and_current_is_separate(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    v = _write(s, 1)
    assert s.list_versions(1) == [v]
    assert s.is_complete(1, v)
    assert s.current(1) is None  # written is not serving: set_current is a separate step
    assert s.latest_good(1) == v  # but a restart without a pointer does not fall back to cold start
    s.set_current(1, v)
    assert s.current(1) == v
    assert (tmp_path / "projects" / "1" / "current").read_text().strip() == v


def test_failed_write_leaves_nothing_visible(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    good = _write(s, 1)
    s.set_current(1, good)

    def disk_full(d: Path) -> None:
        (d / "model").mkdir()
        (d / "model" / "weights.pt").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    bad = s.new_version_name(1)
    with pytest.raises(OSError):
        s.write_version(1, bad, disk_full)
    assert s.list_versions(1) == [good]
    assert not s.version_path(1, bad).exists()
    assert list((tmp_path / "projects" / "1" / "tmp").iterdir()) == []
    assert s.latest_good(1) == good
    with pytest.raises(StoreError):
        s.set_current(1, bad)


def test_broken_pointer_falls_back_to_newest_complete(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    v1 = _write(s, 1)
    v2 = _write(s, 1)
    (tmp_path / "projects" / "1" / "current").write_text("lasl-v0099-20261126T000000\n")
    assert s.current(1) is None
    assert s.latest_good(1) == v2
    s.set_current(1, v1)
    assert s.latest_good(1) == v1


def test_previous_follows_serving_history(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    v1, v2, v3 = _write(s, 1), _write(s, 1), _write(s, 1)
    s.set_current(1, v1)
    s.set_current(1, v3)  # v2 was written but never served (e.g. its push failed)
    assert s.previous(1) == v1


def test_prune_keeps_last_k_and_never_current_or_previous(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    vs = [_write(s, 1) for _ in range(6)]
    s.set_current(1, vs[0])
    s.set_current(1, vs[1])  # current is an OLD version, previous older still
    deleted = s.prune(1, keep=2)
    left = s.list_versions(1)
    assert vs[0] in left and vs[1] in left  # protected
    assert vs[-2:] == left[-2:]
    assert set(deleted) == set(vs[2:4])


def test_stale_tmp_dirs_are_cleaned(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    _write(s, 1)
    stale = tmp_path / "projects" / "1" / "tmp" / "lasl-v0009-20261126T000000.dead"
    stale.mkdir(parents=True)
    assert s.clean_tmp(1) == 1
    assert not stale.exists()


@pytest.mark.parametrize("bad", ["../1", "/etc", "1/../../x", "1\x00", True, -1, 1.5, None, "01x", 10**13, "", "１"])
def test_project_ids_must_be_ints(bad: object, tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        check_project_id(bad)
    with pytest.raises(UnsafePathError):
        ModelStore(tmp_path).project_dir(bad)


@pytest.mark.parametrize(
    "bad",
    ["../lasl-v0001-20261126T051200", "/abs/path", "lasl-v0001-20261126T051200/../../x", "lasl-v0001-20261126T051200\x00",
     "lasl-v1-20261126T051200", "LASL-v0001-20261126T051200", "lasl-v0001-20261126T051200\n", "..", ".", "", 7, None],
)
def test_versions_must_match_the_strict_form(bad: object, tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        check_version(bad)
    s = ModelStore(tmp_path)
    with pytest.raises(UnsafePathError):
        s.version_path(1, bad)
    with pytest.raises(UnsafePathError):
        s.write_version(1, bad, lambda d: None)  # type: ignore[arg-type]


def test_pointer_naming_a_traversal_is_ignored(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    (tmp_path / "projects" / "5").mkdir(parents=True)
    (tmp_path / "projects" / "5" / "current").write_text("../../../etc\n")
    assert s.current(5) is None and s.latest_good(5) is None


def test_model_dir_with_nul_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        ModelStore(str(tmp_path) + "\x00x")


def test_sigkill_during_write_leaves_old_version_serving(tmp_path: Path) -> None:
    """A real subprocess killed with SIGKILL in the middle of writing a version."""
    s = ModelStore(tmp_path)
    good = _write(s, 1, "old")
    s.set_current(1, good)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from lasl_backend.serving.store import ModelStore
        s = ModelStore({str(tmp_path)!r})
        v = s.new_version_name(1)
        def writer(d):
            (d / "model").mkdir()
            (d / "model" / "weights.txt").write_text("new-but-half")
            os.kill(os.getpid(), signal.SIGKILL)
        s.write_version(1, v, writer)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9
    s2 = ModelStore(tmp_path)  # restart
    assert s2.latest_good(1) == good
    assert s2.list_versions(1) == [good]
    assert (s2.model_path(1, good) / "weights.txt").read_text() == "old"
    assert s2.clean_tmp(1) == 1
    nxt = s2.new_version_name(1)
    assert int(VERSION_RE.match(nxt).group(1)) == 3  # the killed run's number is not reused


def test_meta_records_completion(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    v = _write(s, 2, "x")
    meta = json.loads((s.version_path(2, v) / "meta.json").read_text())
    assert meta["complete"] is True and meta["version"] == v and meta["project"] == 2 and meta["note"] == "x"
    os.remove(s.version_path(2, v) / "meta.json")
    assert not s.is_complete(2, v) and s.list_versions(2) == []
