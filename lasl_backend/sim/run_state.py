"""What one (strategy, seed) run carries from round to round, and how it is kept on disk so that a killed
simulation continues from its last finished round.

``state/<strategy>-s<seed>/`` holds the latest model, the marginals TOD needs (of the latest model and of
the one before it) and ``state.json`` (the rows so far and the labeled set). Each file is replaced whole
(a fsynced temporary sibling, then a rename): a reader sees the old file or the new one. ``state.json`` is
written last, so a round counts once its rows are there; a crash before that runs the round again on resume
(starting from the model already saved if the crash came after the model's rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, write_text_atomic
from ..ner import NerModel, RecordScore
from .ls_queue import PushedVersion

__all__ = ["RunState", "initial_state", "load_state", "save_state", "state_dir"]

Marginals = list[np.ndarray]


@dataclass
class RunState:
    labeled: list[int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    model: NerModel | None = None
    #: marginals of the latest model (the one that queries next) over every training record
    last_marg: Marginals | None = None
    #: marginals of the model before it: TOD compares the two
    prev_marg: Marginals | None = None
    #: (pool indices, scores) of the latest model on the pool, computed right after its training
    pending: tuple[list[int], list[RecordScore]] | None = None
    #: the queue protocol's last pushed version (its order serves the next round's first ``lag`` picks)
    last_pushed: PushedVersion | None = None

    @property
    def next_round(self) -> int:
        return self.rows[-1]["round"] + 1 if self.rows else 0

    def labeled_set(self) -> set[int]:
        return set(self.labeled)

    def push_marginals(self, marg: Marginals) -> None:
        """The latest model's marginals become the previous model's; ``marg`` the latest's."""
        self.prev_marg, self.last_marg = self.last_marg, marg


def state_dir(out: Path, strategy: str, seed: int) -> Path:
    return out / "state" / f"{strategy}-s{seed}"


def initial_state(n_records: int, n_init: int, seed: int) -> RunState:
    """Round 0's random labeled set: the same records for every strategy of one seed."""
    return RunState(labeled=sorted(np.random.default_rng(seed).choice(n_records, n_init, replace=False).tolist()))


def load_state(sdir: Path, device: str) -> RunState | None:
    """The saved state of a run (model on ``device``), or None if the run has not finished a round."""
    path = sdir / "state.json"
    if not path.is_file():
        return None
    st = json.loads(path.read_text())
    pushed = st.get("last_pushed")
    state = RunState(labeled=st["labeled"], rows=st["rows"], last_pushed=PushedVersion.from_dict(pushed) if pushed else None)
    if state.rows:
        state.model = NerModel.load(sdir / "model", device=device)
        state.last_marg, state.prev_marg = _load_marginals(sdir / "marginals.npz"), _load_marginals(sdir / "marginals_prev.npz")
    return state


def save_state(sdir: Path, state: RunState, marginals_changed: bool, model_changed: bool = True) -> None:
    """Persist the model (if it changed), the marginals (if they changed), then ``state.json`` that names
    them; each file through a fsynced temporary sibling and a rename."""
    if model_changed:
        assert state.model is not None
        state.model.save(sdir / "model")
    if marginals_changed:
        for name, marg in (("marginals_prev.npz", state.prev_marg), ("marginals.npz", state.last_marg)):
            if marg is not None:
                _write_npz_atomic(sdir / name, marg)
    pushed = state.last_pushed.to_dict() if state.last_pushed is not None else None
    write_text_atomic(sdir / "state.json", json.dumps({"rows": state.rows, "labeled": state.labeled, "last_pushed": pushed}))


def _write_npz_atomic(path: Path, marg: Marginals) -> None:
    """``marg`` as ``m0``, ``m1``, ... in ``path``, written atomically (:func:`~lasl_backend.atomic.atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f"m{i}": m for i, m in enumerate(marg)})


def _load_marginals(path: Path) -> Marginals | None:
    if not path.is_file():
        return None
    z = np.load(path)
    return [z[f"m{i}"] for i in range(len(z.files))]
