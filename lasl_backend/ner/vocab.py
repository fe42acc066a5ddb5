"""Character vocabulary for the from-scratch encoder: one id per code point."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

PAD, UNK = 0, 1


class CharVocab:
    """Maps characters to ids; 0 is padding, 1 is unknown. Characters are kept as they are (no digit
    or case folding), so the checkpoint alone decides what a text becomes."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.itos: list[str] = ["<pad>", "<unk>"] + [c for c in chars if c not in ("<pad>", "<unk>")]
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "CharVocab":
        counts = Counter(c for t in texts for c in t)
        chars = sorted(c for c, k in counts.items() if k >= min_count)
        return cls(chars)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(c, UNK) for c in text]

    def to_list(self) -> list[str]:
        return self.itos[2:]
