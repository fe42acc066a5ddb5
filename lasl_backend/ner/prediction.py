"""Scoring whole records: chunk and batch them, run the batches, add each record's chunks up.

A record is cut into chunks of at most ``max_len`` characters and chunks are batched by length
(``batching``). Each batch's tensor work (``score_batch``) gives per-chunk paths, confidences, L_min,
L_max and L_pred; ``run_batches`` runs the batches in this thread, in worker threads, or (one batch)
with each Bi-LSTM's two directions on two threads. ``aggregate`` turns chunk results into one
``RecordScore`` per record: its active-learning quantities are sums over its chunks (a record's loss is
the sum of its chunks' losses; docs/method.md, R4), its entities those of its chunks at record offsets.
It also keeps each record's peak: the loss per character of its hardest chunk, so that a queue can rank a
long record by its hardest part rather than by its average (``peak_total``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .batching import Chunk, collate, length_batches, make_chunks
from .encoders import parallel_directions
from .lossnet import LossNet
from .spans import LabelScheme, entity_spans
from .tagger import Tagger


@dataclass
class SpanPrediction:
    start: int
    end: int
    label: str
    text: str
    score: float  # mean marginal probability of the predicted tags over the span


@dataclass
class RecordScore:
    entities: list[SpanPrediction]
    l_min: float
    l_max: float
    p_max: float
    l_pred: float | None
    n_chars: int
    n_chunks: int = 1  # chunks the record was cut into: l_pred / n_chunks is the offset-free mean
    marginals: np.ndarray | None = field(default=None, repr=False)  # [n_chars, K], only when asked
    # the hardest chunk's L_min and L_pred per character (``peak_total`` scales them to the record)
    l_min_peak: float | None = None
    l_pred_peak: float | None = None


#: a chunk shorter than this counts as this long in a peak, so that a record's short last chunk (a
#: closing line) cannot make its peak on a few characters
PEAK_MIN_CHARS = 50


def peak_total(peak: float | None, n_chars: int) -> float | None:
    """A record's loss if every character were as hard as its hardest chunk's: ``peak · n_chars``. The
    sum over chunks in the unit of L_min, so a DBS can rank by it, per record or per cost."""
    return None if peak is None else peak * n_chars


@dataclass
class BatchScores:
    """One batch's results as numpy arrays; row j belongs to the batch's chunk j."""

    l_min: np.ndarray  # [B] float64
    l_max: np.ndarray  # [B] float64
    l_pred: np.ndarray | None  # [B] float64, None without the loss net
    paths: np.ndarray  # [B, T] best path
    cum: np.ndarray  # [B, T + 1] prefix sums of the best path's marginals: a span's mean in two lookups
    marginals: np.ndarray | None  # [B, T, K] float32, only when asked


def plan_batches(texts: Sequence[str], encode: Callable[[str], list[int]], max_len: int, max_batch: int, batch_chars: int) -> list[list[Chunk]]:
    """Every text's chunks, grouped into batches of similar length (at most ``max_batch`` chunks and
    ``batch_chars`` padded characters each), in a deterministic order."""
    chunks = make_chunks(texts, encode, max_len)
    return [[chunks[i] for i in b] for b in length_batches(chunks, max_batch=max_batch, max_chars=batch_chars)]


@torch.no_grad()
def score_batch(chunks: list[Chunk], tagger: Tagger, lossnet: LossNet | None, return_marginals: bool) -> BatchScores:
    """The tensor work for one batch of chunks (read-only on the modules: safe to run in a thread)."""
    ids, mask, _ = collate(chunks, next(tagger.parameters()).device)
    em, layers = tagger(ids, mask)
    b = tagger.bounds(em, mask, with_marginals=True)
    assert b.marginals is not None
    path_p = b.marginals.gather(2, b.best_path.unsqueeze(2)).squeeze(2)
    cum = torch.cat([path_p.new_zeros(len(chunks), 1), path_p.cumsum(1)], dim=1).cpu().numpy()
    return BatchScores(
        l_min=b.l_min.cpu().numpy(),
        l_max=b.l_max.cpu().numpy(),
        l_pred=lossnet.predict_loss(layers, mask, b).double().cpu().numpy() if lossnet is not None else None,
        paths=b.best_path.cpu().numpy(),
        cum=cum,
        marginals=b.marginals.cpu().numpy().astype(np.float32) if return_marginals else None,
    )


def run_batches(batches: list[list[Chunk]], score: Callable[[list[Chunk]], BatchScores], workers: int = 1) -> list[BatchScores]:
    """``score`` every batch, results in batch order.

    ``workers`` > 1 runs the batches in that many threads: this Bi-LSTM's small matrix products do not
    speed up with intra-op threads, but independent batches on separate cores do. With a single batch
    (one short record: the /predict case) it runs each Bi-LSTM's two directions on two threads instead.
    Both assume one torch thread per Python thread (``torch.set_num_threads(1)`` at process start):
    several intra-op pools on few cores spin against each other.
    """
    if workers > 1 and len(batches) > 1:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            return list(ex.map(score, batches))
    if workers > 1:
        with parallel_directions():
            return [score(cs) for cs in batches]
    return [score(cs) for cs in batches]


class _RecordSums:
    """Per-record running sums over chunks, in the order the chunks are added."""

    def __init__(self, n: int) -> None:
        self.l_min = np.zeros(n)
        self.l_max = np.zeros(n)
        self.l_pred = np.zeros(n)
        self.n_chunks = np.zeros(n, dtype=np.int64)
        self.l_min_peak = np.full(n, -np.inf)
        self.l_pred_peak = np.full(n, -np.inf)
        self.entities: list[list[SpanPrediction]] = [[] for _ in range(n)]
        self.marginals: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n)]

    def add(self, chunk: Chunk, res: BatchScores, j: int, text: str, scheme: LabelScheme) -> None:
        """Row ``j`` of ``res`` is ``chunk``, a piece of ``text``."""
        r, k = chunk.record, len(chunk.ids)
        self.l_min[r] += res.l_min[j]
        self.l_max[r] += res.l_max[j]
        self.n_chunks[r] += 1
        per = float(max(k, PEAK_MIN_CHARS))
        self.l_min_peak[r] = max(self.l_min_peak[r], res.l_min[j] / per)
        if res.l_pred is not None:
            self.l_pred[r] += res.l_pred[j]
            self.l_pred_peak[r] = max(self.l_pred_peak[r], res.l_pred[j] / per)
        self._add_entities(r, chunk.start, res.paths[j, :k], res.cum[j], text, scheme)
        if res.marginals is not None:
            self.marginals[r].append((chunk.start, res.marginals[j, :k]))

    def _add_entities(self, r: int, offset: int, path: np.ndarray, cum: np.ndarray, text: str, scheme: LabelScheme) -> None:
        """The chunk's entities at record offsets, each scored by its tags' mean marginal (two prefix-sum
        lookups; vectorised, since an untrained model finds hundreds per record)."""
        starts, ends, labs = entity_spans(path, scheme)
        if not len(starts):
            return
        conf = (cum[ends] - cum[starts]) / (ends - starts)
        labels, out = scheme.labels, self.entities[r]
        for a, z, lab, c in zip((starts + offset).tolist(), (ends + offset).tolist(), labs.tolist(), conf.tolist()):
            out.append(SpanPrediction(a, z, labels[lab], text[a:z], c))

    def record_marginals(self, r: int, num_tags: int) -> np.ndarray:
        """[n_chars, K]: the record's chunk marginals in text order."""
        parts = [a for _, a in sorted(self.marginals[r], key=lambda t: t[0])]
        return np.concatenate(parts) if parts else np.zeros((0, num_tags), np.float32)

    def record_score(self, r: int, text: str, with_lpred: bool, marginals: np.ndarray | None) -> RecordScore:
        chunked = self.n_chunks[r] > 0
        return RecordScore(
            entities=sorted(self.entities[r], key=lambda s: s.start),
            l_min=float(self.l_min[r]),
            l_max=float(self.l_max[r]),
            p_max=math.exp(-float(self.l_min[r])),
            l_pred=float(self.l_pred[r]) if with_lpred else None,
            n_chars=len(text),
            n_chunks=int(self.n_chunks[r]),
            marginals=marginals,
            l_min_peak=float(self.l_min_peak[r]) if chunked else 0.0,
            l_pred_peak=(float(self.l_pred_peak[r]) if chunked else 0.0) if with_lpred else None,
        )


def aggregate(
    texts: Sequence[str], batches: list[list[Chunk]], results: list[BatchScores], scheme: LabelScheme, with_lpred: bool, return_marginals: bool
) -> list[RecordScore]:
    """One ``RecordScore`` per text from its chunks' results (sums; docs/method.md, R4)."""
    sums = _RecordSums(len(texts))
    for chunks, res in zip(batches, results):
        for j, c in enumerate(chunks):
            sums.add(c, res, j, texts[c.record], scheme)
    return [
        sums.record_score(r, text, with_lpred, sums.record_marginals(r, scheme.num_tags) if return_marginals else None)
        for r, text in enumerate(texts)
    ]
