"""JSON or JSONL records with span lists, in the shapes Chinese (medical) NER corpora ship in.

The file is a JSON array of record objects or JSONL (one object a line, blank lines skipped), told apart
by its first non-whitespace character (``[``: an array). Each record holds its text under the first of
``text``, ``originalText``, ``sentence``, ``content``, ``raw_text`` present (or exactly under
``ReadOptions.text_key``), its id under ``id``, ``guid``, ``doc_id`` or ``text_id`` (else file and line),
and its spans in one of two shapes:

* a span list, under the first of ``entities``, ``spans``, ``ner``, ``labels``, ``annotations`` that is a
  list of objects. A span is ``{start, end, label[, mention]}`` with the start under ``start``,
  ``start_idx``, ``start_pos``, ``start_offset`` or ``begin``; the end under ``end``, ``end_idx``,
  ``end_pos`` or ``end_offset``; the label under ``label``, ``type``, ``label_type``, ``entity_type``,
  ``category`` or ``tag``; the mention under ``text``, ``entity``, ``mention``, ``span`` or ``value`` --
  or the list ``[start, end, label]`` / ``[start, end, label, mention]``. Yidu-S4K:
  ``{"originalText", "entities": [{"label_type", "start_pos", "end_pos"}]}``, ends exclusive; CMeEE:
  ``{"text", "entities": [{"start_idx", "end_idx", "type", "entity"}]}``, ends inclusive.
* CLUENER: ``{"text", "label": {label: {mention: [[start, end], ...]}}}``, ends inclusive.

Offsets are code points (Python ``str`` indices). Whether an end points past the last character or at it
is ``ReadOptions.end``; ``auto`` checks every span that carries a mention against the text both ways, over
the whole file, and takes the way more of them match (a tie, or no mentions: exclusive), with a note.

A span that repeats or overlaps an earlier one is left out and reported with its place. A span that does
not fit its text (non-integer offsets, no label, outside the text, empty, reversed, a mention that does
not match its offsets) leaves its whole record out, reported with the first such span: the annotator
marked an entity there, and the record's other spans alone would teach its characters as no entity. A
record without a text, or without any span key, stops the read: training on it would teach blanks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import DataError, Entity, Record, drop_overlaps, validate_entities
from .base import Loaded, ReadOptions
from .jsonfile import read_objects

TEXT_KEYS = ("text", "originalText", "sentence", "content", "raw_text")
SPAN_LIST_KEYS = ("entities", "spans", "ner", "labels", "annotations")
START_KEYS = ("start", "start_idx", "start_pos", "start_offset", "begin")
END_KEYS = ("end", "end_idx", "end_pos", "end_offset")
LABEL_KEYS = ("label", "type", "label_type", "entity_type", "category", "tag")
MENTION_KEYS = ("text", "entity", "mention", "span", "value")
ID_KEYS = ("id", "guid", "doc_id", "text_id")
OVERLAP = "overlaps an earlier span (nested or overlapping spans cannot be BIO-tagged)"


@dataclass(frozen=True)
class _Span:
    """One span as the file gives it, its end not yet read as exclusive or inclusive."""

    place: str
    start: int
    end: int
    label: str
    mention: str | None

    def describe(self) -> str:
        return f"{self.place} [{self.start}, {self.end}, {self.label!r}]"


@dataclass
class _Parsed:
    """A record's place, id, text and spans: the first pass, before the end convention is chosen."""

    where: str
    rid: str
    text: str
    spans: list[_Span]
    #: why spans of the record could not be read at all (each with its place)
    misfits: list[str]


def read(path: Path, options: ReadOptions) -> Loaded:
    """Read every record, choose the end convention over the whole file, then build the entities."""
    skipped: list[str] = []
    parsed = [_parse_record(where, fallback, obj, options) for where, fallback, obj in read_objects(path)]
    inclusive, note = _end_convention(parsed, options.end)
    built = (_build(p, inclusive, skipped) for p in parsed)
    return Loaded([r for r in built if r is not None], "spans", skipped, [note] if note else [])


def looks_like_spans(obj: object) -> bool:
    """Whether a parsed JSON record has a text and spans in a shape ``read`` takes (format detection)."""
    if not isinstance(obj, dict):
        return False
    key = _first_present(obj, TEXT_KEYS)
    if key is None or not isinstance(obj[key], str):
        return False
    return _span_list_key(obj) is not None or isinstance(obj.get("label"), dict)


# ---------------------------------------------------------------- one record: text, id, spans


def _parse_record(where: str, fallback: str, obj: object, options: ReadOptions) -> _Parsed:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = _text_of(obj, where, options.text_key)
    misfits: list[str] = []
    return _Parsed(where, _id_of(obj, fallback), text, _spans_of(obj, where, misfits), misfits)


def _first_present(obj: dict, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in obj), None)


def _text_of(obj: dict, where: str, text_key: str | None) -> str:
    """The text, which a record cannot do without: its absence means the file is not what it seems."""
    keys = (text_key,) if text_key else TEXT_KEYS
    key = _first_present(obj, keys)
    if key is None:
        raise DataError(f"{where}: no text under {' / '.join(keys)}; the record has keys: {', '.join(obj)}")
    if not isinstance(obj[key], str):
        raise DataError(f"{where}: the text under {key!r} is {type(obj[key]).__name__}, not a string")
    return obj[key]


def _id_of(obj: dict, fallback: str) -> str:
    return next((str(obj[k]) for k in ID_KEYS if obj.get(k) not in (None, "")), fallback)


def _is_span_list(value: object) -> bool:
    """A list of span objects or span lists (an empty one too); ``labels: ["疾病", ...]`` is a label set."""
    return isinstance(value, list) and (not value or any(isinstance(x, (dict, list)) for x in value))


def _span_list_key(obj: dict) -> str | None:
    return next((k for k in SPAN_LIST_KEYS if _is_span_list(obj.get(k))), None)


def _spans_of(obj: dict, where: str, misfits: list[str]) -> list[_Span]:
    """The record's spans in whichever shape it has; no span key at all is an error, not a blank record."""
    key = _span_list_key(obj)
    if key is not None:
        found = (_list_item(item, f"{where}: span {n}", misfits) for n, item in enumerate(obj[key], 1))
        return [s for s in found if s is not None]
    if isinstance(obj.get("label"), dict):
        return _cluener_spans(obj["label"], where, misfits)
    raise DataError(f"{where}: no span list (a list under {' / '.join(SPAN_LIST_KEYS)}) and no CLUENER "
                    f"'label' dict; the record has keys: {', '.join(obj)}")


def _value(item: dict, keys: tuple[str, ...]) -> object:
    key = _first_present(item, keys)
    return None if key is None else item[key]


def _list_item(item: object, place: str, misfits: list[str]) -> _Span | None:
    """A span object, or ``[start, end, label(, mention)]``."""
    if isinstance(item, dict):
        fields = [_value(item, keys) for keys in (START_KEYS, END_KEYS, LABEL_KEYS, MENTION_KEYS)]
    elif isinstance(item, list) and len(item) in (3, 4):
        fields = (list(item) + [None])[:4]
    else:
        misfits.append(f"{place}: {item!r} is neither a span object nor [start, end, label(, mention)]")
        return None
    return _make_span(place, *fields, misfits=misfits)


def _cluener_spans(labels: dict, where: str, misfits: list[str]) -> list[_Span]:
    """CLUENER's ``label -> mention -> [[start, end], ...]``; a malformed entry is a misfit, noted in ``misfits``."""
    spans: list[_Span] = []
    for label, mentions in labels.items():
        if not isinstance(mentions, dict):
            misfits.append(f"{where}: label {label!r}: expected {{mention: [[start, end], ...]}}, "
                           f"got {type(mentions).__name__}")
            continue
        for mention, pairs in mentions.items():
            spans.extend(_cluener_pairs(label, mention, pairs, f"{where}: {mention!r}", misfits))
    return spans


def _cluener_pairs(label: str, mention: str, pairs: object, place: str, misfits: list[str]) -> list[_Span]:
    if not isinstance(pairs, list):
        misfits.append(f"{place}: expected a list of [start, end] pairs, got {type(pairs).__name__}")
        return []
    out: list[_Span] = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2):
            misfits.append(f"{place}: {pair!r} is not a [start, end] pair")
            continue
        span = _make_span(place, pair[0], pair[1], label, mention, misfits=misfits)
        if span is not None:
            out.append(span)
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _make_span(place: str, start: object, end: object, label: object, mention: object, *,
               misfits: list[str]) -> _Span | None:
    """A span whose fields have usable types; one that has not is noted in ``misfits``, never guessed at."""
    why = next((f"{name} {v!r} is not an integer" for name, v in (("start", start), ("end", end))
                if not _is_int(v)), None)
    if why is None and not (isinstance(label, str) and label.strip()):
        why = "no label" if label is None else f"label {label!r} is not a non-empty string"
    if why is not None:
        misfits.append(f"{place}: {why}")
        return None
    assert isinstance(start, int) and isinstance(end, int) and isinstance(label, str)
    return _Span(place, start, end, label, mention if isinstance(mention, str) and mention else None)


# ---------------------------------------------------------------- the end convention, then the entities


def _matches(text: str, span: _Span, inclusive: bool) -> bool:
    end = span.end + 1 if inclusive else span.end
    return 0 <= span.start < end <= len(text) and text[span.start : end] == span.mention


def _end_convention(parsed: list[_Parsed], end: str) -> tuple[bool, str | None]:
    """Whether ends are inclusive, and the note when it was decided from the mentions rather than told."""
    if end not in ("auto", "exclusive", "inclusive"):
        raise DataError(f"unknown end convention {end!r}; known: auto, exclusive, inclusive")
    if end != "auto":
        return end == "inclusive", None
    with_mention = [(p.text, s) for p in parsed for s in p.spans if s.mention is not None]
    if not with_mention:
        return False, "span ends read as exclusive (no span carries a mention to check them on)"
    exclusive = sum(_matches(text, s, False) for text, s in with_mention)
    inclusive = sum(_matches(text, s, True) for text, s in with_mention)
    name = "inclusive" if inclusive > exclusive else "exclusive"
    return inclusive > exclusive, f"span ends read as {name} (checked on {len(with_mention)} spans with a mention)"


def _entity(text: str, span: _Span, inclusive: bool) -> tuple[Entity | None, str | None]:
    """The span as an exclusive-end entity, or why it cannot be one."""
    end = span.end + 1 if inclusive else span.end
    if end <= span.start:
        return None, "empty or reversed span"
    if span.start < 0 or end > len(text):
        return None, f"outside the text (length {len(text)})"
    if span.mention is not None and text[span.start : end] != span.mention:
        ends = "inclusive" if inclusive else "exclusive"
        return None, f"mention {span.mention!r} does not match the text there ({text[span.start : end]!r}, {ends} ends)"
    return Entity(span.start, end, span.label), None


def _build(p: _Parsed, inclusive: bool, skipped: list[str]) -> Record | None:
    """The record with its spans, repeats and overlaps left out and reported; None (reported) when a span
    does not fit the text. Nothing is repaired or merged."""
    by_entity: dict[Entity, _Span] = {}
    repeats: list[str] = []
    misfits = list(p.misfits)
    for span in p.spans:
        ent, why = _entity(p.text, span, inclusive)
        if ent is None:
            misfits.append(f"{span.describe()}: {why}")
        elif ent in by_entity:
            repeats.append(f"{span.describe()}: repeats an earlier span")
        else:
            by_entity[ent] = span
    if misfits:
        skipped.append(f"{p.where}: record left out: {len(misfits)} span(s) do not fit its text, and its other "
                       f"spans alone would teach them as no entity; the first: {misfits[0]}")
        return None
    skipped.extend(repeats)
    kept, dropped = drop_overlaps(by_entity)
    skipped.extend(f"{by_entity[e].describe()}: {OVERLAP}" for e in dropped)
    return Record(p.rid, p.text, validate_entities(p.text, kept, p.where))
