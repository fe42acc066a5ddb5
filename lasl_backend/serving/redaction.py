"""Secrets out of the logs: a filter that replaces every configured secret in a log line by ``***``."""

from __future__ import annotations

import logging

__all__ = ["SecretRedactingFilter", "install_secret_filter"]


class SecretRedactingFilter(logging.Filter):
    """Replace every known secret in a log record's final message by ``***`` (defence in depth:
    our own code never logs secrets, but a library's exception text might echo a header)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            return True
        red = msg
        for s in self.secrets:
            red = red.replace(s, "***")
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            for s in self.secrets:
                exc_text = exc_text.replace(s, "***")
            record.exc_info = None
            record.exc_text = None
            red = f"{red}\n{exc_text}"
        if red != msg or record.args:
            record.msg, record.args = red, None
        return True


def install_secret_filter(secrets: list[str]) -> SecretRedactingFilter:
    """Attach the redacting filter to every handler of the root logger (and future ones via the root
    logger itself), returning it so tests can check it is present."""
    flt = SecretRedactingFilter(secrets)
    root = logging.getLogger()
    for h in root.handlers:
        if not any(isinstance(f, SecretRedactingFilter) for f in h.filters):
            h.addFilter(flt)
    for name in ("lasl_backend", "gunicorn.error", "gunicorn.access", "werkzeug", "httpx"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, SecretRedactingFilter) for f in lg.filters):
            lg.addFilter(flt)
    return flt
