"""Label Studio as this backend sees it: the label config, the SDK client, tasks in, predictions out."""

from .client import (
    TASK_INCLUDE,
    UNCERTAINTY_SAMPLING,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioRequestError,
    LabelStudioServerError,
    LabelStudioUnreachable,
    LSClient,
    PredictionImportError,
)
from .labelconfig import LabelConfigError, NerConfig, parse_label_config
from .predictions import ScoredSpan, prediction_import, span_regions, task_prediction
from .tasks import Dataset, LabeledTask, UnlabeledTask, choose_annotation, regions_to_entities, split_tasks

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
    "ScoredSpan",
    "TASK_INCLUDE",
    "UNCERTAINTY_SAMPLING",
    "UnlabeledTask",
    "choose_annotation",
    "parse_label_config",
    "prediction_import",
    "regions_to_entities",
    "span_regions",
    "split_tasks",
    "task_prediction",
]
