"""What every reader takes and returns: the options a file does not always carry, and the records read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..data import Record

EndConvention = Literal["auto", "exclusive", "inclusive"]


@dataclass(frozen=True)
class ReadOptions:
    """What a file does not always say about itself."""

    #: the task-data key (Label Studio) or record key (spans) that holds the text; None: found by name
    text_key: str | None = None
    #: a Label Studio labeling config (XML text) naming the Labels control and its labels; None: inferred
    label_config: str | None = None
    #: whether span ends point past the last character (``exclusive``) or at it (``inclusive``);
    #: ``auto`` decides from the mention strings the file carries, else ``exclusive``
    end: EndConvention = "auto"


@dataclass
class Loaded:
    """The records read, the reader that read them, and what was left out, each with its place."""

    records: list[Record]
    format: str
    skipped: list[str] = field(default_factory=list)  # "file:line: why" for records or regions left out
    notes: list[str] = field(default_factory=list)  # decisions a reader made (e.g. the end convention)
