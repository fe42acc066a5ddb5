"""One (strategy, seed) run of the simulator, resumable: each round is query → reveal → fine-tune →
evaluate → persist.

- query: score the unlabeled pool with the previous round's model and let the strategy pick ``step`` × N;
- reveal: the oracle gives the picked records' gold entities (they join the labeled set);
- fine-tune: train the previous round's models on the labeled set (from scratch in round 0), with the
  unlabeled texts for Mean Teacher where the strategy uses it;
- evaluate: strict micro F1 on the test records, and Λ_t of the paper's Eq. 7 on the remaining pool (for
  every strategy: it shows how confident the model is); the pool's scores are kept for the next query;
- persist: the model, TOD's marginals and the state (``run_state``), then the results files.

The last round of an invocation does not score the pool (nothing queries after it); a run resumed with more
rounds scores it first (``catch_up``), so it goes on exactly as a run made with those rounds from the start.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Record, read_jsonl
from ..metrics import entity_prf
from ..ner import RecordScore, TrainConfig, train_lasl
from ..strategies import PoolScores, QueryStrategy, get_schedule, get_strategy, temporal_output_discrepancy
from .results import write_results
from .run_state import RunState, initial_state, load_state, save_state, state_dir
from .settings import STRATEGY_MODELS, SimSettings

__all__ = ["Replay", "catch_up", "run_one", "score_pool"]


def _emit(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Replay:
    """What stays fixed over a run: the settings, the data, the strategy and the models it trains."""

    settings: SimSettings
    strategy_name: str
    seed: int
    train: list[Record]
    test: list[Record]
    labels: list[str]
    strategy: QueryStrategy

    @classmethod
    def load(cls, settings: SimSettings, strategy_name: str, seed: int) -> Replay:
        data = Path(settings.data)
        train = read_jsonl(data / "train.jsonl")
        test = read_jsonl(data / "test.jsonl")
        if settings.max_test:
            test = test[: settings.max_test]
        kwargs: dict[str, Any] = {}
        if settings.normalize_length and strategy_name in ("dbs", "lasl", "mlp", "lpn"):
            kwargs["normalize_length"] = True
        if strategy_name == "loss":
            kwargs["reduction"] = settings.loss_reduction
        labels = sorted({e.label for r in train for e in r.entities})
        return cls(settings, strategy_name, seed, train, test, labels, get_strategy(strategy_name, **kwargs))

    @property
    def lossnet(self) -> str | None:
        return STRATEGY_MODELS[self.strategy_name][0]

    @property
    def mean_teacher(self) -> bool:
        return STRATEGY_MODELS[self.strategy_name][1]

    @property
    def wants_marginals(self) -> bool:
        return self.strategy_name == "tod"

    def n_init(self) -> int:
        return max(1, int(round(self.settings.init * len(self.train))))

    def step_size(self) -> int:
        return max(1, int(round(self.settings.step * len(self.train))))

    def unlabeled(self, state: RunState) -> list[int]:
        taken = state.labeled_set()
        return [i for i in range(len(self.train)) if i not in taken]

    def score(self, state: RunState, idx: list[int]) -> list[RecordScore]:
        assert state.model is not None
        return state.model.predict([self.train[i].text for i in idx], return_marginals=self.wants_marginals, workers=self.settings.threads)


def query(rp: Replay, state: RunState, rnd: int, rnd_seed: int) -> list[int]:
    """The pool records the strategy picks, scored by the previous round's model (its scores from right after
    its training, unless the run was resumed since)."""
    pool_idx = rp.unlabeled(state)
    if state.pending is not None and state.pending[0] == pool_idx:
        scores = state.pending[1]  # same model, same pool
    else:
        scores = rp.score(state, pool_idx)
    tod = None
    if rp.wants_marginals:
        if state.prev_marg is not None:
            tod = temporal_output_discrepancy([s.marginals for s in scores], [state.prev_marg[i] for i in pool_idx])  # type: ignore[misc]
        else:
            tod = np.zeros(len(pool_idx))
    vanilla = rp.lossnet == "learning_loss"
    pool = PoolScores.from_scores(scores, round=rnd, l_pred_vanilla=np.array([s.l_pred for s in scores]) if vanilla else None, tod=tod)
    if vanilla:
        pool.l_pred = None  # the learning-loss net's output is not an LPN loss prediction
    picked = rp.strategy.query(pool, min(rp.step_size(), pool.n), np.random.default_rng(rnd_seed))
    return [pool_idx[i] for i in picked]


def reveal(rp: Replay, state: RunState, picked: list[int]) -> tuple[list[Record], list[str]]:
    """The oracle's gold records for the labeled set (``picked`` added), and the unlabeled texts that Mean
    Teacher trains on (none for strategies without it)."""
    state.labeled = sorted(state.labeled + picked)
    labeled = [rp.train[i] for i in state.labeled]
    unlabeled = [rp.train[i].text for i in rp.unlabeled(state)] if rp.mean_teacher else []
    return labeled, unlabeled


def fine_tune(rp: Replay, state: RunState, rnd_seed: int, labeled: list[Record], unlabeled: list[str]) -> None:
    """Train round 0's model from scratch (at least ``first_round_min_steps``), later ones from the previous
    round's models for ``round_epochs`` (at least ``round_min_steps``): the paper's Algorithm 1."""
    s = rp.settings
    first = state.model is None
    cfg = TrainConfig(max_epochs=40 if first else s.round_epochs, min_steps=s.first_round_min_steps if first else s.round_min_steps,
                      dev_fraction=0.0, seed=rnd_seed, encoder=s.encoder, mean_teacher=rp.mean_teacher, lossnet=rp.lossnet,
                      patience=10**6, lpn_thread=s.threads >= 2, device=s.device, lpn_layers=s.lpn_layers,
                      char_vectors=s.char_vectors, lexicon_sources=s.lexicon_sources, lexicon=s.lexicon, bigrams=s.bigrams,
                      knowledge_cache=s.knowledge_cache)
    state.model = train_lasl(labeled, unlabeled, labels=rp.labels, config=cfg, base=state.model).model


def evaluate(rp: Replay, state: RunState, rnd: int) -> tuple[float, float, bool]:
    """(test F1, Λ_t on the remaining pool, whether TOD's marginals changed). Scores the pool for the next
    query while at it (not after the last round: Λ_t is NaN then)."""
    assert state.model is not None
    preds = state.model.predict([r.text for r in rp.test], with_lossnet=False, workers=rp.settings.threads)
    f1 = entity_prf([r.entities for r in rp.test], [p.entities for p in preds])["micro"]["f1"]  # type: ignore[misc]
    if not rp.unlabeled(state) or rnd >= rp.settings.rounds:
        return f1, float("nan"), False
    lam, marginals_changed = score_pool(rp, state)
    return f1, lam, marginals_changed


def score_pool(rp: Replay, state: RunState) -> tuple[float, bool]:
    """Score the remaining pool with the latest model, keep the scores for the next query, and for TOD make its
    marginals the latest (the ones before become the previous model's); (Λ_t, whether the marginals changed)."""
    rest = rp.unlabeled(state)
    scores = rp.score(state, rest)
    state.pending = (rest, scores)
    lam = float(get_schedule("pool_confidence")(PoolScores.from_scores(scores)))
    if not rp.wants_marginals:
        return lam, False
    full = [np.zeros((0, 0), np.float32)] * len(rp.train)
    for i, s in zip(rest, scores):
        full[i] = s.marginals  # type: ignore[assignment]
    state.push_marginals(full)
    return lam, True


def catch_up(rp: Replay, state: RunState, sdir: Path) -> bool:
    """Finish the last saved round as a run with more rounds would have: if it was the last round of its
    invocation, the pool was not scored after it (its Λ_t is NaN, TOD's marginals are one model behind).
    Scoring it now with the saved model fills in that row's Λ_t and gives TOD the marginals of the model that
    queries next, compared with the saved ones. Returns whether it did."""
    last = state.rows[-1]
    if not math.isnan(last["lambda_t"]) or last["round"] >= rp.settings.rounds or not rp.unlabeled(state):
        return False
    last["lambda_t"], marginals_changed = score_pool(rp, state)
    save_state(sdir, state, marginals_changed, model_changed=False)
    return True


def _row(rp: Replay, state: RunState, rnd: int, f1: float, lam: float, seconds: float) -> dict[str, Any]:
    n = len(rp.train)
    return {
        "strategy": rp.strategy_name,
        "seed": rp.seed,
        "round": rnd,
        "labeled_records": len(state.labeled),
        "labeled_fraction": len(state.labeled) / n,
        "labeled_chars": sum(len(rp.train[i].text) for i in state.labeled),
        "f1": f1,
        "lambda_t": lam,
        "round_seconds": round(seconds, 2),
    }


def run_one(settings: SimSettings, strategy_name: str, seed: int, out: Path) -> list[dict[str, Any]]:
    """One (strategy, seed) run, resumed from its saved state; returns all its rows. The results files are
    rewritten after every round, so a long matrix shows its curves as they come."""
    rp = Replay.load(settings, strategy_name, seed)
    sdir = state_dir(out, strategy_name, seed)
    sdir.mkdir(parents=True, exist_ok=True)
    state = load_state(sdir, settings.device)
    if state is None:
        state = initial_state(len(rp.train), rp.n_init(), seed)
    elif state.rows:
        _emit(f"[{strategy_name} s{seed}] resuming after round {state.rows[-1]['round']}")
        if catch_up(rp, state, sdir):
            write_results(out, settings, settings.full_f1)
            _emit(f"[{strategy_name} s{seed}] round {state.rows[-1]['round']:2d}: pool scored for the next query, Λ {state.rows[-1]['lambda_t']:.3f}")
    for rnd in range(state.next_round, settings.rounds + 1):
        t0 = time.perf_counter()
        rnd_seed = seed * 1000 + rnd
        picked = query(rp, state, rnd, rnd_seed) if rnd > 0 else []
        labeled, unlabeled = reveal(rp, state, picked)
        fine_tune(rp, state, rnd_seed, labeled, unlabeled)
        f1, lam, marginals_changed = evaluate(rp, state, rnd)
        row = _row(rp, state, rnd, f1, lam, time.perf_counter() - t0)
        state.rows.append(row)
        save_state(sdir, state, marginals_changed)
        write_results(out, settings, settings.full_f1)
        _emit(f"[{strategy_name} s{seed}] round {rnd:2d}: {len(state.labeled):4d} records ({row['labeled_fraction']:.0%}), "
              f"F1 {f1:.4f}, Λ {lam:.3f}, {row['round_seconds']:.1f}s")
    return state.rows
