"""Hostile values for the cost model and the diversity re-ordering: contract violations should raise a
ValueError that says what is wrong, everything else should give the documented result."""

from __future__ import annotations

import numpy as np
import pytest

from lasl_backend.strategies import PoolScores, QueryStrategy
from lasl_backend.strategies.cost import fit_cost_model
from lasl_backend.strategies.diversity import N_HASHES, Diversified, near_duplicate_groups, spread_order, text_signature

RNG = np.random.default_rng(0)
CHARS = RNG.integers(50, 500, 40).astype(float)
REGIONS = RNG.integers(0, 10, 40).astype(float)
SECONDS = 5 + 0.1 * CHARS + 2 * REGIONS


# ---- cost ------------------------------------------------------------------------------------------------------
def test_cost_empty_and_all_garbage_give_none() -> None:
    """No usable lead time at all is "not enough data", not an error."""
    assert fit_cost_model([], [], []) is None
    assert fit_cost_model(CHARS, REGIONS, [None, "x", -1.0, float("nan")] * 10) is None


@pytest.mark.parametrize("n_chars, n_regions, lead", [(CHARS[:10], REGIONS, SECONDS), (CHARS, REGIONS, list(SECONDS) + [10.0] * 5),
                                                      (np.r_[CHARS, CHARS[:5]], REGIONS, SECONDS)])
def test_cost_mismatched_lengths_raise_value_error(n_chars: np.ndarray, n_regions: np.ndarray, lead: list[float]) -> None:
    """Characters, regions and lead times are per annotation: different lengths are a contract violation."""
    with pytest.raises(ValueError, match="length"):
        fit_cost_model(n_chars, n_regions, lead)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_cost_non_finite_counts_are_named(bad: float) -> None:
    """A non-finite character count is refused with a message naming it, not a linear-algebra failure."""
    chars = CHARS.copy()
    chars[3] = bad
    with pytest.raises(ValueError, match="finite|n_chars|character"):
        fit_cost_model(chars, REGIONS, SECONDS)


def test_cost_constant_columns_still_predict_the_times() -> None:
    """Collinear features (every record the same length, no regions) still predict the mean time."""
    model = fit_cost_model(np.full(40, 100.0), np.zeros(40), np.full(40, 42.0))
    assert model is not None and model.seconds([100.0], [0.0])[0] == pytest.approx(42.0)


# ---- text_signature ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "😀", "😀😀😀😀", "\x00\x00\x00", "\u200b" * 5, "١٢٣٤"])
def test_signature_of_odd_texts(text: str) -> None:
    """Lone surrogates, emoji, NULs and non-ASCII digits get a valid signature below the modulus."""
    sig = text_signature(text)
    assert sig.shape == (N_HASHES,) and sig.dtype == np.uint32 and (sig < (1 << 31) - 1).all()


def test_unicode_whitespace_only_text_is_the_empty_signature() -> None:
    """NBSP and ideographic spaces are folded away like ASCII whitespace."""
    assert (text_signature("\u00a0\u3000\n") == text_signature("")).all()


def test_giant_text_signature() -> None:
    """A 10^6-character text is hashed (and a near copy of it still matches most hashes)."""
    text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(10**6))
    a, b = text_signature(text), text_signature(text[:-100] + "另")
    assert a.shape == (N_HASHES,) and (a == b).mean() > 0.9


@pytest.mark.parametrize("n", [0, -1])
def test_signature_gram_size_must_be_positive(n: int) -> None:
    """n-grams of n ≤ 0 are meaningless: a ValueError, not a constant signature that merges all texts."""
    with pytest.raises(ValueError, match="n"):
        text_signature("abcdef", n=n)


# ---- near_duplicate_groups ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [0, -1, N_HASHES + 1])
def test_groups_rows_out_of_range(rows: int) -> None:
    """A band size outside 1..N_HASHES is a ValueError naming rows."""
    sigs = [text_signature("同一段文本内容"), text_signature("同一段文本内容")]
    with pytest.raises(ValueError, match="rows"):
        near_duplicate_groups(sigs, rows=rows)


@pytest.mark.parametrize("length", [0, 2])
def test_groups_signatures_of_wrong_length(length: int) -> None:
    """A signature that is not N_HASHES long is a ValueError (it would otherwise merge unrelated records)."""
    sigs = [np.array([1, 2][:length], dtype=np.uint32), np.array([3, 4][:length], dtype=np.uint32)]
    with pytest.raises(ValueError, match="signature"):
        near_duplicate_groups(sigs)


def test_empty_and_blank_texts_share_a_group_apart_from_text() -> None:
    """Empty and whitespace-only texts are alike; a real text is not grouped with them."""
    g = near_duplicate_groups([text_signature(""), text_signature(" \t"), text_signature("胸闷气促三年")])
    assert g.tolist() == [0, 0, 1]


# ---- spread_order ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("groups", [[0, 1], [0, 1, 0, 1]])
def test_spread_order_groups_of_wrong_length(groups: list[int]) -> None:
    """One group per score: any other length is a ValueError naming the lengths."""
    with pytest.raises(ValueError, match="3"):
        spread_order(np.array([1.0, 2.0, 3.0]), np.array(groups), 2)


def test_spread_order_empty_and_huge_window() -> None:
    """An empty pool gives an empty order; a window longer than the pool is still a full permutation."""
    assert spread_order(np.array([]), np.array([]), 5).size == 0
    order = spread_order(np.array([4.0, 3.0, 2.0, 1.0]), np.array([0, 0, 1, 1]), 10**18)
    assert order.tolist() == [0, 2, 1, 3]


def test_spread_order_infinite_scores() -> None:
    """+inf first and -inf last within the spread, like any other score."""
    order = spread_order(np.array([np.inf, -np.inf, 0.5, 1.0]), np.array([0, 1, 2, 3]), 2)
    assert order.tolist() == [0, 3, 2, 1]


class Fixed(QueryStrategy):
    """A base strategy with given scores."""

    name = "fixed"

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.array(scores, dtype=np.float64)

    def score(self, pool: PoolScores) -> np.ndarray:
        return self.scores


def test_diversified_does_not_move_nan_onto_the_best_record() -> None:
    """A NaN from the base either raises or stays on its record: the best finite record keeps a finite score."""
    pool = PoolScores(n=4, group=[0.0, 1.0, 2.0, 3.0])
    try:
        out = Diversified(Fixed([np.nan, 3.0, 2.0, 1.0]), window=2).score(pool)
    except ValueError:
        return
    assert np.isnan(out[0]) and out[1:].tolist() == [3.0, 2.0, 1.0]
