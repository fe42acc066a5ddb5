"""A run's state on disk: each file is replaced whole, so a write that fails leaves the previous round's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lasl_backend.sim import run_state
from lasl_backend.sim.run_state import RunState, save_state


def _marginals(path: Path) -> list[np.ndarray]:
    z = np.load(path)
    return [z[f"m{i}"] for i in range(len(z.files))]


def test_state_files_are_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = RunState(labeled=[1, 4], rows=[{"round": 0}])
    state.push_marginals([np.ones((2, 3), np.float32), np.zeros((0, 0), np.float32)])
    state.push_marginals([np.full((2, 3), 2.0, np.float32), np.zeros((0, 0), np.float32)])
    save_state(tmp_path, state, marginals_changed=True, model_changed=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marginals.npz", "marginals_prev.npz", "state.json"]
    assert _marginals(tmp_path / "marginals.npz")[0].tolist() == [[2.0] * 3] * 2
    assert _marginals(tmp_path / "marginals_prev.npz")[0].tolist() == [[1.0] * 3] * 2

    def half_written(fh, **arrays):  # noqa: ANN001, ANN003, ANN202 - np.savez's signature
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(run_state.np, "savez", half_written)
    state.rows.append({"round": 1})
    state.push_marginals([np.full((2, 3), 3.0, np.float32), np.zeros((0, 0), np.float32)])
    with pytest.raises(OSError, match="disk full"):
        save_state(tmp_path, state, marginals_changed=True, model_changed=False)
    # no temporary file left behind, and the previous round's files intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marginals.npz", "marginals_prev.npz", "state.json"]
    assert _marginals(tmp_path / "marginals.npz")[0].tolist() == [[2.0] * 3] * 2
    assert _marginals(tmp_path / "marginals_prev.npz")[0].tolist() == [[1.0] * 3] * 2
    assert json.loads((tmp_path / "state.json").read_text()) == {"rows": [{"round": 0}], "labeled": [1, 4], "last_pushed": None}
