"""The model slot: one lazy load however many callers, fallback past a corrupt version, whole swaps."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.ner import CheckpointError
from lasl_backend.serving.model_slot import ModelSlot, ServedModel, load_served
from lasl_backend.serving.store import ModelStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_model_dir"
PID = 1


def write_versions(store: ModelStore, n: int) -> list[str]:
    out = []
    for i in range(n):
        v = store.new_version_name(PID)
        store.write_version(PID, v, lambda d: (d / "model").mkdir(), {"i": i})
        out.append(v)
    store.set_current(PID, out[-1])
    return out


class CountingLoader:
    """Stands in for checkpoint loading: slow, counted, and failing for the versions in ``broken``."""

    def __init__(self, delay: float = 0.0, broken: tuple[str, ...] = ()) -> None:
        self.delay, self.broken = delay, broken
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, version: str) -> ServedModel:
        with self._lock:
            self.calls.append(version)
        time.sleep(self.delay)
        if version in self.broken:
            raise ValueError(f"{version}: weights.pt is not a checkpoint")
        return ServedModel(version, model=object(), normalizer=None)  # type: ignore[arg-type]


def test_nothing_loads_until_asked_then_once_for_all_concurrent_callers(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    versions = write_versions(store, 2)
    loader = CountingLoader(delay=0.2)
    slot = ModelSlot(store, PID, loader=loader)
    assert slot.peek() is None and not slot.loaded and loader.calls == []
    start = threading.Barrier(8)
    got: list[Any] = []

    def caller() -> None:
        start.wait()
        got.append(slot.current())

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert loader.calls == [versions[-1]]
    assert len(got) == 8 and all(g is got[0] for g in got) and got[0].version == versions[-1]
    assert slot.current() is got[0] and loader.calls == [versions[-1]]


def test_a_corrupt_newest_version_falls_back_to_the_next_older_one(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    v1, v2, v3 = write_versions(store, 3)
    loader = CountingLoader(broken=(v3, v2))
    slot = ModelSlot(store, PID, loader=loader)
    served = slot.current()
    assert served is not None and served.version == v1
    assert loader.calls == [v3, v2, v1]
    assert store.current(PID) == v3  # falling back serves an older version, it does not move the pointer


def test_nothing_loadable_is_cold_start_and_is_not_retried_per_call(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    (v1,) = write_versions(store, 1)
    loader = CountingLoader(broken=(v1,))
    slot = ModelSlot(store, PID, loader=loader)
    assert slot.current() is None and slot.current() is None
    assert slot.loaded and loader.calls == [v1]
    assert ModelSlot(ModelStore(tmp_path / "empty"), PID, loader=loader).current() is None and loader.calls == [v1]


def test_a_swap_is_seen_by_every_later_caller(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    write_versions(store, 1)
    slot = ModelSlot(store, PID, loader=CountingLoader())
    old = slot.current()
    new = ServedModel("lasl-v0009-20261126T051200", model=object(), normalizer=None)  # type: ignore[arg-type]
    slot.swap(new)
    assert slot.current() is new and slot.peek() is new and old is not new
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(slot.current())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == [new] * 4


def test_a_swap_during_the_first_load_wins(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    write_versions(store, 1)
    loader = CountingLoader(delay=0.3)
    slot = ModelSlot(store, PID, loader=loader)
    first = threading.Thread(target=slot.current)
    first.start()
    while not loader.calls:  # the load has begun
        time.sleep(0.005)
    new = ServedModel("lasl-v0009-20261126T051200", model=object(), normalizer=None)  # type: ignore[arg-type]
    slot.swap(new)  # waits for the load, then replaces what it loaded
    first.join(30)
    assert slot.current() is new and len(loader.calls) == 1


def test_swap_without_any_load_never_reads_the_store(tmp_path: Path) -> None:
    loader = CountingLoader()
    slot = ModelSlot(ModelStore(tmp_path), PID, loader=loader)
    new = ServedModel("lasl-v0001-20261126T051200", model=object(), normalizer=None)  # type: ignore[arg-type]
    slot.swap(new)
    assert slot.current() is new and loader.calls == []


def test_the_default_loader_reads_a_real_version(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "models", tmp_path / "models")
    store = ModelStore(tmp_path / "models")
    latest = store.latest_good(7)
    served = load_served(store, 7, latest)
    assert served.version == latest and served.normalizer is not None and served.meta["version"] == latest
    assert ModelSlot(store, 7).current().version == latest
    (store.model_path(7, latest) / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_served(store, 7, latest)
    fallback = ModelSlot(store, 7).current()
    assert fallback is not None and fallback.version == store.list_versions(7)[0] != latest
