"""CoNLL-style files: one character and its tag per line, a blank line between records.

The usual shape of Chinese NER corpora (BIO, BIOES, BMES, BILOU)::

    患 O
    者 O
    糖 B-疾病和诊断
    尿 I-疾病和诊断
    病 E-疾病和诊断

* A line holds a token and a tag separated by whitespace. With more columns (``患 O X O``) the token
  is the first field and the tag the last; the columns between are ignored.
* A whitespace-only line ends a record; the file may or may not end with one.
* Tags are ``O`` or a prefix ``B``, ``I``, ``M``, ``E``, ``S`` (``L`` read as ``E``, ``U`` as ``S``),
  uppercase, then ``-`` or ``_``, then the label. Anything else is an error naming ``file:line``.
* The record's text is its tokens joined with ``""``: offsets are code points of that text, ``end``
  exclusive. Multi-character tokens are joined the same way, with a note, since a space between them
  would be a guess.
* Whitespace characters in the text cannot be represented: a token that is a space leaves a line with
  one field, which is an error. Character-level corpora drop them, so they are not expected.
* An ``I-``/``M-``/``E-`` that does not continue an open entity of its label starts one (as conlleval
  reads it); such repairs are counted in one note, never silent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..data import DataError, Entity, Record, validate_entities
from .base import Loaded, ReadOptions

_PREFIXED = re.compile(r"([BIMESLU])[-_](\S+)")
_ALIAS = {"L": "E", "U": "S"}
_CONTINUES = frozenset("IME")
_CLOSES = frozenset("ES")

Tag = tuple[str, str]  # (prefix in "OBIMES", label; "" for O)
Line = tuple[int, str, Tag]  # (line number, token, tag)


def parse_tag(tag: str) -> Tag | None:
    """``(prefix, label)`` with aliases folded to BIOES, or None when ``tag`` is not a tag this reads."""
    if tag == "O":
        return ("O", "")
    m = _PREFIXED.fullmatch(tag)
    if m is None:
        return None
    return (_ALIAS.get(m.group(1), m.group(1)), m.group(2))


def _split(line: str) -> tuple[str, str] | None:
    """The token (first field) and the tag (last field), or None for a line with a single field."""
    fields = line.split()
    return (fields[0], fields[-1]) if len(fields) >= 2 else None


def looks_like_bio(first_lines: list[str]) -> bool:
    """Whether a file's first lines read as token-and-tag lines: format auto-detection asks this."""
    lines = [ln for ln in first_lines if ln.strip()]
    pairs = [_split(ln) for ln in lines]
    return bool(lines) and all(p is not None and parse_tag(p[1]) is not None for p in pairs)


def _parse_line(path: Path, lineno: int, line: str) -> Line:
    """One non-blank line as (line number, token, tag), or a DataError naming ``file:line``."""
    pair = _split(line)
    if pair is None:
        got = line.rstrip("\r\n")
        raise DataError(f"{path}:{lineno}: expected a token and a tag separated by whitespace, got {got!r} "
                        "(a whitespace token cannot be represented)")
    tag = parse_tag(pair[1])
    if tag is None:
        raise DataError(f"{path}:{lineno}: tag {pair[1]!r} is not O or B-/I-/M-/E-/S-<label>")
    return (lineno, pair[0], tag)


def _blocks(path: Path) -> Iterator[list[Line]]:
    """The file's records, each the parsed lines between blank lines (runs of blank lines are one gap)."""
    block: list[Line] = []
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    block.append(_parse_line(path, lineno, line))
                elif block:
                    yield block
                    block = []
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if block:
        yield block


def decode(tokens: list[str], tags: list[Tag]) -> tuple[list[Entity], int]:
    """Spans (code-point offsets of ``"".join(tokens)``) and how many I/M/E tags had to start an entity."""
    ents: list[Entity] = []
    repairs = 0
    open_: tuple[int, str] | None = None  # (start, label) of the entity being read
    pos = 0
    for token, (prefix, label) in zip(tokens, tags):
        if not (prefix in _CONTINUES and open_ is not None and open_[1] == label):
            if open_ is not None:
                ents.append(Entity(open_[0], pos, open_[1]))
            if prefix in _CONTINUES:
                repairs += 1
            open_ = None if prefix == "O" else (pos, label)
        pos += len(token)
        if prefix in _CLOSES and open_ is not None:
            ents.append(Entity(open_[0], pos, label))
            open_ = None
    if open_ is not None:
        ents.append(Entity(open_[0], pos, open_[1]))
    return ents, repairs


def read(path: Path, options: ReadOptions) -> Loaded:
    """Every record of a BIO/BIOES/BMES file, with notes for tags read leniently and joined tokens."""
    records: list[Record] = []
    repairs = 0
    multichar = False
    for block in _blocks(path):
        first = block[0][0]
        tokens = [tok for _, tok, _ in block]
        ents, fixed = decode(tokens, [tag for _, _, tag in block])
        text = "".join(tokens)
        repairs += fixed
        multichar = multichar or any(len(tok) > 1 for tok in tokens)
        records.append(Record(f"{path.name}:{first}", text, validate_entities(text, ents, where=f"{path}:{first}")))
    notes = []
    if repairs:
        notes.append(f"{repairs} I-/M-/E- tags started an entity without a B- (read as its start)")
    if multichar:
        notes.append("multi-character tokens were joined without spaces (offsets count code points of the joined text)")
    return Loaded(records, "bio", skipped=[], notes=notes)
