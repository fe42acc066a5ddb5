"""SoftLexicon and bigram lookups agree with brute-force string references: the vectorised matching
finds every lexicon word in the ids and nothing else (not across padding, not on a hash collision),
and the pooling is Ma et al.'s v(S) = 4/Z Σ z(w) e(w) per character."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lasl_backend.ner.bigrams import BigramEmbedding
from lasl_backend.ner.softlexicon import _PRIME, SoftLexicon, window_hash

SETS = {"B": 0, "M": 1, "E": 2, "S": 3}


def _table(words: list[tuple[int, ...]]) -> torch.Tensor:
    width = max((len(w) for w in words), default=1)
    chars = torch.zeros(len(words), width, dtype=torch.long)
    for i, w in enumerate(words):
        chars[i, : len(w)] = torch.tensor(w)
    return chars


def _pad(texts: list[list[int]]) -> torch.Tensor:
    T = max((len(t) for t in texts), default=0)
    return torch.tensor([t + [0] * (T - len(t)) for t in texts], dtype=torch.long).reshape(len(texts), T)


def _occurrences(text: list[int], word: tuple[int, ...]) -> list[int]:
    L = len(word)
    return [s for s in range(len(text) - L + 1) if tuple(text[s : s + L]) == word]


def reference_pool(text: list[int], words: list[tuple[int, ...]], z: list[float], e: torch.Tensor, T: int) -> torch.Tensor:
    """For each character the lists of (word, set) memberships, one per occurrence of a word (as the
    SoftLexicon reference code builds them), then 4/Z Σ z e per set; Z sums every membership's z."""
    d = e.shape[1]
    members: list[list[tuple[int, int]]] = [[] for _ in range(T)]
    for w, word in enumerate(words):
        L = len(word)
        for s in _occurrences(text, word):
            if L == 1:
                members[s].append((w, SETS["S"]))
                continue
            members[s].append((w, SETS["B"]))
            members[s + L - 1].append((w, SETS["E"]))
            for k in range(s + 1, s + L - 1):
                members[k].append((w, SETS["M"]))
    out = torch.zeros(T, 4, d, dtype=torch.float64)
    for t, mine in enumerate(members):
        Z = sum(z[w] for w, _ in mine)
        if Z <= 0:
            continue
        for w, s in mine:
            out[t, s] += 4.0 / Z * z[w] * e[w].double()
    return out.reshape(T, 4 * d)


@st.composite
def lexicon_and_texts(draw):
    """Tiny alphabets (ids 2..6, and 1 = <unk> in texts only) so that words occur, overlap and repeat."""
    top = draw(st.integers(2, 6))
    char = st.integers(2, top)
    words = draw(st.lists(st.lists(char, min_size=1, max_size=6).map(tuple), min_size=1, max_size=8, unique=True))
    z = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.0]), min_size=len(words), max_size=len(words)))
    texts = draw(st.lists(st.lists(st.one_of(char, st.just(1)), min_size=0, max_size=12), min_size=1, max_size=3))
    return words, z, texts


@settings(max_examples=50, deadline=None)
@given(lexicon_and_texts())
def test_forward_equals_the_brute_force_pooling(case):
    words, z, texts = case
    torch.manual_seed(0)
    module = SoftLexicon(_table(words), torch.tensor(z), dim=3)
    ids = _pad(texts)
    B, T = ids.shape
    with torch.no_grad():
        out = module(ids)
    assert out.shape == (B, T, 12)
    e = module.embedding.weight.detach()
    for b, text in enumerate(texts):
        expect = reference_pool(text, words, z, e, T)
        assert torch.allclose(out[b].double(), expect, atol=1e-5), (text, words, z)
        assert not out[b, len(text) :].any()  # padded positions pool nothing


@settings(max_examples=50, deadline=None)
@given(lexicon_and_texts())
def test_match_reports_exactly_the_occurrences(case):
    """Every window that spells a word is reported with that word, no other window is, and none reaches
    into the padding."""
    words, z, texts = case
    module = SoftLexicon(_table(words), torch.tensor(z), dim=2)
    ids = _pad(texts)
    found = set()
    for L, widx in module.match(ids):
        assert widx.shape == (ids.shape[0], ids.shape[1] - L + 1)
        for b, s in torch.nonzero(widx >= 0).tolist():
            w = int(widx[b, s])
            assert words[w] == tuple(texts[b][s : s + L]) and s + L <= len(texts[b])
            found.add((b, s, w))
    expect = {(b, s, w) for b, text in enumerate(texts) for w, word in enumerate(words) for s in _occurrences(text, word)}
    assert found == expect


def test_a_hash_collision_never_invents_a_match():
    """(2, 2) and (1, P + 2) hash alike (2P + 2); only the window that really spells the word matches."""
    word = (2, 2)
    impostor = [1, _PRIME + 2]
    assert int(window_hash(torch.tensor(word))) == int(window_hash(torch.tensor(impostor)))
    module = SoftLexicon(_table([word]), torch.tensor([1.0]), dim=2)
    ids = _pad([impostor + [2, 2], impostor])
    [(L, widx)] = module.match(ids)
    assert L == 2 and widx.tolist() == [[-1, -1, 0], [-1, -1, -1]]
    out = module(ids)
    assert not out[0, :2].any() and not out[1].any() and out[0, 2:].abs().sum() > 0


def test_colliding_words_in_the_table_only_ever_match_themselves():
    """Two stored words with one hash: a collision may cost one of them its matches (documented), but
    every reported match spells its word, and other words are unaffected."""
    words = [(2, 2), (1, _PRIME + 2), (3, 4)]
    module = SoftLexicon(_table(words), torch.ones(3), dim=2)
    ids = torch.tensor([[2, 2, 1, _PRIME + 2, 3, 4, 2, 2]])
    [(L, widx)] = module.match(ids)
    hits = {s: int(widx[0, s]) for s in torch.nonzero(widx[0] >= 0).flatten().tolist()}
    for s, w in hits.items():
        assert torch.equal(module.word_chars[w, :L], ids[0, s : s + L])
    assert hits[4] == 2
    assert set(hits) - {4} in ({0, 6}, {2})  # one of the colliding words is found, wherever it occurs


def test_no_match_and_words_longer_than_the_text_give_zeros():
    module = SoftLexicon(_table([(2, 3, 4, 5)]), torch.tensor([1.0]), dim=2)
    assert module.match(torch.tensor([[2, 3]])) == []
    assert torch.equal(module(torch.tensor([[2, 3]])), torch.zeros(1, 2, 8))
    assert torch.equal(module(torch.tensor([[5, 4, 3, 2]])), torch.zeros(1, 4, 8))


def test_projected_pooling_uses_the_projected_vectors():
    torch.manual_seed(1)
    words, z = [(2, 3), (3,), (2, 3, 4)], [1.0, 2.0, 3.0]
    module = SoftLexicon(_table(words), torch.tensor(z), dim=5, proj=3)
    assert module.out_dim == 12
    text = [2, 3, 4, 3, 2, 3]
    with torch.no_grad():
        out = module(_pad([text]))[0]
        e = module.project(module.embedding.weight)
    assert torch.allclose(out.double(), reference_pool(text, words, z, e, len(text)), atol=1e-5)


def test_gradient_reaches_only_the_matched_words():
    torch.manual_seed(2)
    words = [(2, 3), (4,), (5, 6), (3, 2, 3)]
    module = SoftLexicon(_table(words), torch.tensor([1.0, 2.0, 1.0, 3.0]), dim=4)
    ids = _pad([[2, 3, 4, 4], [3, 2, 3]])  # (5, 6) never occurs
    (module(ids) * torch.randn(2, 4, 16)).sum().backward()
    grad = module.embedding.weight.grad
    assert grad is not None
    norms = grad.abs().sum(1)
    assert norms[0] > 0 and norms[1] > 0 and norms[3] > 0
    assert norms[2] == 0


def test_a_loaded_state_replaces_the_lookup_built_before():
    """The hash index is built on first use; loading other words of the same count must rebuild it."""
    torch.manual_seed(3)
    trained = SoftLexicon(_table([(2, 3), (4, 5)]), torch.tensor([1.0, 1.0]), dim=3)
    stale = SoftLexicon(_table([(6, 7), (8, 9)]), torch.tensor([1.0, 1.0]), dim=3)
    ids = torch.tensor([[2, 3, 4, 5, 6, 7]])
    assert not stale(ids)[0, :4].any()  # its own index matches only (6, 7)
    stale.load_state_dict(trained.state_dict())
    assert torch.equal(stale(ids), trained(ids))
    assert trained(ids)[0, :4].abs().sum() > 0


# ---- bigrams ---------------------------------------------------------------------------------------
def reference_bigrams(texts: list[list[int]], pairs: list[tuple[int, int]], weight: torch.Tensor, T: int) -> torch.Tensor:
    row = {p: i + 1 for i, p in enumerate(pairs)}
    out = torch.zeros(len(texts), T, weight.shape[1])
    for b, text in enumerate(texts):
        for t in range(len(text) - 1):
            out[b, t] = weight[row.get((text[t], text[t + 1]), 0)]
    return out


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(2, 6), st.integers(2, 6)), min_size=0, max_size=10, unique=True),
    st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=9), min_size=1, max_size=3),
)
def test_bigram_lookup_equals_a_dict(pairs, texts):
    """Pairs are stored in any order; a text's last character and unknown pairs read row 0 (zero)."""
    torch.manual_seed(0)
    module = BigramEmbedding(torch.tensor(pairs, dtype=torch.long).reshape(-1, 2), dim=3)
    assert not module.embedding.weight[0].any()
    ids = _pad(texts)
    with torch.no_grad():
        out = module(ids)
    expect = reference_bigrams(texts, pairs, module.embedding.weight.detach(), ids.shape[1])
    assert torch.equal(out, expect)


def test_bigram_last_character_and_unknown_pairs_are_zero():
    module = BigramEmbedding(torch.tensor([[3, 4], [2, 3]]), dim=2)
    with torch.no_grad():
        module.embedding.weight[1:] = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
        out = module(torch.tensor([[2, 3, 4, 5], [3, 4, 0, 0]]))
    assert out[0, :, 0].tolist() == [2.0, 1.0, 0.0, 0.0]  # (4, 5) is unknown, 5 is the last character
    assert out[1, :, 0].tolist() == [1.0, 0.0, 0.0, 0.0]  # 4 is the last real character, then padding
    assert torch.equal(BigramEmbedding.empty(0, 2)(torch.tensor([[2, 3]])), torch.zeros(1, 2, 2))
