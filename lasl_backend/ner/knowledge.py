"""What knowledge a char model starts from, and building it into the encoder's modules.

``KnowledgeConfig`` names the sources (LAC character vectors, the lexicons, bigrams); ``load_knowledge``
reads those that are installed and warns once for each that is not, so a site without the packages still
trains the plain model. The builders turn the sources into weights the checkpoint carries (rows of the
model's own vocabulary, the lexicon words its texts contain), so a saved model needs none of the packages.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..knowledge import SOURCES, KnowledgeUnavailable, LacTable, Lexicon, LexiconError, build_lexicon, file_sha256, load_lac_table, read_term_file
from .bigrams import BigramEmbedding
from .encoders import CharBiLSTMEncoder
from .softlexicon import SoftLexicon
from .vocab import CharVocab

log = logging.getLogger(__name__)
_warned: set[str] = set()
_warn_lock = threading.Lock()

CHAR_VECTORS = ("lac", "none")
BIGRAM_MIN_COUNT = 2


@dataclass(frozen=True)
class KnowledgeConfig:
    """``char_vectors``: "lac" or "none"; ``lexicon_sources``: packaged lexicons (``knowledge.SOURCES``);
    ``lexicon_file``: the user's term file; ``bigrams``: character bigram embeddings."""

    char_vectors: str = "none"
    lexicon_sources: tuple[str, ...] = ()
    lexicon_file: str | None = None
    bigrams: bool = False
    cache: str | None = None
    #: width the soft-lexicon word vectors are projected to before pooling (None: LAC's 128); 50 as in SoftLexicon
    lexicon_proj: int | None = 50
    #: LAC's vectors rescaled to this standard deviation (1 is the scale of random rows); None keeps LAC's own
    #: (0.17), which measured better on the dev split (docs/results.md, Knowledge)
    lac_std: float | None = None

    def __post_init__(self) -> None:
        if self.char_vectors not in CHAR_VECTORS:
            raise ValueError(f"char vectors {self.char_vectors!r}: expected one of {', '.join(CHAR_VECTORS)}")
        unknown = set(self.lexicon_sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"lexicon sources {sorted(unknown)}: expected some of {', '.join(SOURCES)}")

    @property
    def uses_lexicon(self) -> bool:
        return bool(self.lexicon_sources or self.lexicon_file)

    @property
    def is_plain(self) -> bool:
        return self.char_vectors == "none" and not self.uses_lexicon and not self.bigrams


#: what a fresh char model starts from unless told otherwise (chosen by measurement: docs/results.md, Knowledge)
DEFAULT_KNOWLEDGE = KnowledgeConfig(char_vectors="lac")


def parse_sources(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"lac,jieba"`` → ("lac", "jieba"); "", "none" or None → ()."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(s.strip().lower() for s in items if s.strip())
    return () if names == ("none",) else names


@dataclass
class Knowledge:
    """The sources a run could read: LAC's table and the merged lexicon, each None when unavailable."""

    lac: LacTable | None
    lexicon: Lexicon | None


def warn_once(message: str, consequence: str = "the model trains without it") -> None:
    """One warning per process for each missing source: a site without a package hears it once."""
    with _warn_lock:
        if message in _warned:
            return
        _warned.add(message)
    log.warning("%s; %s", message, consequence)


def load_knowledge(cfg: KnowledgeConfig) -> Knowledge:
    """The installed sources of ``cfg``; a bad user term file raises ``knowledge.LexiconError``."""
    lac = None
    if cfg.char_vectors == "lac" or cfg.uses_lexicon or cfg.bigrams:
        try:
            lac = load_lac_table(cfg.cache)  # type: ignore[arg-type]
        except KnowledgeUnavailable as exc:
            warn_once(f"LAC vectors: {exc}")
        else:
            lac = lac.scaled_to(cfg.lac_std) if cfg.lac_std else lac
    lexicon = None
    if cfg.uses_lexicon:
        lexicon, missing = build_lexicon(cfg.lexicon_sources, cfg.lexicon_file, lac)
        for note in missing:
            warn_once(note)
        if not len(lexicon):
            lexicon = None
    return Knowledge(lac, lexicon)


# ---- character vectors ---------------------------------------------------------------------------
def vector_rows(tokens: Sequence[str], lac: LacTable | None, dim: int) -> tuple[torch.Tensor, int]:
    """Initial rows for ``tokens``: LAC's vector where it has one (of ``dim`` wide), else the mean of
    LAC's vectors of the token's characters, else random at LAC's scale. Returns (rows, how many from LAC)."""
    std = float(lac.vectors.std()) if lac is not None else 1.0
    rows = torch.randn(len(tokens), dim) * std
    if lac is None or lac.dim != dim or not tokens:
        return rows, 0
    found_rows, found = lac.rows(list(tokens))
    rows[torch.from_numpy(found)] = torch.from_numpy(found_rows[found])
    for i in np.flatnonzero(~found):
        chars = [r for r in (lac.row(c) for c in tokens[i]) if r is not None]
        if len(tokens[i]) > 1 and chars:
            rows[i] = torch.from_numpy(lac.vectors[chars].mean(0))
    return rows, int(found.sum())


def lac_char_rows(chars: Sequence[str], lac: LacTable, std: float) -> tuple[torch.Tensor, int]:
    """Rows for ``chars``: LAC's vector where it has one, else random at ``std``; with how many LAC had."""
    found_rows, found = lac.rows(list(chars))
    rows = torch.randn(len(chars), lac.dim) * std
    rows[torch.from_numpy(found)] = torch.from_numpy(found_rows[found])
    return rows, int(found.sum())


def init_char_rows(weight: torch.Tensor, chars: Sequence[str], first_row: int, lac: LacTable | None) -> int:
    """Overwrite rows ``first_row``.. of a char embedding with LAC's vectors of ``chars``; how many it had."""
    if lac is None or lac.dim != weight.shape[1]:
        return 0
    rows, n = lac_char_rows(chars, lac, float(lac.vectors.std()))
    with torch.no_grad():
        weight[first_row : first_row + len(chars)] = rows.to(weight.device, weight.dtype)
    return n


# ---- the soft lexicon ----------------------------------------------------------------------------
def term_counts(texts: Iterable[str], terms: Lexicon, known: set[str] | None = None) -> Counter[str]:
    """Every lexicon term found in ``texts`` (leaving out ``known``), with 1 + the number of its occurrences
    that no longer match covers: SoftLexicon's rule, so that "胃" inside "胃癌" does not count for "胃", and a
    single character's weight is not its every occurrence. The 1 keeps a term found only inside longer
    ones in the pooling."""
    index = _prefix_lengths(terms)
    counts: Counter[str] = Counter()
    for text in texts:
        found = _matches(text, terms.counts, index)
        for (s, e), covered in zip(found, _covered(found, len(text))):
            w = text[s:e]
            if known is not None and w in known:
                continue
            counts[w] += 0 if covered else 1
    for w in counts:
        counts[w] += 1
    return counts


def _prefix_lengths(terms: Lexicon) -> dict[str, list[int]]:
    """The lengths of the terms of two characters or more, by their first two characters."""
    by_prefix: dict[str, set[int]] = {}
    for t in terms.counts:
        if len(t) > 1:
            by_prefix.setdefault(t[:2], set()).add(len(t))
    return {p: sorted(ls) for p, ls in by_prefix.items()}


def _matches(text: str, words: dict[str, float], index: dict[str, list[int]]) -> list[tuple[int, int]]:
    """(start, end) of every lexicon term occurring in ``text``, overlapping ones too."""
    out = []
    for i in range(len(text)):
        if text[i] in words:
            out.append((i, i + 1))
        for L in index.get(text[i : i + 2], ()):
            if i + L <= len(text) and text[i : i + L] in words:
                out.append((i, i + L))
    return out


def _covered(matches: list[tuple[int, int]], n: int) -> list[bool]:
    """For each match, whether another, longer match contains it."""
    longest = [0] * (n + 1)  # the furthest end of a match starting at each position
    for s, e in matches:
        longest[s] = max(longest[s], e)
    reach, before = 0, [0] * (n + 1)  # the furthest end of a match starting before each position
    for i in range(n + 1):
        before[i] = reach
        reach = max(reach, longest[i])
    return [before[s] >= e or longest[s] > e for s, e in matches]


def _word_rows(words: Sequence[str], vocab: CharVocab, lexicon: Lexicon, counts: Counter[str], max_chars: int) -> tuple[torch.Tensor, torch.Tensor]:
    chars = torch.zeros(len(words), max_chars, dtype=torch.long)
    weight = torch.zeros(len(words))
    for i, w in enumerate(words):
        chars[i, : len(w)] = torch.tensor(vocab.encode(w))
        weight[i] = counts[w] + lexicon.counts.get(w, 0.0)
    return chars, weight


def _in_vocab(words: Iterable[str], vocab: CharVocab) -> list[str]:
    return sorted(w for w in words if all(c in vocab.stoi for c in w))


def build_soft_lexicon(knowledge: Knowledge, vocab: CharVocab, texts: Sequence[str], dim: int = 128, proj: int | None = None) -> SoftLexicon | None:
    """The lexicon words that occur in ``texts``, weighted by their count there, with LAC-initialised vectors."""
    if knowledge.lexicon is None:
        return None
    counts = term_counts(texts, knowledge.lexicon)
    words = _in_vocab(counts, vocab)
    if not words:
        return None
    max_chars = max(len(w) for w in words)
    chars, weight = _word_rows(words, vocab, knowledge.lexicon, counts, max_chars)
    module = SoftLexicon(chars, weight, dim, proj)
    rows, from_lac = vector_rows(words, knowledge.lac, dim)
    with torch.no_grad():
        module.embedding.weight.copy_(rows)
    log.info("soft lexicon: %d words found in %d texts (%d with a LAC vector)", len(words), len(texts), from_lac)
    return module


def extend_soft_lexicon(module: SoftLexicon, knowledge: Knowledge, vocab: CharVocab, texts: Sequence[str], known_words: list[str]) -> SoftLexicon:
    """``module`` with rows for lexicon words first found in ``texts`` (old rows and weights unchanged)."""
    if knowledge.lexicon is None:
        return module
    counts = term_counts(texts, knowledge.lexicon, known=set(known_words))
    new = _in_vocab(counts, vocab)
    if not new:
        return module
    max_chars = max(module.max_chars, max(len(w) for w in new))
    chars, weight = _word_rows(new, vocab, knowledge.lexicon, counts, max_chars)
    old_chars = torch.nn.functional.pad(module.word_chars.cpu(), (0, max_chars - module.max_chars))
    proj = module.project.out_features if module.project is not None else None
    grown = SoftLexicon(torch.cat([old_chars, chars]), torch.cat([module.weight.cpu(), weight]), module.dim, proj)
    rows, _ = vector_rows(new, knowledge.lac, module.dim)
    with torch.no_grad():
        if module.project is not None and grown.project is not None:
            grown.project.load_state_dict(module.project.state_dict())
        grown.embedding.weight[: module.num_words] = module.embedding.weight.detach().cpu()
        grown.embedding.weight[module.num_words :] = rows
    return grown.to(module.word_chars.device)


def lexicon_words(module: SoftLexicon, vocab: CharVocab) -> list[str]:
    """The module's words as strings (rebuilt from their character ids)."""
    itos = vocab.itos
    return ["".join(itos[i] for i in row if i > 0) for row in module.word_chars.tolist()]


# ---- bigrams -------------------------------------------------------------------------------------
def _pair_counts(texts: Iterable[str], vocab: CharVocab) -> Counter[tuple[int, int]]:
    counts: Counter[tuple[int, int]] = Counter()
    for t in texts:
        ids = vocab.encode(t)
        counts.update(p for p in zip(ids, ids[1:]) if p[0] > 1 and p[1] > 1)
    return counts


def build_bigrams(knowledge: Knowledge, vocab: CharVocab, texts: Sequence[str], dim: int = 128, known: set[tuple[int, int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs seen at least ``BIGRAM_MIN_COUNT`` times in ``texts`` (and not in ``known``), with initial rows."""
    pairs = sorted(p for p, k in _pair_counts(texts, vocab).items() if k >= BIGRAM_MIN_COUNT and (known is None or p not in known))
    itos = vocab.itos
    rows, _ = vector_rows([itos[a] + itos[b] for a, b in pairs], knowledge.lac, dim)
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2), rows


def new_bigram_module(knowledge: Knowledge, vocab: CharVocab, texts: Sequence[str], dim: int = 128) -> BigramEmbedding:
    pairs, rows = build_bigrams(knowledge, vocab, texts, dim)
    module = BigramEmbedding(pairs, dim)
    with torch.no_grad():
        module.embedding.weight[1:] = rows
    return module


def extend_bigrams(module: BigramEmbedding, knowledge: Knowledge, vocab: CharVocab, texts: Sequence[str]) -> BigramEmbedding:
    known = {tuple(p) for p in module.pairs.tolist()}
    pairs, rows = build_bigrams(knowledge, vocab, texts, module.dim, known=known)  # type: ignore[arg-type]
    if not len(pairs):
        return module
    grown = BigramEmbedding(torch.cat([module.pairs.cpu(), pairs]), module.dim)
    with torch.no_grad():
        grown.embedding.weight[: module.count + 1] = module.embedding.weight.detach().cpu()
        grown.embedding.weight[module.count + 1 :] = rows
    return grown.to(module.pairs.device)


# ---- the whole char encoder ----------------------------------------------------------------------
def build_char_encoder(vocab: CharVocab, texts: Sequence[str], cfg: KnowledgeConfig, emb_dim: int = 128, hidden: int = 200, dropout: float = 0.2) -> CharBiLSTMEncoder:
    """A fresh char encoder with what ``cfg`` asks for and the installed packages give."""
    if cfg.is_plain:
        return CharBiLSTMEncoder(len(vocab), emb_dim=emb_dim, hidden=hidden, dropout=dropout)
    kn = load_knowledge(cfg)
    bigrams = new_bigram_module(kn, vocab, texts, emb_dim) if cfg.bigrams else None
    lexicon = build_soft_lexicon(kn, vocab, texts, kn.lac.dim if kn.lac is not None else emb_dim, proj=cfg.lexicon_proj)
    meta = knowledge_meta(cfg, kn, lexicon is not None)
    enc = CharBiLSTMEncoder(len(vocab), emb_dim=emb_dim, hidden=hidden, dropout=dropout, bigrams=bigrams, lexicon=lexicon, knowledge=meta)
    if meta.get("char_vectors") == "lac":
        enc.knowledge["lac_chars"] = init_char_rows(enc.embedding.weight, vocab.to_list(), 2, kn.lac)
    return enc


def knowledge_meta(cfg: KnowledgeConfig, kn: Knowledge, has_lexicon: bool) -> dict[str, Any]:
    """What the checkpoint records of the sources: versions, the lexicon's origin and the term file's hash."""
    meta: dict[str, Any] = {"char_vectors": cfg.char_vectors if kn.lac is not None else "none"}
    if kn.lac is not None:
        meta["lac_version"] = kn.lac.version
        meta["lac_std"] = cfg.lac_std
    if has_lexicon and kn.lexicon is not None:
        meta["lexicon_sources"] = list(kn.lexicon.sources)
        if kn.lexicon.user_file:
            meta["lexicon_file"] = kn.lexicon.user_file
            meta["lexicon_sha256"] = kn.lexicon.user_sha256
    return meta


def grow_char_encoder(student: CharBiLSTMEncoder, teacher: CharBiLSTMEncoder | None, vocab: CharVocab, n_new_chars: int, texts: Sequence[str], cfg: KnowledgeConfig | None) -> None:
    """Fine-tuning on new texts: new characters get rows (LAC's when the model started from LAC), and new
    lexicon words and bigrams get theirs; the teacher's new rows start equal to the student's."""
    uses_lac = student.knowledge.get("char_vectors") == "lac"
    needs = uses_lac or student.lexicon is not None or student.bigrams is not None
    kn = _growth_knowledge(cfg, student) if needs else Knowledge(None, None)
    if n_new_chars:
        rows = _new_char_rows(vocab.itos[-n_new_chars:], kn.lac, student) if uses_lac else None
        student.grow_vocab(len(vocab), rows)
        if teacher is not None:
            teacher.grow_vocab(len(vocab))
            with torch.no_grad():
                teacher.embedding.weight[-n_new_chars:] = student.embedding.weight[-n_new_chars:]
            teacher.embedding.weight.requires_grad_(False)  # the teacher changes by the EMA only
    if student.lexicon is not None:
        old = student.lexicon.num_words
        student.lexicon = extend_soft_lexicon(student.lexicon, kn, vocab, texts, lexicon_words(student.lexicon, vocab))
        if teacher is not None and teacher.lexicon is not None:
            teacher.lexicon = _grown_copy(student.lexicon, teacher.lexicon, old)
    if student.bigrams is not None:
        old = student.bigrams.count + 1
        student.bigrams = extend_bigrams(student.bigrams, kn, vocab, texts)
        if teacher is not None and teacher.bigrams is not None:
            teacher.bigrams = _grown_copy(student.bigrams, teacher.bigrams, old)


def _growth_knowledge(cfg: KnowledgeConfig | None, student: CharBiLSTMEncoder) -> Knowledge:
    """The sources to grow a trained encoder from. A term file the model recorded but that is gone or
    unreadable now is warned about and left out: the model keeps the terms it has. The run's own term
    file must read (a ``LexiconError`` says where it does not)."""
    sources = dataclasses.replace(_continuing(cfg, student), lac_std=student.knowledge.get("lac_std"))  # new rows at the model's scale
    try:
        return load_knowledge(sources)
    except LexiconError as exc:
        if cfg is not None and cfg.lexicon_file == sources.lexicon_file:
            raise
        warn_once(str(exc), "the model keeps the terms it has")
        return load_knowledge(dataclasses.replace(sources, lexicon_file=None))


def _continuing(cfg: KnowledgeConfig | None, student: CharBiLSTMEncoder) -> KnowledgeConfig:
    """The sources to extend a trained encoder from: the run's, else those the model recorded."""
    if cfg is not None and not cfg.is_plain:
        return cfg
    meta = student.knowledge
    return KnowledgeConfig(char_vectors=meta.get("char_vectors", "none"), lexicon_sources=tuple(meta.get("lexicon_sources", ())),
                           lexicon_file=meta.get("lexicon_file"), bigrams=student.bigrams is not None, cache=cfg.cache if cfg else None)


def _new_char_rows(chars: Sequence[str], lac: LacTable | None, student: CharBiLSTMEncoder) -> torch.Tensor | None:
    """A fine-tuned model's new characters: LAC's rows, random ones at the scale of the trained rows."""
    if lac is None or lac.dim != student.embedding.embedding_dim:
        return None
    return lac_char_rows(chars, lac, float(student.embedding.weight[2:].detach().std()))[0]


def _grown_copy(grown: torch.nn.Module, previous: torch.nn.Module, old_rows: int) -> torch.nn.Module:
    """A teacher's copy of a grown student table: the teacher's own weights and old rows, the student's new rows."""
    if grown.embedding.num_embeddings == previous.embedding.num_embeddings:  # type: ignore[union-attr]
        return previous
    copy_ = copy.deepcopy(grown)
    mine = dict(previous.named_parameters())
    with torch.no_grad():
        for name, p in copy_.named_parameters():
            if name == "embedding.weight":
                p[:old_rows] = mine[name][:old_rows]
            else:
                p.copy_(mine[name])
            p.requires_grad_(False)
    return copy_


def check_term_file(path: str | Path) -> int:
    """How many terms a user's term file holds; a bad line raises ``LexiconError`` with file and line."""
    return len(read_term_file(Path(path)))


def report_lexicon_drift(where: object, meta: dict[str, Any]) -> str | None:
    """Warn when the term file a model was trained with changed or went away since; the model still
    loads and predicts with the terms it holds. Returns the warning, or None."""
    path, recorded = meta.get("lexicon_file"), meta.get("lexicon_sha256")
    if not path or not recorded:
        return None
    try:
        current = file_sha256(Path(path))
    except LexiconError:
        message = f"{where}: trained with the term file {path}, which is no longer readable; the model keeps the terms it learned"
    else:
        if current == recorded:
            return None
        message = f"{where}: the term file {path} changed since this model was trained; it keeps the terms it learned until the next training run"
    log.warning("%s", message)
    return message
