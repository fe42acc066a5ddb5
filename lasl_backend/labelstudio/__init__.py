"""Label Studio as this backend sees it: the label config, the SDK client, annotations as entities."""

from .client import (
    Dataset,
    LabeledTask,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioRequestError,
    LabelStudioServerError,
    LabelStudioUnreachable,
    LSClient,
    PredictionImportError,
    UnlabeledTask,
)
from .labelconfig import LabelConfigError, NerConfig, parse_label_config

__all__ = [
    "Dataset",
    "LabeledTask",
    "LabelConfigError",
    "LabelStudioAuthError",
    "LabelStudioError",
    "LabelStudioRequestError",
    "LabelStudioServerError",
    "LabelStudioUnreachable",
    "LSClient",
    "NerConfig",
    "PredictionImportError",
    "UnlabeledTask",
    "parse_label_config",
]
