"""Diversity: MinHash signatures of texts, near-duplicate groups, the spread order and the Diversified wrapper."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tests.strategies.test_strategies as contract_module
from lasl_backend.strategies import (
    DynamicBalanceSampling,
    MinimumLossSampling,
    MissingScoreError,
    PoolScores,
    QueryStrategy,
)
from lasl_backend.strategies.base import SCORE_FIELDS
from lasl_backend.strategies.diversity import N_HASHES, Diversified, near_duplicate_groups, spread_order, text_signature
from tests.strategies.test_strategies import WrapperContract

PRIME = (1 << 31) - 1  # the hash modulus: every signature value of a non-empty text is below it

# A discharge summary (about 500 characters), a copy of it with one sentence changed, and an unrelated record.
RECORD = (
    "患者，男，65岁，因“反复胸闷气促3年，加重1周”于2019年3月5日入院。患者3年前无明显诱因出现胸闷、气促，活动后加重，"
    "休息后可缓解，未予重视。1周前上述症状加重，夜间不能平卧，伴咳嗽咳痰，痰为白色泡沫样。既往有高血压病史10年，"
    "最高血压180/100mmHg，规律口服硝苯地平控释片30mg每日一次，血压控制可；有2型糖尿病史5年，口服二甲双胍0.5g每日三次。"
    "否认冠心病、脑梗死病史，否认肝炎、结核等传染病史。入院查体：体温36.5℃，脉搏96次/分，呼吸22次/分，血压150/90mmHg，"
    "神志清，双肺底可闻及湿啰音，心界向左下扩大，心率96次/分，律齐，双下肢轻度凹陷性水肿。辅助检查：心脏彩超示左心室增大，"
    "射血分数35%；胸部CT示双肺渗出性改变，少量胸腔积液；血常规示白细胞8.2×10^9/L；NT-proBNP 5620pg/ml。"
    "入院诊断：慢性心力衰竭急性加重，心功能IV级，高血压病3级（极高危），2型糖尿病。入院后予呋塞米利尿、螺内酯保钾利尿、"
    "沙库巴曲缬沙坦改善心室重构、美托洛尔控制心率等治疗，患者胸闷气促明显好转，双下肢水肿消退。"
    "出院医嘱：低盐低脂糖尿病饮食，监测血压血糖，按时服药，1个月后心内科门诊复查。"
)
ONE_SENTENCE_CHANGED = RECORD.replace("否认冠心病、脑梗死病史，否认肝炎、结核等传染病史。", "有慢性阻塞性肺疾病史8年，长期吸入噻托溴铵治疗。")
UNRELATED = (
    "患儿，女，7岁，因“右前臂摔伤后疼痛肿胀2小时”急诊就诊。查体见右前臂中段畸形，局部压痛明显，可触及骨擦感，"
    "桡动脉搏动可，手指感觉活动正常。X线片示右尺桡骨中段双骨折，断端移位。急诊在全麻下行右尺桡骨骨折闭合复位"
    "弹性髓内钉内固定术，术后石膏托外固定，予头孢呋辛预防感染，抬高患肢，观察末梢血运。"
)


def cjk(rng: np.random.Generator, n: int) -> str:
    """``n`` random characters of the CJK Unified Ideographs block (two such texts share almost no 3-gram)."""
    return "".join(chr(int(c)) for c in rng.integers(0x4E00, 0x9FA6, n))


def long_record(rng: np.random.Generator, sentences: int = 24, length: int = 30) -> list[str]:
    return [cjk(rng, length) + "。" for _ in range(sentences)]


# ---------------------------------------------------------------- text_signature


def test_signature_shape_and_determinism() -> None:
    """A signature is N_HASHES uint32 values below the modulus, the same on every call."""
    sig = text_signature(RECORD)
    assert sig.shape == (N_HASHES,) and sig.dtype == np.uint32
    assert np.all(sig < PRIME)
    assert np.array_equal(sig, text_signature(RECORD))
    assert np.array_equal(sig, text_signature(str(RECORD)))  # depends on the value, not the object


def test_signature_is_the_same_in_another_process() -> None:
    """The signature does not depend on Python's per-process string hash (it is stable across restarts)."""
    code = ("import json, sys; from lasl_backend.strategies.diversity import text_signature; "
            "print(json.dumps(text_signature(sys.argv[1]).tolist()))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code, RECORD], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert json.loads(out.stdout) == text_signature(RECORD).tolist()


def test_digits_and_whitespace_do_not_change_the_signature() -> None:
    """Texts that differ only in which digits they carry and in whitespace have equal signatures."""
    a = "2019年3月5日入院，体温36.5℃，脉搏96次/分，口服二甲双胍0.5g每日三次。"
    b = "2020年8月7日 入院，体温 37.2℃，\n脉搏 88次/分，\t口服二甲双胍 0.8g 每日三次。"
    assert np.array_equal(text_signature(a), text_signature(b))
    assert np.array_equal(text_signature("１２３床患者"), text_signature("４５６床患者"))  # full-width digits too
    assert np.array_equal(text_signature(RECORD), text_signature(RECORD.replace("，", "， ").replace("2019", "2023")))


def test_unrelated_texts_have_different_signatures() -> None:
    """Unrelated texts share (almost) no MinHash value."""
    a, b = text_signature(RECORD), text_signature(UNRELATED)
    assert not np.array_equal(a, b)
    rng = np.random.default_rng(0)
    x, y = text_signature(cjk(rng, 300)), text_signature(cjk(rng, 300))
    # each value agrees with probability ≈ the 3-gram Jaccard similarity (≈ 0 here)
    assert int(np.sum(x == y)) <= 2


def test_empty_and_whitespace_only_texts() -> None:
    """An empty (or all-whitespace) text has a fixed signature, different from any text with content."""
    empty = text_signature("")
    assert empty.shape == (N_HASHES,) and empty.dtype == np.uint32
    assert np.array_equal(empty, text_signature(" \n\t "))
    assert not np.array_equal(empty, text_signature("a"))
    assert not np.array_equal(empty, text_signature(RECORD))


@pytest.mark.parametrize("a, b", [("a", "b"), ("ab", "ba"), ("肺", "肝"), ("肺癌", "肝癌"), ("😀", "😁"), ("𠀀", "𠀁")])
def test_one_and_two_character_texts(a: str, b: str) -> None:
    """Texts shorter than one 3-gram still get a valid signature that tells different texts apart."""
    sa, sb = text_signature(a), text_signature(b)
    for s in (sa, sb):
        assert s.shape == (N_HASHES,) and s.dtype == np.uint32 and np.all(s < PRIME)
    assert np.array_equal(sa, text_signature(a))
    assert not np.array_equal(sa, sb)


def test_emoji_and_cjk_extension_b_texts() -> None:
    """Characters outside the BMP (emoji, CJK Ext-B) are one code point each: valid, deterministic, distinct."""
    ext_b = "".join(chr(0x20000 + i) for i in range(40))
    other_ext_b = "".join(chr(0x20100 + i) for i in range(40))
    emoji = "患者诉😀😀胸闷🙂" * 3
    for text in (ext_b, other_ext_b, emoji):
        sig = text_signature(text)
        assert sig.shape == (N_HASHES,) and sig.dtype == np.uint32 and np.all(sig < PRIME)
        assert np.array_equal(sig, text_signature(text))
    assert not np.array_equal(text_signature(ext_b), text_signature(other_ext_b))
    assert not np.array_equal(text_signature(emoji), text_signature(emoji.replace("😀", "😡")))


def test_lone_surrogate_text_gets_a_signature() -> None:
    """A text holding a lone surrogate (valid in JSON, so possible in a task) still gets a signature."""
    text = json.loads('"\\ud800 患者胸闷气促3年"')
    sig = text_signature(text)
    assert sig.shape == (N_HASHES,)


# ---------------------------------------------------------------- near_duplicate_groups


def test_a_near_copy_joins_the_group_and_an_unrelated_record_does_not() -> None:
    """A long record with one sentence changed shares its group; an unrelated record gets its own."""
    groups = near_duplicate_groups([text_signature(t) for t in (RECORD, ONE_SENTENCE_CHANGED, UNRELATED)])
    assert groups.tolist() == [0, 0, 1]


def test_records_differing_in_dates_and_doses_share_a_group() -> None:
    """Numbers of another length (a date, a dose) still leave a long record in its group."""
    edited = RECORD.replace("2019年3月5日", "2021年12月25日").replace("30mg", "120mg").replace("5620pg", "890pg")
    assert near_duplicate_groups([text_signature(RECORD), text_signature(edited)]).tolist() == [0, 0]


def test_random_long_records_and_their_near_copies() -> None:
    """Ids are 0, 1, ... in order of first appearance; each near-copy lands in its original's group."""
    rng = np.random.default_rng(3)
    originals = [long_record(rng) for _ in range(3)]
    copies = []
    for k, sents in enumerate(originals):
        c = list(sents)
        c[5 + k] = cjk(rng, 30) + "。"  # one sentence of 24 replaced: 3-gram Jaccard ≈ 0.9
        copies.append(c)
    texts = ["".join(originals[0]), "".join(originals[1]), "".join(copies[0]), "".join(originals[2]),
             "".join(copies[2]), "".join(copies[1])]
    groups = near_duplicate_groups([text_signature(t) for t in texts])
    assert groups.dtype == np.int64
    assert groups.tolist() == [0, 1, 0, 2, 2, 1]


def test_groups_of_unrelated_texts_are_all_distinct() -> None:
    """Unrelated texts each get their own id, numbered in order."""
    rng = np.random.default_rng(11)
    texts = [cjk(rng, 200) for _ in range(20)]
    assert near_duplicate_groups([text_signature(t) for t in texts]).tolist() == list(range(20))


def test_identical_signatures_share_a_group_transitively() -> None:
    """Equal signatures always share a group, and groups join through a shared member (union-find)."""
    a = np.arange(N_HASHES, dtype=np.uint32)
    b = a + 1000  # no band in common with a
    ab = np.concatenate([a[:16], b[16:]])  # the first half of a, the second of b: bridges them
    c = a + 5000
    assert near_duplicate_groups([a, b, c, a.copy()]).tolist() == [0, 1, 2, 0]
    assert near_duplicate_groups([a, b, c, ab]).tolist() == [0, 0, 1, 0]


def test_no_signatures() -> None:
    """An empty list gives an empty array of ids."""
    groups = near_duplicate_groups([])
    assert groups.shape == (0,) and groups.dtype == np.int64


# ---------------------------------------------------------------- spread_order


def reference_spread(scores: np.ndarray, groups: np.ndarray, window: int) -> list[int]:
    """The rule of spread_order's docstring, step by step: the best-scored record (ties: lower index) whose group
    was not taken in the last ``window`` steps, else the best of the group taken longest ago."""
    remaining = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    last: dict[int, int] = {}
    out: list[int] = []
    while remaining:
        pos = len(out)
        free = [i for i in remaining if groups[i] not in last or pos - last[groups[i]] > window]
        if free:
            pick = free[0]
        else:
            oldest = min({groups[i] for i in remaining}, key=lambda g: last[g])
            pick = next(i for i in remaining if groups[i] == oldest)
        remaining.remove(pick)
        last[groups[pick]] = pos
        out.append(pick)
    return out


def test_spread_order_by_hand() -> None:
    """Hand-worked orders: a group waits ``window`` positions while others are left, then the fallback."""
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    groups = np.array([0, 0, 1, 1, 2])
    # window 1: 0 (g0), 2 (g1: g0 waits), 1 (g0 is back), 3 (g1), 4
    assert spread_order(scores, groups, 1).tolist() == [0, 2, 1, 3, 4]
    # window 2: 0 (g0), 2 (g1), 4 (g2: g0 and g1 wait), 1 (g0), 3 (g1)
    assert spread_order(scores, groups, 2).tolist() == [0, 2, 4, 1, 3]
    # only g0 is left after step 1: it comes back at once, in score order
    assert spread_order(np.array([4.0, 3.0, 2.0, 1.0]), np.array([0, 0, 0, 1]), 2).tolist() == [0, 3, 1, 2]


def test_window_zero_is_score_order() -> None:
    """With window 0 (or a negative one) the order is the scores', best first, ties by pool index."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 30).astype(float)  # many ties
    groups = rng.integers(0, 3, 30)
    expected = np.argsort(-scores, kind="stable").tolist()
    assert spread_order(scores, groups, 0).tolist() == expected
    assert spread_order(scores, groups, -3).tolist() == expected
    assert spread_order(scores, np.arange(30), 5).tolist() == expected  # all groups distinct: nothing to spread


@pytest.mark.parametrize("seed", range(8))
def test_spread_order_is_a_permutation_that_spreads_groups(seed: int) -> None:
    """A permutation; a group never comes back within ``window`` positions while another group has records left;
    and each step follows the documented rule."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    window = int(rng.integers(1, 8))
    scores = rng.normal(size=n)
    groups = rng.integers(0, int(rng.integers(1, 10)), n)
    order = spread_order(scores, groups, window).tolist()
    assert sorted(order) == list(range(n))
    for pos, i in enumerate(order):
        recent = {int(groups[j]) for j in order[max(0, pos - window): pos]}
        left = {int(groups[j]) for j in order[pos:]}
        if int(groups[i]) in recent:
            assert left <= recent, f"position {pos}: group {groups[i]} repeated while {left - recent} was available"
    assert order == reference_spread(scores, groups, window)


def test_one_group_left_falls_back_to_score_order() -> None:
    """When a single group remains it is served in score order, window or not."""
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    groups = np.zeros(5, dtype=np.int64)
    assert spread_order(scores, groups, 3).tolist() == [1, 3, 2, 4, 0]
    assert spread_order(np.array([]), np.array([]), 3).tolist() == []


def test_spread_order_accepts_float_group_ids() -> None:
    """Group ids stored as floats (as PoolScores keeps them) order the same as integers."""
    rng = np.random.default_rng(5)
    scores = rng.normal(size=25)
    groups = rng.integers(0, 4, 25)
    assert spread_order(scores, groups.astype(float), 3).tolist() == spread_order(scores, groups, 3).tolist()


# ---------------------------------------------------------------- Diversified


def grouped_pool(n: int = 20, seed: int = 1, n_groups: int = 4) -> PoolScores:
    rng = np.random.default_rng(seed)
    l_min = rng.uniform(0.0, 40.0, n)
    return PoolScores(n=n, l_min=l_min, l_pred=rng.normal(0.0, 3.0, n), n_chars=rng.integers(5, 300, n),
                      group=rng.integers(0, n_groups, n).astype(float))


def test_diversified_keeps_the_base_scores_multiset() -> None:
    """Diversified's scores are the base's values, permuted into the spread order."""
    pool = grouped_pool()
    base = MinimumLossSampling()
    for window in (1, 3, 10):
        s = Diversified(base, window=window)
        out = s.score(pool)
        assert sorted(out.tolist()) == sorted(base.score(pool).tolist())
        order = spread_order(base.score(pool), pool.group, window)
        assert np.argsort(-out, kind="stable").tolist() == order.tolist()
        assert s.query(pool, 5, np.random.default_rng(0)).tolist() == order[:5].tolist()


def test_diversified_separates_the_top_two_of_one_group() -> None:
    """When the base's two best records share a group, the diversified top two come from different groups."""
    pool = PoolScores(n=4, l_min=[9.0, 8.0, 7.0, 1.0], group=[0.0, 0.0, 1.0, 2.0])
    assert MinimumLossSampling().query(pool, 2, np.random.default_rng(0)).tolist() == [0, 1]
    s = Diversified(MinimumLossSampling(), window=1)
    assert s.query(pool, 4, np.random.default_rng(0)).tolist() == [0, 2, 1, 3]
    assert s.score(pool).tolist() == [9.0, 7.0, 8.0, 1.0]


def test_diversified_needs_group() -> None:
    """Without ``group`` in the pool a Diversified strategy raises MissingScoreError naming it."""
    pool = PoolScores(n=3, l_min=[1.0, 2.0, 3.0])
    s = Diversified(MinimumLossSampling(), window=2)
    assert s.requires == ("l_min", "group")
    with pytest.raises(MissingScoreError, match="group"):
        s.score(pool)
    with pytest.raises(MissingScoreError, match="group"):
        s.query(pool, 1, np.random.default_rng(0))


def test_diversified_window_zero_and_empty_pool() -> None:
    """Window 0 returns the base scores unchanged; an empty pool gives no scores; a negative window is refused."""
    pool = grouped_pool()
    assert Diversified(MinimumLossSampling(), window=0).score(pool).tolist() == pool.l_min.tolist()
    assert Diversified(MinimumLossSampling(), window=3).score(PoolScores(n=0, l_min=[], group=[])).shape == (0,)
    with pytest.raises(ValueError, match="window"):
        Diversified(MinimumLossSampling(), window=-1)


def test_diversified_does_not_modify_the_pool() -> None:
    """Scoring leaves the pool's arrays as they were."""
    pool = grouped_pool()
    before = {name: None if getattr(pool, name) is None else getattr(pool, name).copy() for name in SCORE_FIELDS}
    Diversified(DynamicBalanceSampling(), window=3).score(pool)
    for name, value in before.items():
        if value is not None:
            assert np.array_equal(getattr(pool, name), value)


class _GroupedContract(WrapperContract):
    """The shared strategy contract, its pools carrying ``group`` (a Diversified strategy needs one): four
    interleaved groups of near-copies."""

    extra = "group"

    def extra_values(self, n: int) -> np.ndarray:
        return (np.arange(n) % 4).astype(float)

    def base(self) -> QueryStrategy:
        raise NotImplementedError

    def make(self) -> QueryStrategy:
        return Diversified(self.base(), window=2)

    def test_the_registry_knows_it(self) -> None:
        """A wrapper, not a registry entry: it declares the base's inputs plus ``group`` and names its base."""
        s = self.make()
        assert s.name == "diversified"
        assert s.requires == tuple(self.base().requires) + ("group",)
        assert repr(self.base()) in repr(s) and "window=2" in repr(s)

    def test_pools_carry_groups(self) -> None:
        """The contract really runs on grouped pools, and the query follows the spread rule over them."""
        pool = contract_module.full_pool()
        assert pool.has("group")
        got = self.make().query(pool, pool.n, np.random.default_rng(0)).tolist()
        assert got == reference_spread(self.base().score(pool), pool.group.astype(int), 2)


class TestDiversifiedMLP(_GroupedContract):
    def base(self) -> QueryStrategy:
        return MinimumLossSampling()


class TestDiversifiedDBS(_GroupedContract):
    def base(self) -> QueryStrategy:
        return DynamicBalanceSampling(normalize_length=True)
