"""Settings from the environment: defaults, validation at start-up, secrets kept out of repr."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lasl_backend.config import ENV_DOC, ConfigError, Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.train_every, s.encoder, s.device, s.uncertainty_sampling) == (10, "char", "cpu", True)
    assert s.max_request_bytes == 32 * 1024 * 1024 and s.model_dir == Path("models")
    assert not s.auth_enabled and s.label_studio_url is None
    assert s.lpn_layers == 0 == Settings().lpn_layers  # the shared-encoder loss net (README: why not the paper's 2)
    assert dict((n, d) for n, d, _ in ENV_DOC)["LASL_LPN_LAYERS"] == "0"  # the README's table says the same


def test_values_are_read() -> None:
    s = Settings.from_env({
        "LABEL_STUDIO_URL": "http://ls:8080/", "LABEL_STUDIO_API_KEY": "k" * 40, "MODEL_DIR": "/data/m",
        "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p w", "LOG_LEVEL": "debug", "LASL_TRAIN_EVERY": "3",
        "LASL_DEVICE": "cuda:1", "LASL_UNCERTAINTY_SAMPLING": "off", "LASL_MAX_REQUEST_MB": "1.5",
        "LASL_VERSIONS_KEPT": "7", "LASL_EPOCHS": "2", "LASL_LABELS_NAME": "ner", "LASL_SCHEDULE": "root",
        "LASL_LPN_LAYERS": "2",
    })
    assert s.label_studio_url == "http://ls:8080" and s.auth_enabled and s.basic_auth_pass == "p w"
    assert (s.log_level, s.train_every, s.device, s.uncertainty_sampling) == ("DEBUG", 3, "cuda:1", False)
    assert s.max_request_bytes == int(1.5 * 1024 * 1024) and s.versions_kept == 7 and s.epochs == 2
    assert s.labels_name == "ner" and s.schedule == "root" and s.lpn_layers == 2


@pytest.mark.parametrize(
    "env, var",
    [
        ({"LASL_TRAIN_EVERY": "0"}, "LASL_TRAIN_EVERY"),
        ({"LASL_TRAIN_EVERY": "ten"}, "LASL_TRAIN_EVERY"),
        ({"LASL_TRAIN_EVERY": "1_0"}, "LASL_TRAIN_EVERY"),
        ({"LASL_DEVICE": "tpu"}, "LASL_DEVICE"),
        ({"LASL_UNCERTAINTY_SAMPLING": "maybe"}, "LASL_UNCERTAINTY_SAMPLING"),
        ({"LASL_MAX_REQUEST_MB": "-1"}, "LASL_MAX_REQUEST_MB"),
        ({"LASL_MAX_REQUEST_MB": "nan"}, "LASL_MAX_REQUEST_MB"),
        ({"LASL_VERSIONS_KEPT": "1"}, "LASL_VERSIONS_KEPT"),
        ({"LASL_HOLDOUT_FRACTION": "0.9"}, "LASL_HOLDOUT_FRACTION"),
        ({"LASL_SCHEDULE": "sometimes"}, "LASL_SCHEDULE"),
        ({"LASL_LPN_LAYERS": "4"}, "LASL_LPN_LAYERS"),
        ({"LASL_LPN_LAYERS": "-1"}, "LASL_LPN_LAYERS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LABEL_STUDIO_URL": "ftp://x"}, "LABEL_STUDIO_URL"),
        ({"LABEL_STUDIO_URL": "localhost:8080"}, "LABEL_STUDIO_URL"),
        ({"BASIC_AUTH_USER": "only-user"}, "BASIC_AUTH"),
        ({"BASIC_AUTH_PASS": "only-pass"}, "BASIC_AUTH"),
        ({"BASIC_AUTH_USER": "a:b", "BASIC_AUTH_PASS": "p"}, "BASIC_AUTH_USER"),
        ({"MODEL_DIR": "a\x00b"}, "MODEL_DIR"),
    ],
)
def test_invalid_values_stop_start_up_naming_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        Settings.from_env(env)


def test_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as ei:
        Settings.from_env({"LABEL_STUDIO_URL": "http://admin:hunter2-secret@ls:8080"})
    assert "hunter2-secret" not in str(ei.value)


def test_secrets_never_in_repr_or_public_dict() -> None:
    s = Settings.from_env({"LABEL_STUDIO_API_KEY": "api-SECRET-123", "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "pass-SECRET-456"})
    text = repr(s) + str(s.public_dict())
    assert "api-SECRET-123" not in text and "pass-SECRET-456" not in text
    assert s.public_dict()["label_studio_api_key"] == "<set>"
