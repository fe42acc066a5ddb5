"""A simulation's settings, which strategy trains which models, and when two settings may share one output
directory (a directory's results are only comparable if the runs in it were made alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ner import TrainConfig

TRAIN_DEFAULTS = TrainConfig()

__all__ = ["COMPARED_KEYS", "COST_AWARE", "FLAGS", "SERVINGS", "STRATEGY_MODELS", "SimSettings", "comparable", "device_type", "split_name"]

#: strategy → (loss net, Mean Teacher): the models each strategy trains
STRATEGY_MODELS: dict[str, tuple[str | None, bool]] = {
    "random": (None, False),
    "lc": (None, False),
    "tod": (None, False),
    "mlp": (None, False),
    "loss": ("learning_loss", False),
    "lpn": ("lpn", False),
    "dbs": ("lpn", False),
    "lasl": ("lpn", True),
}
#: a strategy name may carry flags: ``lasl+cost`` ranks per unit of cost (characters in the simulator),
#: ``+sqrt`` per square root of the characters (between per record and per character), ``+div`` spreads
#: consecutive queue positions over groups of near-identical texts, ``+peak`` ranks a record by its hardest
#: chunk (its L_min and L_p per character, times its characters) instead of by the sum over its chunks,
#: ``+dens`` weighs the score by how typical the record's text is of the pool (information density), ``+yield``
#: by the entities the model predicts per character
FLAGS = ("cost", "sqrt", "div", "peak", "dens", "yield")
#: the strategies whose scores can be divided by a cost (the others' flags would be silently ignored)
COST_AWARE = ("dbs", "lasl", "mlp", "lpn")
#: the strategies that rank by L_min or L_p, which ``+peak`` replaces
PEAK_AWARE = COST_AWARE
#: ``queue``: Label Studio serves the pushed order (``ls_queue``); ``batch``: the paper's query-retrain loop
SERVINGS = ("queue", "batch")


def split_name(name: str) -> tuple[str, set[str]]:
    """(base strategy, flags) of a strategy name such as ``lasl+cost+div``; ValueError for unknown parts."""
    base, *flags = name.split("+")
    if base not in STRATEGY_MODELS:
        raise ValueError(f"unknown strategy {base!r}; known: {sorted(STRATEGY_MODELS)}")
    bad = [f for f in flags if f not in FLAGS]
    if bad:
        raise ValueError(f"{name}: unknown flags {bad}; known: {', '.join('+' + f for f in FLAGS)}")
    if "peak" in flags and base not in PEAK_AWARE:
        raise ValueError(f"{name}: +peak replaces the CRF's and the LPN's sums over chunks, which {base!r} "
                         f"does not rank by; it applies to {', '.join(PEAK_AWARE)}")
    if {"cost", "sqrt"} & set(flags) and base not in COST_AWARE:
        raise ValueError(f"{name}: +cost and +sqrt divide a loss by a cost, which {base!r} has not; "
                         f"they apply to {', '.join(COST_AWARE)}")
    if {"dens", "yield"} & set(flags) and base == "random":
        raise ValueError(f"{name}: +dens and +yield weigh a strategy's spread of scores, which 'random' has not")
    if {"cost", "sqrt"} <= set(flags):
        raise ValueError(f"{name}: +cost and +sqrt are two costs; choose one")
    return base, set(flags)


@dataclass
class SimSettings:
    data: str
    strategies: list[str]
    seeds: list[int]
    init: float
    step: float
    rounds: int
    encoder: str = "char"
    #: cores per run: ≥ 2 runs the loss net's backward on a second thread and scores the pool in two
    #: batches at once. Results are bitwise the same for any value (tested), so resuming may change it.
    threads: int = 1
    first_round_min_steps: int = 600
    round_epochs: int = 2
    round_min_steps: int = 100
    normalize_length: bool = False
    #: the ``loss`` baseline's chunk → record aggregation (``LearningLossSampling.reduction``)
    loss_reduction: str = "mean"
    max_test: int | None = None
    full_f1: float | None = None
    #: where the models train and score (cpu, cuda, cuda:N, mps). A GPU run is not bitwise a CPU run,
    #: so one output directory holds runs of one device type only
    device: str = "cpu"
    #: the LPN's Bi-LSTM layers (paper Table 6): 2 = the paper's serial encoder, 0 = its shared encoder
    lpn_layers: int = 2
    #: where each run's char model starts (``ner.TrainConfig``): LAC vectors, lexicons, the user's term file, bigrams
    char_vectors: str = TRAIN_DEFAULTS.char_vectors
    lexicon_sources: str = TRAIN_DEFAULTS.lexicon_sources
    lexicon: str | None = None
    bigrams: bool = TRAIN_DEFAULTS.bigrams
    knowledge_cache: str | None = None
    #: how picked records reach the annotator (:data:`SERVINGS`); ``queue`` also holds back a slice of the
    #: labeled records as the backend does (trained on by nobody, the stopping signal's F1)
    serving: str = "batch"
    #: queue: annotations per version (the backend's ``LASL_TRAIN_EVERY``), replacing ``step``
    train_every: int = 10
    #: queue: annotations per version served from the order before it, while the run trains
    lag: int = 0
    #: queue: annotators labeling the project (Label Studio picks at random among the first annotators + 1)
    annotators: int = 1
    #: unlabeled records whose tags the versions are compared on (kappa)
    stop_set: int = 200
    #: stop a run once this many characters are labeled (None: run every round)
    max_chars: int | None = None
    #: training records kept out of the pool (a fixed draw) and scored every round, to choose variants on
    dev_records: int = 0
    #: DBS's Λ_t schedule (``strategies.SCHEDULES``; the backend's ``LASL_SCHEDULE``)
    schedule: str = "pool_confidence"
    #: the last share of each run's steps averaged into the weights it serves (``TrainConfig.average_tail``)
    average_tail: float = 0.0
    #: the last share of each run's steps over which the learning rate falls to 0 (``TrainConfig.anneal_tail``)
    anneal_tail: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: the settings that must match for runs to share a directory
COMPARED_KEYS = ("data", "init", "step", "encoder", "normalize_length", "loss_reduction", "round_epochs",
                 "first_round_min_steps", "round_min_steps", "max_test", "device", "lpn_layers", "char_vectors",
                 "lexicon_sources", "lexicon", "bigrams", "serving", "train_every", "lag", "annotators",
                 "dev_records", "schedule", "average_tail", "anneal_tail")
#: what a settings record written before a key existed was made with: the plain sum of chunk scores, on the
#: CPU, with the paper's 2-layer LPN, from random character rows without lexicon or bigrams
_UNRECORDED = {"loss_reduction": "sum", "device": "cpu", "lpn_layers": 2, "char_vectors": "none", "lexicon_sources": "",
               "lexicon": None, "bigrams": False, "serving": "batch", "train_every": 10, "lag": 0, "annotators": 1, "dev_records": 0,
               "schedule": "pool_confidence", "average_tail": 0.0, "anneal_tail": 0.0}


def device_type(name: str) -> str:
    """cuda:0 and cuda:1 compute alike; cpu and cuda do not (see ``SimSettings.device``)."""
    return name.split(":")[0]


def comparable(recorded: dict[str, Any], settings: SimSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the recorded values, the new ones) of :data:`COMPARED_KEYS`, devices by type: runs may share the
    directory if the two are equal."""
    old = {k: recorded.get(k, _UNRECORDED.get(k)) for k in COMPARED_KEYS}
    new = {k: settings.to_dict()[k] for k in COMPARED_KEYS}
    old["device"], new["device"] = device_type(old["device"]), device_type(new["device"])
    return old, new
