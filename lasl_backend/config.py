"""Backend settings, read once from the environment at start-up.

Label Studio's own conventions (``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``MODEL_DIR``,
``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``, ``LOG_LEVEL``) plus ours, prefixed ``LASL_``. Every value is
validated here so that a typo stops the server at start-up with a message naming the variable,
instead of surfacing hours later inside a training run. Secrets never appear in ``repr``, in
``public_dict`` or in error messages (errors name the variable, never echo a secret's value).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlparse

__all__ = ["ConfigError", "Settings", "ENV_DOC"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the environment variable."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d{1,2})?)$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: (variable, default, meaning) for the README's table and ``lasl serve --help``.
ENV_DOC: tuple[tuple[str, str, str], ...] = (
    ("LABEL_STUDIO_URL", "(none)", "Base URL of Label Studio as the backend reaches it (not localhost inside Docker)."),
    ("LABEL_STUDIO_API_KEY", "(none)", "Legacy token or personal access token (PAT); the SDK handles both."),
    ("MODEL_DIR", "./models", "Checkpoints, DBS normalizers and per-project state."),
    ("BASIC_AUTH_USER / BASIC_AUTH_PASS", "(none)", "HTTP basic auth on every route except /health (set both or neither)."),
    ("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    ("LASL_TRAIN_EVERY", "10", "Start a training run after this many confirmed new/changed/deleted annotations."),
    ("LASL_ENCODER", "char", "'char' (Bi-LSTM from scratch) or a local directory / hub id of a BERT-like model."),
    ("LASL_DEVICE", "cpu", "Where the models train and predict: cpu, cuda, cuda:N or mps; one that is not there stops the server at start. The float64 CRF pass stays on the CPU."),
    ("LASL_UNCERTAINTY_SAMPLING", "true", "After each run, PATCH the project to 'Uncertainty sampling'."),
    ("LASL_MAX_REQUEST_MB", "32", "Largest accepted request body; larger gets 413."),
    ("LASL_MAX_TEXT_CHARS", "100000", "Longer task texts are answered with an empty placeholder (and a warning)."),
    ("LASL_VERSIONS_KEPT", "5", "Local model versions kept per project (the current one is always kept)."),
    ("LASL_EPOCHS", "8", "Epochs per training run (fine-tuning from the previous version)."),
    ("LASL_MIN_STEPS", "100", "Least optimizer steps per run (small labeled sets repeat epochs to reach it)."),
    ("LASL_MAX_STEPS", "0", "Most optimizer steps per run (0 = no cap beyond the epochs)."),
    ("LASL_TORCH_THREADS", "1", "torch intra-op threads (0 = torch's default). 1 is as fast for this Bi-LSTM, and the server's own threads give the parallelism: several OpenMP pools on few cores spin against each other and run 10x slower."),
    ("LASL_MIN_LABELED", "1", "Labeled tasks needed before the first run."),
    ("LASL_HOLDOUT_FRACTION", "0.1", "Share of annotated tasks held back (by task id) to report F1 in /metrics."),
    ("LASL_HOLDOUT_MIN_LABELED", "20", "Hold nothing back below this many annotated tasks."),
    ("LASL_LABELS_NAME", "(none)", "Name of the <Labels> control to use when a config has several."),
    ("LASL_LPN_LAYERS", "0", "Bi-LSTM layers of the loss prediction net (paper Table 6). 0 pools the tagger's own features (the paper's shared encoder): it scores the pool 3x faster than 2 on a CPU (10,000 tasks pushed in 78 s instead of 260 s), and a run's time budget buys ~1.5x the training steps, so versions come sooner and find more entities; in simulation it ranks a little worse below ~15% labeled. 2 is the paper's main setting (what `lasl simulate` uses); 1 or 3 also work. A change rebuilds the project's loss net at its next run."),
    ("LASL_SCHEDULE", "pool_confidence", "Λ_t schedule of the dynamic balance (DBS) score."),
    ("LASL_PUSH_CHUNK", "10000", "Predictions per import request (LS recounts per request: keep it large)."),
    ("LASL_TRAIN_SECONDS", "30", "Wall-clock training budget of every run, the first included (0 = none): with scoring and pushing the pool a trigger reorders the queue within about a minute at 1,000 tasks. Each run continues from the last version."),
    ("LASL_FIRST_RUN_WARMUP", "0.7", "Share of a project's first run's time budget that trains the tagger alone (no loss net, no Mean Teacher): a first version with usable entities within the budget. 0 = joint from the start."),
    ("LASL_CONTINUE_RUNS", "5", "Follow-up runs, in a row, after a run that used its whole budget while its dev F1 still rose (each publishes a version); 0 = none."),
    ("LASL_TRAIN_THREADS", "2", "Cores a training run uses: 2 runs the loss net's backward and update on a second thread beside the tagger's (bitwise the same weights as 1; LASL steps 1.34x faster, measured by lasl bench)."),
    ("LASL_SCORE_WORKERS", "2", "Threads per scoring call (one torch thread each): the pool after a run is scored in that many batches at once; a one-record /predict runs each Bi-LSTM's two directions at once."),
    ("LASL_PREDICT_BATCH", "64", "Chunks per forward pass in /predict and pool scoring."),
    ("LASL_LS_TIMEOUT", "300", "Seconds to wait for one Label Studio API call."),
    ("LASL_TRAIN_RETRIES", "3", "Retries of a run that failed on Label Studio errors (unreachable, 5xx)."),
    ("LASL_RETRY_BACKOFF_S", "5", "First retry delay; doubles on each retry."),
    ("LASL_RETRY_LATER_S", "60", "A run that Label Studio failed anyway (down longer than the retries) runs again by itself after this delay, doubling per failure in a row up to 30 min; 0 = never."),
    ("LASL_SEED", "0", "Seed of model initialisation and the hold-back split."),
)


def _get(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def _parse(env: Mapping[str, str], name: str, default: T, conv: Callable[[str], T], check: Callable[[T], bool], want: str) -> T:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = conv(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not valid: expected {want}") from None
    if not check(value):
        raise ConfigError(f"{name}={raw!r} is not valid: expected {want}")
    return value


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(raw)


def _int(raw: str) -> int:
    # int() would accept "1_000" and " 7"; a setting should be plain digits.
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError(raw)
    return int(raw)


def _float(raw: str) -> float:
    v = float(raw)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(raw)
    return v


@dataclass(frozen=True)
class Settings:
    """All settings; build with :meth:`from_env` (validated) or directly in tests."""

    model_dir: Path = Path("models")
    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    train_every: int = 10
    encoder: str = "char"
    device: str = "cpu"
    uncertainty_sampling: bool = True
    max_request_bytes: int = 32 * 1024 * 1024
    max_text_chars: int = 100_000
    versions_kept: int = 5
    epochs: int = 8
    min_steps: int = 100
    max_steps: int = 0
    torch_threads: int = 1
    min_labeled: int = 1
    holdout_fraction: float = 0.1
    holdout_min_labeled: int = 20
    labels_name: str | None = None
    schedule: str = "pool_confidence"
    lpn_layers: int = 0  # the shared encoder: why the backend differs from the paper here, README "Speed and the loss net's size"
    push_chunk: int = 10_000
    predict_batch: int = 64
    train_seconds: float = 30.0
    continue_runs: int = 5
    first_run_warmup: float = 0.7
    score_workers: int = 2
    train_threads: int = 2
    ls_timeout: float = 300.0
    train_retries: int = 3
    retry_backoff_s: float = 5.0
    retry_later_s: float = 60.0
    seed: int = 0
    #: extra keyword arguments for ``TrainConfig`` (tests use it for tiny models); not from the env
    train_overrides: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    def secrets(self) -> list[str]:
        """Values that must never be logged (used by :class:`SecretRedactingFilter`)."""
        return [s for s in (self.label_studio_api_key, self.basic_auth_pass) if s]

    def public_dict(self) -> dict[str, Any]:
        """Settings for /metrics and start-up logs, secrets replaced by whether they are set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "train_overrides":
                continue
            v = getattr(self, f.name)
            if f.name in ("label_studio_api_key", "basic_auth_pass"):
                out[f.name] = "<set>" if v else None
            else:
                out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate; raises :class:`ConfigError` naming the first bad variable."""
        env = os.environ if env is None else env
        url = _get(env, "LABEL_STUDIO_URL")
        if url is not None:
            p = urlparse(url)
            if p.scheme not in ("http", "https") or not p.netloc:
                raise ConfigError("LABEL_STUDIO_URL must be an http:// or https:// URL with a host")
            if p.username or p.password:
                raise ConfigError("LABEL_STUDIO_URL must not carry credentials; use LABEL_STUDIO_API_KEY")
            url = url.rstrip("/")
        key = _get(env, "LABEL_STUDIO_API_KEY")
        user = _get(env, "BASIC_AUTH_USER")
        pwd = env.get("BASIC_AUTH_PASS") or None  # a password may legitimately have edge spaces
        if bool(user) != bool(pwd):
            raise ConfigError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        if user is not None and ":" in user:
            raise ConfigError("BASIC_AUTH_USER must not contain ':' (HTTP basic auth cannot carry it)")
        level = (_get(env, "LOG_LEVEL") or "INFO").upper()
        if level not in _LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={level!r} is not valid: expected one of {', '.join(_LOG_LEVELS)}")
        model_dir = _get(env, "MODEL_DIR") or "models"
        if "\x00" in model_dir:
            raise ConfigError("MODEL_DIR contains a NUL byte")
        encoder = _get(env, "LASL_ENCODER") or "char"
        if "\x00" in encoder:
            raise ConfigError("LASL_ENCODER contains a NUL byte")
        device = (_get(env, "LASL_DEVICE") or "cpu").lower()
        if not _DEVICE_RE.match(device):
            raise ConfigError(f"LASL_DEVICE={device!r} is not valid: expected cpu, cuda, cuda:N or mps")
        labels_name = _get(env, "LASL_LABELS_NAME")
        schedule = _get(env, "LASL_SCHEDULE") or "pool_confidence"
        try:
            from .strategies.schedules import SCHEDULES

            if schedule not in SCHEDULES:
                raise ConfigError(f"LASL_SCHEDULE={schedule!r} is not valid: expected one of {', '.join(sorted(SCHEDULES))}")
        except ImportError:  # pragma: no cover - strategies ship with the package
            pass
        pos = lambda v: v >= 1  # noqa: E731
        mb = _parse(env, "LASL_MAX_REQUEST_MB", 32.0, _float, lambda v: 0 < v <= 4096, "a size in MB in (0, 4096]")
        return cls(
            model_dir=Path(model_dir),
            label_studio_url=url,
            label_studio_api_key=key,
            basic_auth_user=user,
            basic_auth_pass=pwd,
            log_level=level,
            train_every=_parse(env, "LASL_TRAIN_EVERY", 10, _int, pos, "an integer >= 1"),
            encoder=encoder,
            device=device,
            uncertainty_sampling=_parse(env, "LASL_UNCERTAINTY_SAMPLING", True, _bool, lambda v: True, "true or false"),
            max_request_bytes=int(mb * 1024 * 1024),
            max_text_chars=_parse(env, "LASL_MAX_TEXT_CHARS", 100_000, _int, pos, "an integer >= 1"),
            versions_kept=_parse(env, "LASL_VERSIONS_KEPT", 5, _int, lambda v: v >= 2, "an integer >= 2"),
            epochs=_parse(env, "LASL_EPOCHS", 8, _int, lambda v: 1 <= v <= 1000, "an integer in [1, 1000]"),
            min_steps=_parse(env, "LASL_MIN_STEPS", 100, _int, lambda v: 0 <= v <= 10**7, "an integer in [0, 10^7]"),
            max_steps=_parse(env, "LASL_MAX_STEPS", 0, _int, lambda v: 0 <= v <= 10**7, "an integer in [0, 10^7]"),
            torch_threads=_parse(env, "LASL_TORCH_THREADS", 1, _int, lambda v: 0 <= v <= 256, "an integer in [0, 256]"),
            min_labeled=_parse(env, "LASL_MIN_LABELED", 1, _int, pos, "an integer >= 1"),
            holdout_fraction=_parse(env, "LASL_HOLDOUT_FRACTION", 0.1, _float, lambda v: 0 <= v <= 0.5, "a fraction in [0, 0.5]"),
            holdout_min_labeled=_parse(env, "LASL_HOLDOUT_MIN_LABELED", 20, _int, lambda v: v >= 2, "an integer >= 2"),
            labels_name=labels_name,
            schedule=schedule,
            lpn_layers=_parse(env, "LASL_LPN_LAYERS", 0, _int, lambda v: 0 <= v <= 3, "0, 1, 2 or 3"),
            push_chunk=_parse(env, "LASL_PUSH_CHUNK", 10_000, _int, lambda v: 1 <= v <= 100_000, "an integer in [1, 100000]"),
            train_seconds=_parse(env, "LASL_TRAIN_SECONDS", 30.0, _float, lambda v: 0 <= v <= 10**6, "seconds in [0, 10^6]"),
            first_run_warmup=_parse(env, "LASL_FIRST_RUN_WARMUP", 0.7, _float, lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
            continue_runs=_parse(env, "LASL_CONTINUE_RUNS", 5, _int, lambda v: 0 <= v <= 1000, "an integer in [0, 1000]"),
            train_threads=_parse(env, "LASL_TRAIN_THREADS", 2, _int, lambda v: 1 <= v <= 2, "1 or 2"),
            score_workers=_parse(env, "LASL_SCORE_WORKERS", 2, _int, lambda v: 1 <= v <= 64, "an integer in [1, 64]"),
            predict_batch=_parse(env, "LASL_PREDICT_BATCH", 64, _int, lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
            ls_timeout=_parse(env, "LASL_LS_TIMEOUT", 300.0, _float, lambda v: v > 0, "seconds > 0"),
            train_retries=_parse(env, "LASL_TRAIN_RETRIES", 3, _int, lambda v: 0 <= v <= 20, "an integer in [0, 20]"),
            retry_backoff_s=_parse(env, "LASL_RETRY_BACKOFF_S", 5.0, _float, lambda v: 0 <= v <= 3600, "seconds in [0, 3600]"),
            retry_later_s=_parse(env, "LASL_RETRY_LATER_S", 60.0, _float, lambda v: 0 <= v <= 86400, "seconds in [0, 86400]"),
            seed=_parse(env, "LASL_SEED", 0, _int, lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)"),
        )
