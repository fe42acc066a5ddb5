"""The final model: once the stopping signal says "stop", one run from scratch on every annotation.

Why: each regular version is fine-tuned for ``LASL_TRAIN_SECONDS`` from the one before, and none sees the
held-back slice, so the versions trail what the same annotations can teach a model trained once, fully.
The final run trains as the all-data model of the replays is trained (``TrainConfig.full_schedule``: 40
epochs, at least 600 steps, no Mean Teacher), on the held-back tasks too, within
``LASL_FINAL_TRAIN_SECONDS``. Its version serves the pre-annotations and the queue like any other.

What it changes in a run (:class:`.training_run.TrainingRun` with :data:`FINAL_REASON`):

* split: nothing is held back, so its version has no held-back F1;
* fit: from scratch, never from the serving version;
* the stopping signal: no entry (nothing held back to score; kappa stays between regular versions);
* the version's meta: ``final: true``, and ``regular_base``, the regular version it replaced.

A regular run after it fine-tunes from ``regular_base`` (:func:`fine_tuning_base`): a model that has
trained on the held-back slice would score it unfairly ever after.

When (:func:`final_due`): after a regular run whose recommendation is "stop", with ``LASL_FINAL_RUN`` on,
unless a final run was made, or failed, with at least 1/1.1 of the annotations there are now. So a team
that labels on after "stop" gets a new final model after every 10% more annotations, not after every run.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from ..config import Settings
from ..stopping import STOP
from .model_slot import ServedModel, load_served
from .store import ModelStore

__all__ = ["FINAL_REASON", "REGROWTH", "fine_tuning_base", "final_due", "replaced_version"]

log = logging.getLogger(__name__)

#: the reason of a final run (in the version's meta and the run history)
FINAL_REASON = "FINAL_TRAINING"
#: a new final run is due once the annotations have grown by this factor since the last one
REGROWTH = 1.1


def final_due(settings: Settings, state: str, n_labeled: int, runs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a regular run whose recommendation is ``state`` calls for a final run (module doc)."""
    if not settings.final_run or state != STOP:
        return False
    tried = [r.get("n_labeled") for r in runs if r.get("reason") == FINAL_REASON and r.get("status") in ("ok", "failed")]
    last = max((n for n in tried if isinstance(n, int) and not isinstance(n, bool)), default=None)
    return last is None or n_labeled >= round(last * REGROWTH, 6)  # 110 after 100, not 110.00000000000001


def replaced_version(served: ServedModel | None) -> str | None:
    """The regular version a final run replaces: the serving one, or the one a serving final model replaced."""
    if served is None:
        return None
    if served.meta.get("final"):
        name = served.meta.get("regular_base")
        return name if isinstance(name, str) else None
    return served.version


def fine_tuning_base(served: ServedModel | None, labels: Sequence[str], store: ModelStore, project_id: int,
                     device: str) -> ServedModel | None:
    """The version a regular run fine-tunes from: the serving one or, where that is a final model, the
    regular version it replaced (None: train from scratch, as when the labels changed)."""
    if served is None or list(served.model.labels) != list(labels):
        return None
    if not served.meta.get("final"):
        return served
    name = replaced_version(served)
    if name is None:
        return None
    try:
        base = load_served(store, project_id, name, device)
    except Exception as exc:  # noqa: BLE001 - a pruned or broken version: start afresh, never fail the run
        log.warning("project %s: version %s, which the final model replaced, cannot be loaded (%s); training from scratch",
                    project_id, name, exc)
        return None
    return base if list(base.model.labels) == list(labels) else None
