"""The NER part of a Label Studio labeling config: which ``<Labels>`` control tags which ``<Text>``.

Labels are read from the config, never hard-coded: the same backend serves the six CCKS labels or
any other set. Parsing uses the SDK's ``LabelInterface`` (the same reading Label Studio has), after a
hardened pre-parse: a config is untrusted input (it arrives in every /predict and /setup body), and
``LabelInterface`` parses with lxml, which would expand entities. So any DTD or entity declaration is
refused before lxml sees the text, and the size is capped.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["LabelConfigError", "NerConfig", "parse_label_config", "MAX_CONFIG_CHARS"]

MAX_CONFIG_CHARS = 1_000_000
_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_CACHE_SIZE = 64


class LabelConfigError(ValueError):
    """A config the backend cannot use, with a message a Label Studio admin can act on."""


@dataclass(frozen=True)
class NerConfig:
    """The Labels→Text pair the backend predicts for."""

    from_name: str  # the <Labels name=...>
    to_name: str  # the <Text name=...>
    value_key: str  # the task data key: <Text value="$text"> → "text"
    labels: tuple[str, ...]  # label values in config order

    def has_label(self, label: str) -> bool:
        return label in self.labels


def _preparse(config: str) -> None:
    if len(config) > MAX_CONFIG_CHARS:
        raise LabelConfigError(f"label config is too large ({len(config)} characters, limit {MAX_CONFIG_CHARS})")
    if "\x00" in config:
        raise LabelConfigError("label config contains a NUL character")
    if _DTD_RE.search(config):
        raise LabelConfigError("label config must not contain a DOCTYPE or entity declarations")
    try:
        import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]

        SafeET.fromstring(config, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ImportError:  # pragma: no cover - defusedxml comes with the SDK's dependencies
        import xml.etree.ElementTree as ET

        try:
            ET.fromstring(config)
        except ET.ParseError as exc:
            raise LabelConfigError(f"label config is not well-formed XML: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - ParseError, DTDForbidden, EntitiesForbidden, ...
        raise LabelConfigError(f"label config is not well-formed XML: {exc}") from None


def _controls(config: str) -> list[Any]:
    """The config's control tags as the SDK reads them."""
    try:
        # imported here: the SDK's label interface takes ~0.4 s to import, a cost only a config parse pays
        from label_studio_sdk.label_interface import LabelInterface

        controls = LabelInterface(config).controls
        return list(controls.values()) if isinstance(controls, dict) else list(controls)
    except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds for bad configs
        raise LabelConfigError(f"label config could not be parsed: {type(exc).__name__}: {str(exc)[:200]}") from None


def _ner_pair(control: Any) -> NerConfig | str | None:
    """The control as a Labels→Text pair, a problem that makes it unusable, or None if it is no <Labels>."""
    if getattr(control, "tag", "").lower() != "labels":
        return None
    objs = [o for o in getattr(control, "objects", []) if getattr(o, "tag", "").lower() == "text"]
    if not objs:
        return f"<Labels name={control.name!r}> does not point at a <Text> tag"
    if len(objs) > 1:
        return f"<Labels name={control.name!r}> points at several <Text> tags"
    obj = objs[0]
    value = getattr(obj, "value", None) or ""
    if not value.startswith("$") or not re.fullmatch(r"\$[A-Za-z_][\w-]*", value):
        return f"<Text name={obj.name!r}> has value {value!r}; expected a task field like \"$text\""
    labels = tuple(dict.fromkeys(str(lb) for lb in (getattr(control, "labels", None) or [])))
    if not labels:
        return f"<Labels name={control.name!r}> has no <Label value=...> children"
    return NerConfig(from_name=control.name, to_name=obj.name, value_key=value[1:], labels=labels)


def _parse_uncached(config: str, labels_name: str | None) -> NerConfig:
    if not isinstance(config, str) or not config.strip():
        raise LabelConfigError("label config is empty")
    _preparse(config)
    found = [_ner_pair(c) for c in _controls(config)]
    pairs = [f for f in found if isinstance(f, NerConfig)]
    problems = [f for f in found if isinstance(f, str)]
    if labels_name is not None:
        chosen = [p for p in pairs if p.from_name == labels_name]
        if not chosen:
            names = ", ".join(p.from_name for p in pairs) or "none"
            raise LabelConfigError(f"no usable <Labels name={labels_name!r}> over a <Text> tag (usable: {names})")
        return chosen[0]
    if not pairs:
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise LabelConfigError(f"label config has no <Labels> control over a <Text> tag{detail}")
    if len(pairs) > 1:
        names = ", ".join(p.from_name for p in pairs)
        raise LabelConfigError(f"label config has several <Labels> over <Text> ({names}); set LASL_LABELS_NAME to pick one")
    return pairs[0]


_cache: "OrderedDict[tuple[str, str | None], NerConfig | LabelConfigError]" = OrderedDict()
_cache_lock = threading.Lock()


def parse_label_config(config: object, labels_name: str | None = None) -> NerConfig:
    """The Labels→Text pair of ``config``, or :class:`LabelConfigError`.

    Results (and errors) are cached by content hash: every /predict carries the config, and the SDK
    parse costs milliseconds we do not want per request.
    """
    if not isinstance(config, str):
        raise LabelConfigError(f"label config must be a string, got {type(config).__name__}")
    key = (hashlib.sha256(config.encode("utf-8", "surrogatepass")).hexdigest(), labels_name)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        try:
            hit = _parse_uncached(config, labels_name)
        except LabelConfigError as exc:
            hit = exc
        with _cache_lock:
            _cache[key] = hit
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if isinstance(hit, LabelConfigError):
        raise LabelConfigError(str(hit))
    return hit
