"""The character Encoder-CRF tagger and everything that trains, scores and saves it.

What the rest of the package uses (serving, the simulator, the CLI, the benchmarks) is exported here;
the modules behind it are free to change.
"""

from ..crf import kernel_name as crf_kernel_name  # /health and start-up report which CRF kernel runs
from .checkpoint import CheckpointError
from .device import resolve_device
from .knowledge import KnowledgeConfig, LexiconError, check_term_file
from .lossnet import DEFAULT_LPN_LAYERS
from .model import NerModel
from .prediction import RecordScore, SpanPrediction, peak_total
from .training import TrainConfig, TrainingCancelled, TrainingError, TrainResult, evaluate_model, train_lasl

__all__ = [
    "CheckpointError",
    "DEFAULT_LPN_LAYERS",
    "KnowledgeConfig",
    "LexiconError",
    "NerModel",
    "RecordScore",
    "peak_total",
    "SpanPrediction",
    "TrainConfig",
    "TrainResult",
    "TrainingCancelled",
    "TrainingError",
    "check_term_file",
    "crf_kernel_name",
    "evaluate_model",
    "resolve_device",
    "train_lasl",
]
