"""Settings from the environment: each field read from its variable, validation at start-up, secrets kept
out of repr and errors, and the documentation table generated from the same fields.

The per-field tests are generated from ``Settings.model_fields``, so a new setting is covered without new code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from lasl_backend.config import TABLE_END, TABLE_START, ConfigError, Settings, env_of, main, markdown_table, update_document

ROOT = Path(__file__).resolve().parents[1]
FIELDS: dict[str, FieldInfo] = Settings.model_fields
#: variables that are valid only together (set both BASIC_AUTH_* or neither)
PARTNERS = {"BASIC_AUTH_USER": {"BASIC_AUTH_PASS": "p"}, "BASIC_AUTH_PASS": {"BASIC_AUTH_USER": "u"}}
#: the fields whose variable takes any text: nothing to refuse (BASIC_AUTH_PASS alone is refused, below)
ANY_TEXT = {"label_studio_api_key", "basic_auth_pass", "labels_name"}


def var(name: str) -> str:
    return env_of(FIELDS[name]).name


def expected(info: FieldInfo, text: str) -> Any:
    """What ``text`` means for the field's type, computed here independently of config.py's parsers."""
    kind = info.annotation
    if kind is bool:
        return text.lower() in ("1", "true", "yes", "on")
    if kind in (int, float, Path):
        return kind(text)
    return text


def good_text(info: FieldInfo) -> str:
    """A valid text for the field that is not its default: its check's examples, else one by type."""
    check = env_of(info).check
    by_type = {bool: ["false", "true"], int: ["7"], float: ["2.5"], Path: ["/data/models"]}.get(info.annotation, ["some-value"])
    for text in (list(check.good) if check and check.good else []) + by_type:
        if expected(info, text) != info.default:
            return text
    raise AssertionError(f"no valid non-default example for {env_of(info).name}")


def bad_texts(info: FieldInfo) -> list[str]:
    """Texts the field must refuse: by its type (not plain digits, not finite, not a boolean word) and its check."""
    by_type = {int: ["1_0", "ten", "1.5", "٣"], float: ["nan", "inf", "-inf", "1_0", "x"], bool: ["maybe", "2", "y"]}
    check = env_of(info).check
    return by_type.get(info.annotation, []) + list(check.bad if check else ())


def env_with(name: str, text: str) -> dict[str, str]:
    return {var(name): text, **PARTNERS.get(var(name), {})}


# ---------------------------------------------------------------- generated for every field


@pytest.mark.parametrize("name", list(FIELDS))
def test_each_variable_is_read_into_its_field(name: str) -> None:
    info = FIELDS[name]
    text = good_text(info)
    s = Settings.from_env(env_with(name, text))
    assert getattr(s, name) == expected(info, text) != info.default
    untouched = {n for n in FIELDS if var(n) not in env_with(name, text)}
    assert all(getattr(s, n) == FIELDS[n].default for n in untouched)
    if env_of(info).strip:  # surrounding spaces are not part of the value
        assert getattr(Settings.from_env(env_with(name, f"  {text}\t")), name) == expected(info, text)


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in ANY_TEXT])
def test_each_variable_refuses_a_bad_value_naming_it(name: str) -> None:
    info, env = FIELDS[name], env_of(FIELDS[name])
    texts = bad_texts(info)
    assert texts, f"{env.name} refuses nothing: add a check (with a bad example) or list it in ANY_TEXT"
    for text in texts:
        with pytest.raises(ConfigError) as ei:
            Settings.from_env(env_with(name, text))
        message = str(ei.value)
        assert message.startswith(env.name) and f"is not valid: expected {env.check.want if env.check else ''}" in message
        assert (repr(text) in message) == (env.echo and not env.secret)


@pytest.mark.parametrize("name", list(FIELDS))
def test_blank_values_count_as_unset(name: str) -> None:
    assert Settings.from_env({var(name): ""}) == Settings()
    if env_of(FIELDS[name]).strip:
        assert Settings.from_env({var(name): " \t "}) == Settings()


@pytest.mark.parametrize("name", list(FIELDS))
def test_each_default_passes_its_own_check(name: str) -> None:
    info, check = FIELDS[name], env_of(FIELDS[name]).check
    assert info.default is None or check is None or check.ok(info.default)


def test_any_text_fields_are_the_free_text_ones() -> None:
    assert {n for n in FIELDS if not bad_texts(FIELDS[n])} == ANY_TEXT


# ---------------------------------------------------------------- by hand


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.train_every, s.encoder, s.device, s.uncertainty_sampling) == (10, "char", "cpu", True)
    assert s.max_request_bytes == 32 * 1024 * 1024 and s.model_dir == Path("models")
    assert not s.auth_enabled and s.label_studio_url is None
    assert s.lpn_layers == 0  # the shared-encoder loss net (docs/results.md, "Speed and the loss net's size")
    assert "| `LASL_LPN_LAYERS` | `0` |" in markdown_table()  # the documented default is the model's


def test_values_are_read() -> None:
    s = Settings.from_env({
        "LABEL_STUDIO_URL": "http://ls:8080/", "LABEL_STUDIO_API_KEY": "k" * 40, "MODEL_DIR": "/data/m",
        "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p w", "LOG_LEVEL": "debug", "LASL_TRAIN_EVERY": "3",
        "LASL_DEVICE": "CUDA:1", "LASL_UNCERTAINTY_SAMPLING": "off", "LASL_MAX_REQUEST_MB": "1.5",
        "LASL_VERSIONS_KEPT": "7", "LASL_EPOCHS": "2", "LASL_LABELS_NAME": "ner", "LASL_SCHEDULE": "root",
        "LASL_LPN_LAYERS": "2",
    })
    assert s.label_studio_url == "http://ls:8080" and s.auth_enabled and s.basic_auth_pass == "p w"
    assert (s.log_level, s.train_every, s.device, s.uncertainty_sampling) == ("DEBUG", 3, "cuda:1", False)
    assert s.max_request_bytes == int(1.5 * 1024 * 1024) and s.versions_kept == 7 and s.epochs == 2
    assert s.labels_name == "ner" and s.schedule == "root" and s.lpn_layers == 2
    assert s.model_dir == Path("/data/m")


@pytest.mark.parametrize("word, value", [("1", True), ("TRUE", True), ("Yes", True), ("on", True),
                                         ("0", False), ("false", False), ("NO", False), ("Off", False)])
def test_boolean_words(word: str, value: bool) -> None:
    assert Settings.from_env({"LASL_UNCERTAINTY_SAMPLING": word}).uncertainty_sampling is value


def test_password_keeps_its_edge_spaces() -> None:
    s = Settings.from_env({"BASIC_AUTH_USER": " u ", "BASIC_AUTH_PASS": "  p w  "})
    assert (s.basic_auth_user, s.basic_auth_pass) == ("u", "  p w  ")
    assert Settings.from_env({"BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "   "}).basic_auth_pass == "   "


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


def test_error_message_says_what_is_expected() -> None:
    with pytest.raises(ConfigError) as ei:
        Settings.from_env({"LASL_TRAIN_EVERY": "1_0"})
    assert str(ei.value) == "LASL_TRAIN_EVERY='1_0' is not valid: expected an integer >= 1"
    with pytest.raises(ConfigError) as ei:  # every bad variable is named, not only the first
        Settings.from_env({"LASL_EPOCHS": "0", "LASL_SEED": "-1"})
    assert "LASL_EPOCHS='0'" in str(ei.value) and "LASL_SEED='-1'" in str(ei.value)
    with pytest.raises(ConfigError, match=r"LASL_SCHEDULE='sometimes' is not valid: expected one of .*pool_confidence"):
        Settings.from_env({"LASL_SCHEDULE": "sometimes"})


def test_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as ei:
        Settings.from_env({"LABEL_STUDIO_URL": "http://admin:hunter2-secret@ls:8080"})
    assert "hunter2-secret" not in str(ei.value) and "LABEL_STUDIO_API_KEY" in str(ei.value)


def test_secrets_never_in_repr_str_public_dict_or_errors() -> None:
    s = Settings.from_env({"LABEL_STUDIO_API_KEY": "api-SECRET-123", "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "pass-SECRET-456"})
    text = repr(s) + str(s) + str(s.public_dict())
    assert "api-SECRET-123" not in text and "pass-SECRET-456" not in text
    assert s.public_dict()["label_studio_api_key"] == "<set>" == s.public_dict()["basic_auth_pass"]
    assert sorted(s.secrets()) == ["api-SECRET-123", "pass-SECRET-456"]
    with pytest.raises(ConfigError) as ei:  # a password without its user
        Settings.from_env({"LABEL_STUDIO_API_KEY": "api-SECRET-123", "BASIC_AUTH_PASS": "pass-SECRET-456"})
    assert "SECRET" not in str(ei.value)


def test_public_dict_has_a_key_per_setting() -> None:
    d = Settings().public_dict()
    assert set(d) == (set(FIELDS) - {"max_request_mb"}) | {"max_request_bytes"}
    assert d["max_request_bytes"] == 32 * 2**20 and d["model_dir"] == "models"
    assert d["label_studio_api_key"] is None and d["basic_auth_pass"] is None


def test_keyword_arguments_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LASL_EPOCHS", "3")
    monkeypatch.setenv("LASL_LPN_LAYERS", "2")
    assert Settings().epochs == 8 and Settings(seed=4).lpn_layers == 0
    assert Settings.from_env().epochs == 3  # os.environ by default


def test_keyword_arguments_are_checked_and_frozen() -> None:
    s = Settings(model_dir="/m", max_request_mb=1 / 16, log_level="debug")
    assert s.model_dir == Path("/m") and s.max_request_bytes == 64 * 1024 and s.log_level == "DEBUG"
    with pytest.raises(ConfigError, match="LASL_TRAIN_EVERY is not valid: expected an integer >= 1"):
        Settings(train_every=0)
    with pytest.raises(ConfigError, match="train_overrides: not a setting"):
        Settings(train_overrides={})
    with pytest.raises(ValueError):
        s.epochs = 3  # type: ignore[misc]
    assert s.epochs == 8


# ---------------------------------------------------------------- the documentation table


def test_documentation_table_is_what_the_model_generates() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert update_document(doc) == doc, "docs/configuration.md is out of date: run `python -m lasl_backend.config --write docs/configuration.md`"


def test_table_has_a_row_per_setting_with_its_default_and_check() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [f"| `{var(n)}`" for n in FIELDS]
    assert "| `LASL_TRAIN_EVERY` | `10` | an integer &gt;= 1 | Start a training run" in markdown_table()
    assert "| `LABEL_STUDIO_API_KEY` | (none) | text |" in markdown_table()
    assert "&lt;Labels&gt;" in markdown_table()  # cells are escaped Markdown


def test_config_command_prints_and_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--markdown"]) == 0
    assert capsys.readouterr().out.strip() == markdown_table()
    doc = tmp_path / "c.md"
    doc.write_text(f"intro\n{TABLE_START}\nold table\n{TABLE_END}\noutro\n", encoding="utf-8")
    assert main(["--write", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == f"intro\n{TABLE_START}\n{markdown_table()}\n{TABLE_END}\noutro\n"
    doc.write_text("no markers\n", encoding="utf-8")
    assert main(["--write", str(doc)]) == 2 and "markers" in capsys.readouterr().err
