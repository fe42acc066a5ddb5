"""Query strategies: a contract every strategy passes, then hand-computed checks of Eq. 6, 7, 11, 12."""

from __future__ import annotations

import json
import math
import sys
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

from lasl_backend.strategies import (
    STRATEGIES,
    DBSNormalizer,
    DynamicBalanceSampling,
    LeastConfidence,
    LearningLossSampling,
    LossPredictionSampling,
    MinimumLossSampling,
    MissingScoreError,
    PoolScores,
    PoolTooSmallError,
    QueryError,
    QueryStrategy,
    RandomSampling,
    TemporalOutputDiscrepancy,
    get_schedule,
    get_strategy,
    temporal_output_discrepancy,
)
from lasl_backend.strategies.base import SCORE_FIELDS
from lasl_backend.strategies.schedules import Constant, Linear, PoolConfidence, Root

N = 12


def full_pool(n: int = N, seed: int = 7, round: int = 3) -> PoolScores:
    """A pool with every array, all values distinct (so the top-k is unique)."""
    rng = np.random.default_rng(seed)
    l_min = rng.uniform(0.0, 40.0, n)
    n_chars = rng.integers(5, 300, n)
    return PoolScores(
        n=n,
        l_min=l_min,
        l_max=l_min + rng.uniform(1.0, 30.0, n),
        p_max=np.exp(-l_min),
        l_pred=rng.normal(0.0, 3.0, n),
        l_pred_vanilla=rng.normal(0.0, 3.0, n),
        n_chars=n_chars,
        n_chunks=(n_chars + 199) // 200,
        tod=rng.uniform(0.0, 5.0, n),
        round=round,
    )


def without(pool: PoolScores, *names: str) -> PoolScores:
    kw = {name: getattr(pool, name) for name in SCORE_FIELDS}
    for name in names:
        kw[name] = None
    return PoolScores(n=pool.n, round=pool.round, **kw)


def only(pool: PoolScores, *names: str) -> PoolScores:
    kw = {name: getattr(pool, name) for name in names}
    return PoolScores(n=pool.n, round=pool.round, **kw)


def tied_pool(n: int = N) -> PoolScores:
    """Every record alike: only the random tie-break can tell them apart."""
    return PoolScores(n=n, l_min=np.full(n, 7.0), l_max=np.full(n, 9.0), p_max=np.full(n, math.exp(-7.0)),
                      l_pred=np.full(n, 1.5), l_pred_vanilla=np.full(n, -2.0), n_chars=np.full(n, 120),
                      n_chunks=np.ones(n), tod=np.full(n, 0.3), round=3)


def extreme_pool(n: int = N, seed: int = 5) -> PoolScores:
    """Whole long records: losses of thousands of nats (exp under/overflows), loss-net outputs of hundreds."""
    rng = np.random.default_rng(seed)
    l_min = rng.uniform(500.0, 5000.0, n)
    n_chars = rng.integers(1, 5000, n)
    return PoolScores(n=n, l_min=l_min, l_max=l_min + rng.uniform(1.0, 900.0, n), p_max=np.exp(-l_min),
                      l_pred=rng.normal(0.0, 300.0, n), l_pred_vanilla=rng.normal(0.0, 300.0, n), n_chars=n_chars,
                      n_chunks=(n_chars + 199) // 200, tod=rng.uniform(0.0, 1e4, n), round=500)


class StrategyContract:
    """Every strategy: k distinct in-pool indices, best first, seeded determinism, typed errors, declared
    inputs, no NaN on extreme pools, random tie-breaks on tied ones."""

    def make(self) -> QueryStrategy:  # overridden per strategy
        raise NotImplementedError

    def test_returns_k_distinct_indices_in_pool(self):
        for k in (1, 5, N):
            idx = self.make().query(full_pool(), k, np.random.default_rng(0))
            assert idx.shape == (k,) and idx.dtype == np.int64
            assert len(set(idx.tolist())) == k
            assert idx.min() >= 0 and idx.max() < N

    def test_deterministic_for_a_seed(self):
        a = self.make().query(full_pool(), 5, np.random.default_rng(42))
        b = self.make().query(full_pool(), 5, np.random.default_rng(42))
        assert a.tolist() == b.tolist()

    def test_pool_too_small(self):
        s = self.make()
        with pytest.raises(PoolTooSmallError):
            s.query(full_pool(), N + 1, np.random.default_rng(0))
        with pytest.raises(PoolTooSmallError):
            s.query(full_pool(), 0, np.random.default_rng(0))
        with pytest.raises(QueryError):  # PoolTooSmallError is a QueryError
            s.query(full_pool(n=3), 4, np.random.default_rng(0))

    def test_missing_each_required_array(self):
        s = self.make()
        if not s.requires:
            pytest.skip("this strategy reads no pool array")
        for name in s.requires:
            with pytest.raises(MissingScoreError, match=name):
                s.query(without(full_pool(), name), 2, np.random.default_rng(0))

    def test_needs_only_declared_arrays(self):
        s = self.make()
        idx = s.query(only(full_pool(), *s.requires), 4, np.random.default_rng(0))
        assert idx.tolist() == s.query(full_pool(), 4, np.random.default_rng(0)).tolist()

    def test_query_is_top_k_of_score(self):
        s = self.make()
        pool = full_pool()
        scores = s.score(pool)
        assert scores.shape == (N,) and np.all(np.isfinite(scores))
        idx = s.query(pool, 4, np.random.default_rng(3))
        assert idx.tolist() == np.argsort(-scores, kind="stable")[:4].tolist()

    def test_best_first(self):
        s = self.make()
        for pool in (full_pool(), extreme_pool()):
            scores = s.score(pool)
            idx = s.query(pool, 5, np.random.default_rng(1))
            rest = np.setdiff1d(np.arange(pool.n), idx)
            assert np.all(np.diff(scores[idx]) <= 0) and scores[idx].min() >= scores[rest].max()

    def test_no_nan_on_extreme_pools(self):
        s = self.make()
        scores = s.score(extreme_pool())
        assert scores.dtype == np.float64 and not np.isnan(scores).any()
        assert len(set(s.query(extreme_pool(), N, np.random.default_rng(0)).tolist())) == N

    def test_ties_are_broken_at_random_and_repeatably(self):
        s = self.make()
        picks = [s.query(tied_pool(), 3, np.random.default_rng(seed)).tolist() for seed in range(10)]
        assert all(len(set(p)) == 3 for p in picks)
        assert len({p[0] for p in picks}) > 1  # not pool order
        assert picks[4] == s.query(tied_pool(), 3, np.random.default_rng(4)).tolist()

    def test_the_registry_knows_it(self):
        s = self.make()
        assert STRATEGIES[s.name] is type(s)


class WrapperContract(StrategyContract):
    """The contract for a wrapper strategy that reads one array more than its base: every contract pool
    carries ``extra``, with the values of :meth:`extra_values`."""

    extra = ""

    def extra_values(self, n: int) -> np.ndarray:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _pools_with_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        module = sys.modules[__name__]
        for name in ("full_pool", "extreme_pool", "tied_pool"):
            monkeypatch.setattr(module, name, self._adding(getattr(module, name)))

    def _adding(self, make_pool: Callable[..., PoolScores]) -> Callable[..., PoolScores]:
        def make(*args: Any, **kwargs: Any) -> PoolScores:
            pool = make_pool(*args, **kwargs)
            kw = {name: getattr(pool, name) for name in SCORE_FIELDS}
            kw[self.extra] = self.extra_values(pool.n)
            return PoolScores(n=pool.n, round=pool.round, **kw)
        return make


@pytest.fixture(params=sorted(STRATEGIES))
def registered(request: pytest.FixtureRequest) -> str:
    return request.param


class TestEveryRegisteredStrategy(StrategyContract):
    """The contract for each registry entry as ``get_strategy`` builds it: a new entry is covered by itself."""

    @pytest.fixture(autouse=True)
    def _entry(self, registered: str) -> None:
        self.entry = registered

    def make(self) -> QueryStrategy:
        return get_strategy(self.entry)

    def test_query_is_top_k_of_score(self):
        if isinstance(self.make(), RandomSampling):
            pytest.skip("all scores tie: the draw decides (TestRandom checks the draw)")
        super().test_query_is_top_k_of_score()


def test_registry_names_are_the_class_names_except_aliases():
    # "lasl" queries exactly like "dbs" (LASL differs by its Mean-Teacher training, §3.3)
    aliases = {name for name, cls in STRATEGIES.items() if cls.name != name}
    assert aliases == {"lasl"} and STRATEGIES["lasl"].name == "dbs"
    for cls in set(STRATEGIES.values()):
        assert STRATEGIES[cls.name] is cls


class TestRandom(StrategyContract):
    def make(self):
        return RandomSampling()

    def test_query_is_top_k_of_score(self):  # all scores tie: the draw decides
        assert self.make().score(full_pool()).tolist() == [0.0] * N

    def test_seeds_differ_and_draws_are_uniform(self):
        s = self.make()
        a = s.query(full_pool(), 5, np.random.default_rng(1))
        b = s.query(full_pool(), 5, np.random.default_rng(2))
        assert a.tolist() != b.tolist()
        rng = np.random.default_rng(0)
        counts = np.zeros(6)
        for _ in range(2000):
            counts[s.query(PoolScores(n=6), 3, rng)] += 1
        # each record is picked with probability 3/6 → 1000 expected, sd sqrt(2000·.5·.5) ≈ 22; allow ±5 sd
        assert np.all(np.abs(counts - 1000) < 110)


class TestLeastConfidence(StrategyContract):
    def make(self):
        return LeastConfidence()

    def test_orders_by_one_minus_p_max(self):
        # 1 - p_max = (0.1, 0.8, 0.5, 0.01) → order 1, 2, 0, 3
        p = np.array([0.9, 0.2, 0.5, 0.99])
        pool = PoolScores(n=4, p_max=p, l_min=-np.log(p))
        assert self.make().score(pool).tolist() == pytest.approx([0.1, 0.8, 0.5, 0.01])
        assert self.make().query(pool, 4, np.random.default_rng(0)).tolist() == [1, 2, 0, 3]

    def test_long_records_do_not_tie(self):
        # L_min of whole records is hundreds of nats: 1 - p_max is 1.0 for all of them in float64,
        # but the ranking must still follow L_min (the exact order of 1 - exp(-L_min)).
        l_min = np.array([400.0, 900.0, 35.0, 650.0])
        pool = PoolScores(n=4, p_max=np.exp(-l_min), l_min=l_min)
        assert self.make().query(pool, 4, np.random.default_rng(0)).tolist() == [1, 3, 0, 2]


class TestTOD(StrategyContract):
    def make(self):
        return TemporalOutputDiscrepancy()


class TestLearningLoss(StrategyContract):
    def make(self):
        return LearningLossSampling()

    def test_mean_over_chunks_is_blind_to_the_scores_offset(self):
        # chunk scores: record 0 = (-3, -3) [2 chunks], record 1 = (-4) [1], record 2 = (-1, -2, -3) [3]
        # sums (-6, -4, -6); means (-3, -4, -2) → order 2, 0, 1
        n_chunks = np.array([2, 1, 3])
        pool = PoolScores(n=3, l_pred_vanilla=[-6.0, -4.0, -6.0], n_chunks=n_chunks)
        assert self.make().score(pool).tolist() == pytest.approx([-3.0, -4.0, -2.0])
        assert self.make().query(pool, 3, np.random.default_rng(0)).tolist() == [2, 0, 1]
        # shifting every chunk score by +10 (an equally good fit of Eq. 5) keeps the mean's order ...
        shifted = PoolScores(n=3, l_pred_vanilla=np.array([-6.0, -4.0, -6.0]) + 10 * n_chunks, n_chunks=n_chunks)
        assert self.make().query(shifted, 3, np.random.default_rng(0)).tolist() == [2, 0, 1]
        # ... while the sum's order follows the shift: sums (-6, -4, -6) put record 1 first, shifted (14, 6, 24) last
        total = LearningLossSampling(reduction="sum")
        assert total.query(pool, 1, np.random.default_rng(0)).tolist() == [1]
        assert total.query(shifted, 3, np.random.default_rng(0)).tolist() == [2, 0, 1]

    def test_mean_needs_the_chunk_counts_and_a_known_reduction(self):
        with pytest.raises(MissingScoreError, match="n_chunks"):
            self.make().score(PoolScores(n=2, l_pred_vanilla=[1.0, 2.0]))
        with pytest.raises(ValueError, match="reduction"):
            LearningLossSampling(reduction="max")


class TestMLP(StrategyContract):
    def make(self):
        return MinimumLossSampling()

    def test_raw_and_length_normalised(self):
        # l_min (10, 6, 12), n_chars (10, 2, 3): raw order 2, 0, 1; per char (1, 3, 4) → order 2, 1, 0
        pool = PoolScores(n=3, l_min=[10.0, 6.0, 12.0], n_chars=[10, 2, 3])
        rng = np.random.default_rng(0)
        assert MinimumLossSampling().query(pool, 3, rng).tolist() == [2, 0, 1]
        assert MinimumLossSampling(normalize_length=True).score(pool).tolist() == pytest.approx([1.0, 3.0, 4.0])
        assert MinimumLossSampling(normalize_length=True).query(pool, 3, rng).tolist() == [2, 1, 0]

    def test_nan_scores_are_refused(self):
        with pytest.raises(QueryError, match="NaN"):
            self.make().query(PoolScores(n=3, l_min=[1.0, float("nan"), 2.0]), 1, np.random.default_rng(0))

    def test_ties_are_broken_by_the_rng_not_pool_order(self):
        pool = PoolScores(n=8, l_min=np.ones(8))
        firsts = {int(self.make().query(pool, 1, np.random.default_rng(seed))[0]) for seed in range(20)}
        assert len(firsts) > 1


class TestMLPNormalised(StrategyContract):
    def make(self):
        return MinimumLossSampling(normalize_length=True)


class TestLPN(StrategyContract):
    def make(self):
        return LossPredictionSampling()


class TestLPNNormalised(StrategyContract):
    def make(self):
        return LossPredictionSampling(normalize_length=True)


class TestDBS(StrategyContract):
    def make(self):
        return DynamicBalanceSampling()


class TestDBSNormalised(StrategyContract):
    def make(self):
        return DynamicBalanceSampling(normalize_length=True)


class TestDBSRoot(StrategyContract):
    def make(self):
        return DynamicBalanceSampling(schedule="root", p=2)


class TestLASL(StrategyContract):
    def make(self):
        return get_strategy("lasl")


# ---------------------------------------------------------------- Eq. 6 and Eq. 7 by hand

# L_min = (0, ln 2, ln 3) → p_max = exp(-L_min) = (1, 1/2, 1/3);  L_p = (ln 3, 0, ln 2)
# Eq. 7: Λ = (1 + 1/2 + 1/3) / 3 = (11/6) / 3 = 11/18
# softmax(L_min) = (1, 2, 3) / 6;  softmax(L_p) = (3, 1, 2) / 6
# Eq. 6: rank = (11/18 · (1, 2, 3) + 7/18 · (3, 1, 2)) / 6 = ((11, 22, 33) + (21, 7, 14)) / 108 = (32, 29, 47) / 108
# → order 2, 0, 1 (neither L_min's order 2, 1, 0 nor L_p's 0, 2, 1)
HAND = dict(l_min=[0.0, math.log(2), math.log(3)], l_pred=[math.log(3), 0.0, math.log(2)])
HAND_RANK = [32 / 108, 29 / 108, 47 / 108]


def test_eq7_pool_confidence_by_hand():
    assert PoolConfidence()(PoolScores(n=3, **HAND)) == pytest.approx(11 / 18)  # from exp(-l_min)
    assert PoolConfidence()(PoolScores(n=3, p_max=[1.0, 0.5, 1 / 3])) == pytest.approx(11 / 18)  # from p_max
    # per-char variant: l_min (2, 6), n_chars (2, 3) → mean(e^-1, e^-2) = (0.367879 + 0.135335) / 2 = 0.251607
    assert PoolConfidence(per_char=True)(PoolScores(n=2, l_min=[2.0, 6.0], n_chars=[2, 3])) == pytest.approx(0.251607, abs=1e-6)
    with pytest.raises(MissingScoreError):
        PoolConfidence()(PoolScores(n=2, l_pred=[1.0, 2.0]))


def test_eq6_dbs_by_hand():
    pool = PoolScores(n=3, **HAND)
    norm = DBSNormalizer.from_pool(pool)
    assert norm.lambda_t == pytest.approx(11 / 18)
    assert norm.lse_min == pytest.approx(math.log(6)) and norm.lse_pred == pytest.approx(math.log(6))
    assert norm.rank(pool.l_min, pool.l_pred).tolist() == pytest.approx(HAND_RANK)
    s = DynamicBalanceSampling()
    assert np.exp(s.score(pool)).tolist() == pytest.approx(HAND_RANK)
    assert s.query(pool, 2, np.random.default_rng(0)).tolist() == [2, 0]


def test_dbs_with_other_schedules_by_hand():
    pool = PoolScores(n=3, **HAND)
    # equal: 0.5 · (1, 2, 3)/6 + 0.5 · (3, 1, 2)/6 = (4, 3, 5)/12 → order 2, 0, 1
    s = DynamicBalanceSampling(schedule="equal")
    assert np.exp(s.score(pool)).tolist() == pytest.approx([4 / 12, 3 / 12, 5 / 12])
    # linear at t = 0: Λ = c0 = 0.001 → (0.001 · (1, 2, 3) + 0.999 · (3, 1, 2)) / 6 = (2.998, 1.001, 2.001) / 6 → 0, 2, 1
    s = DynamicBalanceSampling(schedule="linear")
    assert np.exp(s.score(pool)).tolist() == pytest.approx([2.998 / 6, 1.001 / 6, 2.001 / 6])
    assert s.query(pool, 3, np.random.default_rng(0)).tolist() == [0, 2, 1]
    # a constant Λ = 1 is MLP alone: softmax(L_min) = (1, 2, 3)/6
    assert np.exp(DynamicBalanceSampling(schedule=1.0).score(pool)).tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6])


def test_schedules_by_hand():
    def at(t):
        return PoolScores(n=1, round=t)

    lin = Linear()  # Eq. 11: t (1 - 0.001) / 100 + 0.001
    assert lin(at(0)) == pytest.approx(0.001)
    assert lin(at(10)) == pytest.approx(0.1009)  # 10 · 0.999 / 100 + 0.001 = 0.0999 + 0.001
    assert lin(at(100)) == pytest.approx(1.0)
    assert lin(at(150)) == 1.0  # 1.4995 clamped
    root2 = Root(p=2)  # Eq. 12: sqrt(t (1 - 1e-6) / 100 + 1e-6)
    assert root2(at(0)) == pytest.approx(0.001)  # sqrt(1e-6)
    assert root2(at(25)) == pytest.approx(math.sqrt(0.25000075))  # 0.25 · (1 - 1e-6) + 1e-6 = 0.25000075
    assert root2(at(10)) == pytest.approx(math.sqrt(0.1000009))  # 0.1 · (1 - 1e-6) + 1e-6
    root5 = Root(p=5)
    assert root5(at(100)) == pytest.approx(1.0)  # (1 - c0^5 + c0^5)^(1/5)
    assert root5(at(0)) == pytest.approx(0.001)
    eq = get_schedule("equal")
    assert eq(at(0)) == 0.5 and eq(at(30)) == 0.5
    assert get_schedule(0.3)(at(5)) == 0.3
    assert Constant(1.7)(at(0)) == 1.0  # clamped
    assert get_schedule("root", p=5) == Root(p=5)
    with pytest.raises(KeyError, match="linear"):
        get_schedule("cosine")


# ---------------------------------------------------------------- the frozen normalizer


def test_normalizer_scores_one_record_like_the_pool():
    pool = full_pool()
    for normalize_length in (False, True):
        norm = DBSNormalizer.from_pool(pool, normalize_length=normalize_length)
        in_pool = norm.log_rank(pool.l_min, pool.l_pred, pool.n_chars)
        for i in (0, 5, N - 1):
            alone = norm.log_rank(pool.l_min[[i]], pool.l_pred[[i]], pool.n_chars[[i]])
            assert alone[0] == pytest.approx(in_pool[i], rel=1e-12)
        strat = DynamicBalanceSampling(normalize_length=normalize_length)
        assert strat.score(pool).tolist() == pytest.approx(in_pool.tolist())


def test_normalizer_new_record_by_hand_and_json_roundtrip():
    norm = DBSNormalizer.from_pool(PoolScores(n=3, **HAND))
    # a new record with L_min = ln 6, L_p = 0 against the frozen pool (LSE = ln 6 on both sides):
    # rank = 11/18 · 6/6 + 7/18 · 1/6 = 66/108 + 7/108 = 73/108
    assert norm.rank(np.array([math.log(6)]), np.array([0.0]))[0] == pytest.approx(73 / 108)
    back = DBSNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert back == norm
    with pytest.raises(ValueError):
        DBSNormalizer.from_dict({"lambda_t": 0.5})
    with pytest.raises(MissingScoreError):
        DBSNormalizer(0.5, 1.0, 1.0, normalize_length=True).log_rank(np.ones(2), np.ones(2))


def test_saturating_pool_stays_finite():
    # L_min in the thousands: a naive softmax overflows (exp(3000) = inf → NaN).
    pool = PoolScores(n=4, l_min=[1000.0, 2000.0, 3000.0, 2500.0], l_pred=[0.1, -0.3, 0.2, 5.0], n_chars=[900, 1800, 2500, 2600])
    # Eq. 7: p_max = exp(-L_min) = 0 for all → Λ = 0 → rank = softmax(L_p) → order by L_p: 3, 2, 0, 1
    s = DynamicBalanceSampling()
    assert s.normalizer(pool).lambda_t == 0.0
    assert np.all(np.isfinite(s.score(pool)))
    assert s.query(pool, 4, np.random.default_rng(0)).tolist() == [3, 2, 0, 1]
    # equal: log softmax(L_min) = (-2000, -1000, 0, -500); softmax(L_p) ≈ (.0073, .0049, .0081, .9797)
    # rank ≈ 0.5 · (0, 0, 1, 0) + 0.5 · softmax(L_p) → (.0037, .0024, .5040, .4899) → order 2, 3, 0, 1
    s = DynamicBalanceSampling(schedule="equal")
    scores = s.score(pool)
    assert np.all(np.isfinite(scores))
    assert s.query(pool, 4, np.random.default_rng(0)).tolist() == [2, 3, 0, 1]
    assert np.exp(scores[2]) == pytest.approx(0.5 + 0.5 * math.exp(0.2) / sum(math.exp(v) for v in (0.1, -0.3, 0.2, 5.0)))
    assert np.all(np.isfinite(DynamicBalanceSampling(normalize_length=True, schedule="equal").score(pool)))


# ---------------------------------------------------------------- TOD, pool and registry


def test_temporal_output_discrepancy_by_hand():
    cur = [np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.6, 0.4]]), np.zeros((0, 2))]
    prev = [np.array([[0.0, 1.0], [0.5, 0.5]]), np.array([[0.9, 0.1]]), np.zeros((0, 2))]
    # record 0: per-char norms (sqrt(1 + 1), 0) → sum sqrt 2, mean sqrt 2 / 2
    # record 1: sqrt(0.3² + 0.3²) = sqrt 0.18; record 2: empty → 0
    out = temporal_output_discrepancy(cur, prev)
    assert out.tolist() == pytest.approx([math.sqrt(2), math.sqrt(0.18), 0.0])
    assert temporal_output_discrepancy(cur, prev, reduction="mean").tolist() == pytest.approx([math.sqrt(2) / 2, math.sqrt(0.18), 0.0])
    with pytest.raises(ValueError):
        temporal_output_discrepancy([np.zeros((2, 3))], [np.zeros((3, 3))])
    with pytest.raises(ValueError):
        temporal_output_discrepancy(cur, prev[:2])


def test_pool_scores_validation_and_builders():
    with pytest.raises(ValueError, match="l_min"):
        PoolScores(n=3, l_min=[1.0, 2.0])
    recs = [SimpleNamespace(l_min=1.0, l_max=2.0, p_max=math.exp(-1), l_pred=None, n_chars=4),
            SimpleNamespace(l_min=3.0, l_max=5.0, p_max=math.exp(-3), l_pred=0.5, n_chars=9)]
    pool = PoolScores.from_scores(recs, round=2)
    assert pool.n == 2 and pool.round == 2 and pool.l_pred is None  # one record lacks l_pred
    assert pool.l_min.tolist() == [1.0, 3.0] and pool.n_chars.tolist() == [4.0, 9.0]
    sub = full_pool().subset([4, 1])
    assert sub.n == 2 and sub.l_min.tolist() == full_pool().l_min[[4, 1]].tolist()


def test_registry():
    assert set(STRATEGIES) == {"random", "lc", "tod", "loss", "mlp", "lpn", "dbs", "lasl"}
    assert STRATEGIES["lasl"] is STRATEGIES["dbs"] is DynamicBalanceSampling
    for name, cls in STRATEGIES.items():
        assert isinstance(get_strategy(name), cls)
    s = get_strategy("dbs", schedule="root", p=2, normalize_length=True)
    assert s.schedule == Root(p=2) and s.normalize_length and "n_chars" in s.requires
    with pytest.raises(KeyError, match="random"):
        get_strategy("entropy")
