"""The log filter that keeps secrets out of log lines and tracebacks."""

from __future__ import annotations

import logging

from lasl_backend.serving.redaction import SecretRedactingFilter


def test_redacting_filter_scrubs_messages_and_tracebacks() -> None:
    flt = SecretRedactingFilter(["tok-SECRET-789"])
    try:
        raise RuntimeError("header Authorization: Token tok-SECRET-789")
    except RuntimeError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling with %s", ("tok-SECRET-789",), sys.exc_info())
    assert flt.filter(rec)
    assert "tok-SECRET-789" not in rec.getMessage() and "***" in rec.getMessage()
    assert rec.exc_info is None
