"""Annotated records from the files clinical NLP teams already have, read into ``data.Record``.

``lasl train``, ``lasl evaluate`` and ``lasl convert`` read any of these; ``lasl simulate`` and the
benchmarks read the package's own JSONL, which ``lasl convert`` writes from the others.

| format | what it is |
|---|---|
| ``jsonl`` | the package's own records: ``{"id", "text", "entities": [{"start", "end", "label"}]}`` (strict) |
| ``label-studio`` | a Label Studio export, JSON or JSON-MIN: the chosen annotation of each annotated task |
| ``bio`` | one character and its tag per line, a blank line between records (BIO, BIOES or BMES) |
| ``spans`` | JSON or JSONL records with a span list under a common name (CMeEE, CLUENER, Yidu-S4K) |

Every reader names the file and line (or task) of a problem it cannot read past. Regions a reader can
skip (overlapping spans, a label the config does not know) are skipped and counted in ``Loaded.skipped``,
never silently repaired: the same rule the backend applies to Label Studio's annotations.
"""

from __future__ import annotations

from .base import Loaded, ReadOptions
from .reading import FORMATS, read_records

__all__ = ["FORMATS", "Loaded", "ReadOptions", "read_records"]
