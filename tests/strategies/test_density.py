"""Information density and the entity rate: what they measure, and the DensityWeighted wrapper."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lasl_backend.strategies import (
    DBSNormalizer,
    DynamicBalanceSampling,
    MinimumLossSampling,
    MissingScoreError,
    PoolScores,
    QueryError,
    QueryStrategy,
)
from lasl_backend.strategies.density import MIN_DENSITY, DensityWeighted, entity_rate, pool_density
from tests.strategies.test_strategies import WrapperContract

SURGERY = "患者因“直肠癌”于2016年8月25日在我科行“腹腔镜直肠癌根治术”，术后病理示腺癌，术后恢复可。"
SURGERY_2 = "患者因“直肠癌”于2017年3月2日在我科行“腹腔镜直肠癌根治术”，术后病理示腺癌，术后恢复良好。"
SURGERY_3 = "患者因“结肠癌”于2015年1月9日在我院行“腹腔镜结肠癌根治术”，术后病理示腺癌，术后恢复可。"
CHILD = "患儿生后二十天因嵌顿疝于外院行肠切除术，家属发现其左下肢活动少。"


def brute_force_density(texts: list[str]) -> np.ndarray:
    """The same quantity the slow way: a dense TF-IDF matrix and every pairwise cosine."""
    grams = sorted({t[j:j + 2] for t in texts for j in range(len(t) - 1)})
    col = {g: i for i, g in enumerate(grams)}
    tf = np.zeros((len(texts), len(grams)))
    for r, t in enumerate(texts):
        for j in range(len(t) - 1):
            tf[r, col[t[j:j + 2]]] += 1
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + len(texts)) / (1 + df)) + 1
    w = np.where(tf > 0, 1 + np.log(np.maximum(tf, 1)), 0.0) * idf
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return (w @ w.T).mean(axis=1)


def test_density_is_the_mean_cosine_similarity_to_the_pool() -> None:
    """The one-pass computation equals the pairwise mean of TF-IDF cosines."""
    texts = [SURGERY, SURGERY_2, SURGERY_3, CHILD, "右肺上叶见结节影，大小约1.2cm。"]
    assert pool_density(texts) == pytest.approx(brute_force_density(texts), rel=1e-9)


def test_a_typical_record_is_denser_than_an_outlier() -> None:
    """Three surgery notes from one template outweigh the unrelated paediatric note."""
    d = pool_density([SURGERY, SURGERY_2, SURGERY_3, CHILD])
    assert d.dtype == np.float64 and d.shape == (4,)
    assert d[3] < min(d[:3])
    assert np.all((d >= MIN_DENSITY) & (d <= 1.0))


def test_density_of_identical_texts_is_one() -> None:
    assert pool_density([SURGERY] * 3) == pytest.approx([1.0, 1.0, 1.0])


def test_density_of_empty_and_one_character_texts() -> None:
    """A text without bigrams shares nothing with the pool: it gets the floor, not NaN."""
    d = pool_density(["", "癌", SURGERY, SURGERY_2])
    assert d[0] == d[1] == MIN_DENSITY and d[2] > MIN_DENSITY
    assert pool_density([]).shape == (0,)
    assert pool_density(["", "a"]).tolist() == [MIN_DENSITY, MIN_DENSITY]


def test_density_counts_code_points_beyond_the_bmp() -> None:
    """A CJK Ext-B character or an emoji is one character, not two UTF-16 units: alone it has no bigram
    (the floor), and next to another character it forms exactly one, shared with the same pair elsewhere."""
    assert pool_density(["𠀀", "😀"]).tolist() == [MIN_DENSITY, MIN_DENSITY]
    d = pool_density(["𠀀癌", "患者𠀀癌", "术后"])
    assert d[0] > 1 / 3 and d[2] == pytest.approx(1 / 3)  # "𠀀癌" is shared; "术后" is like itself only
    assert d == pytest.approx(brute_force_density(["𠀀癌", "患者𠀀癌", "术后"]), rel=1e-9)


def test_entity_rate_is_smoothed_predicted_entities_per_character() -> None:
    rate = entity_rate([0, 3, 1], [100, 100, 0])
    assert rate.tolist() == pytest.approx([0.005, 0.035, 1.5])  # an empty record counts as one character


# ---------------------------------------------------------------- DensityWeighted


def weighted_pool() -> PoolScores:
    return PoolScores(n=4, l_min=[10.0, 9.0, 8.0, 7.0], density=[0.01, 0.02, 0.04, 0.08],
                      entity_rate=[0.08, 0.04, 0.02, 0.01])


def test_beta_zero_is_the_base_strategy() -> None:
    pool = weighted_pool()
    assert DensityWeighted(MinimumLossSampling(), beta=0).score(pool).tolist() == pool.l_min.tolist()


def test_weight_reorders_towards_the_denser_records() -> None:
    """A large beta puts density first; a small one only breaks near-ties of the base."""
    pool = weighted_pool()
    rng = np.random.default_rng(0)
    assert DensityWeighted(MinimumLossSampling(), beta=10).query(pool, 4, rng).tolist() == [3, 2, 1, 0]
    assert DensityWeighted(MinimumLossSampling(), beta=0.01).query(pool, 4, rng).tolist() == [0, 1, 2, 3]
    by_rate = DensityWeighted(MinimumLossSampling(), beta=10, field="entity_rate")
    assert by_rate.query(pool, 4, rng).tolist() == [0, 1, 2, 3]


def test_the_weight_does_not_depend_on_the_base_scores_unit() -> None:
    """Scaling the base scores by 1,000 leaves the order as it was: beta weighs spreads, not units."""
    pool = PoolScores(n=6, l_min=[5.0, 4.0, 3.5, 3.0, 2.0, 1.0], density=[0.02, 0.05, 0.01, 0.09, 0.03, 0.04])
    scaled = PoolScores(n=6, l_min=pool.l_min * 1000, density=pool.density)
    s = DensityWeighted(MinimumLossSampling(), beta=0.7)
    rng = np.random.default_rng(0)
    assert s.query(pool, 6, rng).tolist() == s.query(scaled, 6, rng).tolist()


def test_a_pool_without_spread_keeps_the_base_scores() -> None:
    flat_density = PoolScores(n=3, l_min=[3.0, 2.0, 1.0], density=[0.05, 0.05, 0.05])
    flat_base = PoolScores(n=3, l_min=[2.0, 2.0, 2.0], density=[0.01, 0.05, 0.09])
    s = DensityWeighted(MinimumLossSampling(), beta=1.0)
    assert s.score(flat_density).tolist() == [3.0, 2.0, 1.0]
    assert s.score(flat_base).tolist() == [2.0, 2.0, 2.0]
    assert s.score(PoolScores(n=0, l_min=[], density=[])).shape == (0,)


def test_needs_its_field_and_a_sane_beta() -> None:
    s = DensityWeighted(MinimumLossSampling(), field="entity_rate")
    assert s.requires == ("l_min", "entity_rate")
    with pytest.raises(MissingScoreError, match="entity_rate"):
        s.score(PoolScores(n=2, l_min=[1.0, 2.0], density=[0.1, 0.2]))
    for beta in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="beta"):
            DensityWeighted(MinimumLossSampling(), beta=beta)


class _DensityContract(WrapperContract):
    """The shared strategy contract, its pools carrying ``density`` with a spread (records far from the
    pool's centre at the ends)."""

    extra = "density"

    def extra_values(self, n: int) -> np.ndarray:
        return 0.02 + 0.06 * np.abs(np.sin(np.arange(n) + 1.0))

    def base(self) -> QueryStrategy:
        raise NotImplementedError

    def make(self) -> QueryStrategy:
        return DensityWeighted(self.base(), beta=0.5)

    def test_the_registry_knows_it(self) -> None:
        """A wrapper, not a registry entry: it declares the base's inputs plus its field and names its base."""
        s = self.make()
        assert s.name == "density" and s.requires == tuple(self.base().requires) + ("density",)
        assert repr(self.base()) in repr(s) and "beta=0.5" in repr(s)


class TestDensityMLP(_DensityContract):
    def base(self) -> QueryStrategy:
        return MinimumLossSampling()


class TestDensityDBS(_DensityContract):
    def base(self) -> QueryStrategy:
        return DynamicBalanceSampling(normalize_length=True)


# ---------------------------------------------------------------- the backend's frozen weight


def entity_pool(n: int = 30, seed: int = 4) -> PoolScores:
    rng = np.random.default_rng(seed)
    n_chars = rng.integers(50, 900, n).astype(float)
    return PoolScores(n=n, l_min=rng.uniform(0.5, 40.0, n), l_pred=rng.normal(0.0, 3.0, n), n_chars=n_chars,
                      entity_rate=entity_rate(rng.integers(0, 40, n), n_chars))


def test_the_normalizer_weighs_as_the_simulator_ranks() -> None:
    """The backend's frozen weight gives the pool exactly the scores the simulator's wrapper ranks it by."""
    pool = entity_pool()
    norm = DBSNormalizer.from_pool(pool, normalize_length=True, entity_beta=0.5)
    backend = norm.log_rank(pool.l_min, pool.l_pred, pool.n_chars, pool.entity_rate)
    simulator = DensityWeighted(DynamicBalanceSampling(normalize_length=True), beta=0.5, field="entity_rate").score(pool)
    assert norm.entity_coef > 0
    assert backend == pytest.approx(simulator, rel=1e-12, abs=1e-12)
    # a record scored on its own later gets the value it had in the pool
    one = norm.log_rank(pool.l_min[:1], pool.l_pred[:1], pool.n_chars[:1], pool.entity_rate[:1])
    assert one[0] == pytest.approx(backend[0], rel=1e-12)


def test_the_frozen_weight_survives_a_round_trip_and_old_files() -> None:
    norm = DBSNormalizer.from_pool(entity_pool(), normalize_length=True, entity_beta=0.5)
    assert DBSNormalizer.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    old = {"lambda_t": 0.4, "lse_min": 3.0, "lse_pred": 1.0, "normalize_length": True}  # written before the weight
    assert DBSNormalizer.from_dict(old).entity_coef == 0.0
    plain = DBSNormalizer.from_pool(entity_pool(), normalize_length=True)
    assert plain.entity_coef == 0.0 and DBSNormalizer.from_dict(plain.to_dict()) == plain


def test_the_weight_needs_its_rates_and_sane_values() -> None:
    pool = entity_pool()
    norm = DBSNormalizer.from_pool(pool, normalize_length=True, entity_beta=0.5)
    with pytest.raises(MissingScoreError, match="entity_rate"):
        norm.log_rank(pool.l_min, pool.l_pred, pool.n_chars)
    with pytest.raises(ValueError, match="entity rates"):
        norm.log_rank(pool.l_min, pool.l_pred, pool.n_chars, pool.entity_rate[:3])
    with pytest.raises(QueryError, match="non-finite"):
        norm.log_rank(pool.l_min, pool.l_pred, pool.n_chars, np.where(np.arange(pool.n) == 2, np.nan, pool.entity_rate))
    no_rates = PoolScores(n=pool.n, l_min=pool.l_min, l_pred=pool.l_pred, n_chars=pool.n_chars)
    with pytest.raises(MissingScoreError, match="entity_rate"):
        DBSNormalizer.from_pool(no_rates, normalize_length=True, entity_beta=0.5)
    assert DBSNormalizer.from_pool(no_rates, normalize_length=True).entity_coef == 0.0  # off: rates not needed
    for bad in ({"entity_coef": -1.0}, {"entity_coef": math.inf}, {"entity_centre": math.nan}):
        with pytest.raises(ValueError, match="entity"):
            DBSNormalizer(lambda_t=0.5, lse_min=1.0, lse_pred=1.0, **bad)
