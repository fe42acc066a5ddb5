"""One (strategy, seed) run of the simulator, resumable: each round is query → reveal → fine-tune →
evaluate → persist.

- query: with ``serving="batch"`` (the paper's protocol) the strategy picks ``step`` × N records from the
  pool scored by the previous round's model; with ``serving="queue"`` the annotator takes the next
  ``train_every`` tasks of the order the last versions pushed, as Label Studio serves them (``ls_queue``);
  either way each pick's corrections to the pre-annotations it was shown are counted;
- reveal: the oracle gives the picked records' gold entities (they join the labeled set);
- fine-tune: train the previous round's models on the labeled set (from scratch in round 0), with the
  unlabeled texts for Mean Teacher where the strategy uses it; ``queue`` holds back a slice of the labeled
  records as the backend does;
- evaluate: strict micro F1 on the test records, and Λ_t of the paper's Eq. 7 on the remaining pool (for
  every strategy: it shows how confident the model is); the pool's scores are kept for the next query
  (``queue``: pushed as the next version's order); the stopping signal's inputs (held-back counts, kappa
  on the stop set) go into the row;
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

from ..data import Entity, Record, read_jsonl
from ..metrics import Corrections, entity_prf
from ..ner import RecordScore, TrainConfig, peak_total, train_lasl
from ..strategies import PoolScores, QueryStrategy, get_schedule, get_strategy, temporal_output_discrepancy
from ..strategies.density import DensityWeighted, entity_rate, pool_density
from ..strategies.diversity import Diversified, near_duplicate_groups, text_signature
from .ls_queue import PushedVersion, push, serve
from .results import write_results
from .run_state import RunState, initial_state, load_state, save_state, state_dir
from .settings import COST_AWARE, STRATEGY_MODELS, SimSettings, split_name
from .signals import batch_corrections, heldout_counts, kappa_against, save_tags, split_heldout, stop_set, stop_tags

__all__ = ["Replay", "build_strategy", "catch_up", "run_one", "score_pool"]


def _emit(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_strategy(name: str, settings: SimSettings) -> QueryStrategy:
    """The strategy a name such as ``lasl+cost+div`` stands for, with the settings' own options."""
    base, flags = split_name(name)
    kwargs: dict[str, Any] = {}
    if (settings.normalize_length or flags & {"cost", "sqrt"}) and base in COST_AWARE:
        kwargs["normalize_length"] = True
    if base == "loss":
        kwargs["reduction"] = settings.loss_reduction
    if base in ("dbs", "lasl"):
        kwargs["schedule"] = settings.schedule
    strategy = get_strategy(base, **kwargs)
    if "dens" in flags:
        strategy = DensityWeighted(strategy, field="density")
    if "yield" in flags:
        strategy = DensityWeighted(strategy, field="entity_rate")
    return Diversified(strategy, window=settings.train_every) if "div" in flags else strategy


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
    groups: np.ndarray
    #: each pool record's information density (``+dens``), computed once over the whole pool
    density: np.ndarray
    #: training records kept out of the pool to choose variants on (``dev_records``), never labeled
    dev: list[Record]

    @classmethod
    def load(cls, settings: SimSettings, strategy_name: str, seed: int) -> Replay:
        data = Path(settings.data)
        train = read_jsonl(data / "train.jsonl")
        test = read_jsonl(data / "test.jsonl")
        if settings.max_test:
            test = test[: settings.max_test]
        labels = sorted({e.label for r in train for e in r.entities})
        train, dev = split_dev(train, settings.dev_records)
        groups = near_duplicate_groups([text_signature(r.text) for r in train])
        density = pool_density([r.text for r in train])
        return cls(settings, strategy_name, seed, train, test, labels, build_strategy(strategy_name, settings), groups,
                   density, dev)

    @property
    def base(self) -> str:
        return split_name(self.strategy_name)[0]

    @property
    def lossnet(self) -> str | None:
        return STRATEGY_MODELS[self.base][0]

    @property
    def mean_teacher(self) -> bool:
        return STRATEGY_MODELS[self.base][1]

    @property
    def wants_marginals(self) -> bool:
        return self.base == "tod"

    @property
    def queue(self) -> bool:
        return self.settings.serving == "queue"

    def n_init(self) -> int:
        return max(1, int(round(self.settings.init * len(self.train))))

    def step_size(self) -> int:
        return self.settings.train_every if self.queue else max(1, int(round(self.settings.step * len(self.train))))

    def unlabeled(self, state: RunState) -> list[int]:
        taken = state.labeled_set()
        return [i for i in range(len(self.train)) if i not in taken]

    def score(self, state: RunState, idx: list[int]) -> list[RecordScore]:
        assert state.model is not None
        return state.model.predict([self.train[i].text for i in idx], return_marginals=self.wants_marginals, workers=self.settings.threads)

    def entities(self, idx: list[int], state: RunState) -> list[list[Any]]:
        """The latest model's entities on the records ``idx`` (tagger only)."""
        assert state.model is not None
        preds = state.model.predict([self.train[i].text for i in idx], with_lossnet=False, workers=self.settings.threads)
        return [p.entities for p in preds]


def split_dev(train: list[Record], n_dev: int) -> tuple[list[Record], list[Record]]:
    """(pool, dev): ``n_dev`` records drawn with a fixed seed, the same for every strategy and seed."""
    if n_dev <= 0:
        return train, []
    dev_idx = set(np.random.default_rng(20_191_201).choice(len(train), min(n_dev, len(train) - 1), replace=False).tolist())
    return [r for i, r in enumerate(train) if i not in dev_idx], [r for i, r in enumerate(train) if i in dev_idx]


def f1_of(model: Any, records: list[Record], threads: int) -> float:
    """Strict micro F1 of ``model`` on ``records`` (the tagger alone)."""
    preds = model.predict([r.text for r in records], with_lossnet=False, workers=threads)
    return float(entity_prf([r.entities for r in records], [p.entities for p in preds])["micro"]["f1"])


def _pool(rp: Replay, state: RunState, rnd: int, pool_idx: list[int]) -> tuple[PoolScores, list[RecordScore]]:
    """The pool's scores by the previous round's model (from right after its training, unless the run was
    resumed since), with each record's near-duplicate group and, for ``+sqrt``, its cost (the square root of
    its characters; a cost-aware DBS without one divides by the characters)."""
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
    cost = np.sqrt(np.array([s.n_chars for s in scores], dtype=np.float64)) if "sqrt" in split_name(rp.strategy_name)[1] else None
    pool = PoolScores.from_scores(scores, round=rnd, l_pred_vanilla=np.array([s.l_pred for s in scores]) if vanilla else None, tod=tod,
                                  group=rp.groups[pool_idx].astype(np.float64), cost=cost)
    pool.density = rp.density[pool_idx]
    pool.entity_rate = entity_rate([len(s.entities) for s in scores], [s.n_chars for s in scores])
    if vanilla:
        pool.l_pred = None  # the learning-loss net's output is not an LPN loss prediction
    if "peak" in split_name(rp.strategy_name)[1]:
        _rank_by_peaks(pool, scores)
    return pool, scores


def _rank_by_peaks(pool: PoolScores, scores: list[RecordScore]) -> None:
    """``+peak``: each record's L_min and L_p become its hardest chunk's, per character, times its characters."""
    pool.l_min = np.array([peak_total(s.l_min_peak, s.n_chars) for s in scores], dtype=np.float64)
    if pool.l_pred is not None:
        pool.l_pred = np.array([peak_total(s.l_pred_peak, s.n_chars) for s in scores], dtype=np.float64)


def query(rp: Replay, state: RunState, rnd: int, rnd_seed: int) -> tuple[list[int], list[list[Entity]]]:
    """The records labeled this round and the pre-annotations each was shown (see the module docstring)."""
    pool_idx = rp.unlabeled(state)
    pool, scores = _pool(rp, state, rnd, pool_idx)
    shown = {i: [Entity(e.start, e.end, e.label) for e in s.entities] for i, s in zip(pool_idx, scores)}
    if not rp.queue:
        picked = [pool_idx[i] for i in rp.strategy.query(pool, min(rp.step_size(), pool.n), np.random.default_rng(rnd_seed))]
        return picked, [shown[i] for i in picked]
    regions = [[(e.start, e.end, e.label) for e in shown[i]] for i in pool_idx]
    new = push(rp.strategy, pool, pool_idx, regions, np.random.default_rng(rnd_seed + 500_000))
    versions = [state.last_pushed, new] if state.last_pushed is not None else [new]
    s = rp.settings
    picks = serve(versions, state.labeled_set(), rp.step_size(), s.lag, s.annotators, np.random.default_rng(rnd_seed + 700_000))
    state.last_pushed = new
    return [i for i, _ in picks], [versions[v].entities(i) for i, v in picks]


def reveal(rp: Replay, state: RunState, picked: list[int]) -> tuple[list[Record], list[str], list[int]]:
    """The oracle's gold records to train on (``picked`` added to the labeled set, the held-back slice
    left out under ``queue``), the unlabeled texts that Mean Teacher trains on (none for strategies
    without it), and the held-back records."""
    state.labeled = sorted(state.labeled + picked)
    trained, held = split_heldout(state.labeled) if rp.queue else (state.labeled, [])
    unlabeled = [rp.train[i].text for i in rp.unlabeled(state)] if rp.mean_teacher else []
    return [rp.train[i] for i in trained], unlabeled, held


def fine_tune(rp: Replay, state: RunState, rnd_seed: int, labeled: list[Record], unlabeled: list[str]) -> None:
    """Train round 0's model from scratch (at least ``first_round_min_steps``), later ones from the previous
    round's models for ``round_epochs`` (at least ``round_min_steps``): the paper's Algorithm 1."""
    s = rp.settings
    first = state.model is None
    cfg = TrainConfig(max_epochs=40 if first else s.round_epochs, min_steps=s.first_round_min_steps if first else s.round_min_steps,
                      dev_fraction=0.0, seed=rnd_seed, encoder=s.encoder, mean_teacher=rp.mean_teacher, lossnet=rp.lossnet,
                      patience=10**6, lpn_thread=s.threads >= 2, device=s.device, lpn_layers=s.lpn_layers,
                      char_vectors=s.char_vectors, lexicon_sources=s.lexicon_sources, lexicon=s.lexicon, bigrams=s.bigrams,
                      knowledge_cache=s.knowledge_cache, average_tail=s.average_tail,
                      anneal_tail=s.anneal_tail)
    state.model = train_lasl(labeled, unlabeled, labels=rp.labels, config=cfg, base=state.model).model


def evaluate(rp: Replay, state: RunState, rnd: int) -> tuple[float, float, bool]:
    """(test F1, Λ_t on the remaining pool, whether TOD's marginals changed). Scores the pool for the next
    query while at it (not after the last round: Λ_t is NaN then)."""
    assert state.model is not None
    f1 = f1_of(state.model, rp.test, rp.settings.threads)
    if not rp.unlabeled(state) or rnd >= rp.settings.rounds:
        return f1, float("nan"), False
    lam, marginals_changed = score_pool(rp, state)
    return f1, lam, marginals_changed


def stop_signal(rp: Replay, state: RunState, sdir: Path, rnd: int, held: list[int]) -> dict[str, Any]:
    """The stopping signal's inputs for this round's model: held-back counts, kappa with the previous
    round's model on the stop set (its tags are saved per round, so a redone round compares alike)."""
    out: dict[str, Any] = {"heldout": heldout_counts([rp.train[i] for i in held], rp.entities(held, state)) if held else []}
    if rp.settings.stop_set <= 0:
        return out | {"kappa": float("nan")}
    ids = stop_set(len(rp.train), state.rows[0]["labeled"] if state.rows else state.labeled, rp.settings.stop_set, rp.seed)
    tags = stop_tags(rp.train, ids, rp.entities(ids, state), rp.labels)
    out["kappa"] = kappa_against(sdir / f"stop_tags_r{rnd - 1}.npz", tags)
    save_tags(sdir / f"stop_tags_r{rnd}.npz", tags)
    (sdir / f"stop_tags_r{rnd - 2}.npz").unlink(missing_ok=True)
    return out


def score_pool(rp: Replay, state: RunState) -> tuple[float, bool]:
    """Score the remaining pool with the latest model, keep the scores for the next query, and for TOD make its
    marginals the latest (the ones before become the previous model's); (Λ_t, whether the marginals changed)."""
    rest = rp.unlabeled(state)
    scores = rp.score(state, rest)
    state.pending = (rest, scores)
    lam = float(get_schedule(rp.settings.schedule)(PoolScores.from_scores(scores)))
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


def _row(rp: Replay, state: RunState, rnd: int, f1: float, lam: float, seconds: float, fixes: Corrections,
         picked: list[int], signal: dict[str, Any]) -> dict[str, Any]:
    n = len(rp.train)
    before = state.rows[-1] if state.rows else {}
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
        "corrections": before.get("corrections", 0) + fixes.total,
        "batch_corrections": {"add": fixes.add, "delete": fixes.delete, "change": fixes.change},
        "picked": picked,
        **({"labeled": list(state.labeled)} if rnd == 0 else {}),
        **signal,
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
        if settings.max_chars and state.rows and state.rows[-1]["labeled_chars"] >= settings.max_chars:
            break
        _round(rp, state, sdir, rnd, seed)
        write_results(out, settings, settings.full_f1)
    return state.rows


def _round(rp: Replay, state: RunState, sdir: Path, rnd: int, seed: int) -> None:
    t0 = time.perf_counter()
    rnd_seed = seed * 1000 + rnd
    picked, shown = query(rp, state, rnd, rnd_seed) if rnd > 0 else ([], [])
    fixes = batch_corrections([rp.train[i] for i in picked], shown) if rnd > 0 else batch_corrections(
        [rp.train[i] for i in state.labeled], [[] for _ in state.labeled])
    labeled, unlabeled, held = reveal(rp, state, picked)
    fine_tune(rp, state, rnd_seed, labeled, unlabeled)
    signal = stop_signal(rp, state, sdir, rnd, held)
    if rp.dev:
        signal["dev_f1"] = f1_of(state.model, rp.dev, rp.settings.threads)
    f1, lam, marginals_changed = evaluate(rp, state, rnd)
    row = _row(rp, state, rnd, f1, lam, time.perf_counter() - t0, fixes, picked, signal)
    state.rows.append(row)
    save_state(sdir, state, marginals_changed)
    _emit(f"[{rp.strategy_name} s{seed}] round {rnd:2d}: {len(state.labeled):4d} records ({row['labeled_fraction']:.0%}), "
          f"{row['labeled_chars'] / 1000:.0f}k chars, F1 {f1:.4f}, Λ {lam:.3f}, {row['round_seconds']:.1f}s")
