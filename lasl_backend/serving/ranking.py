"""How a version ranks the pool per unit of annotator effort, and spreads near-copies apart.

- **Cost.** ``LASL_QUEUE_COST=auto`` (the default) divides DBS's inputs by each task's expected seconds
  once the project has enough usable ``lead_time`` values (``strategies.cost``: seconds ≈ a + b·chars +
  c·regions, the regions being the ones the model pre-annotates), and by its characters until then;
  ``chars`` always uses characters, ``none`` ranks whole records as the paper does.
- **Diversity.** The pushed scores of the pool are the DBS scores permuted so that no group of
  near-identical texts (``strategies.diversity``) comes back within ``LASL_DIVERSITY_WINDOW`` queue
  positions. The permutation has to live in the scores: Label Studio's bulk import keeps only a
  prediction's task, result, score and model_version, so a cluster field cannot reach it. A task scored
  on its own later (/predict, new tasks) gets its plain DBS score and lands where DBS puts it.

Signatures depend on the text only, so each is computed once per process and text (a bounded cache).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from ..labelstudio import LabeledTask
from ..strategies.cost import CostModel, fit_cost_model
from ..strategies.diversity import near_duplicate_groups, spread_order, text_signature

__all__ = ["diversify", "fit_project_cost", "signatures"]

_CACHE_SIZE = 200_000
_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
_lock = threading.Lock()


def fit_project_cost(labeled: Sequence[LabeledTask], unit: str, min_annotations: int) -> CostModel | None:
    """The project's seconds model under ``LASL_QUEUE_COST=auto`` (None: not enough lead times, or another unit)."""
    if unit != "auto":
        return None
    return fit_cost_model([len(t.text) for t in labeled], [len(t.entities) for t in labeled], [t.lead_time for t in labeled],
                          min_annotations=min_annotations)


def signatures(texts: Sequence[str]) -> list[np.ndarray]:
    """MinHash signatures of the texts, from the cache where seen before."""
    out = []
    for text in texts:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with _lock:
            sig = _cache.get(key)
            if sig is not None:
                _cache.move_to_end(key)
        if sig is None:
            sig = text_signature(text)
            with _lock:
                _cache[key] = sig
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
        out.append(sig)
    return out


def diversify(predictions: list[dict[str, Any]], texts: Sequence[str], window: int) -> dict[str, Any]:
    """Permute the predictions' scores in place (see the module docstring); returns what it did, for the
    version's meta."""
    if window <= 0 or len(predictions) < 2:
        return {"window": window, "groups": None, "moved": 0}
    scores = np.array([float(p["score"]) for p in predictions], dtype=np.float64)
    groups = near_duplicate_groups(signatures(texts))
    order = spread_order(-scores, groups, window)  # lowest score is served first
    new = np.empty_like(scores)
    new[order] = np.sort(scores)
    for p, s in zip(predictions, new):
        p["score"] = float(s)
    return {"window": window, "groups": int(groups.max()) + 1, "moved": int(np.sum(new != scores))}
