"""HTTP basic auth (``BASIC_AUTH_USER`` / ``BASIC_AUTH_PASS``): which credentials a request presented.

Three answers, because the routes treat them differently (docs/serving.md, "Webhooks"): Label Studio
sends its webhooks without credentials, so "none sent" is not the same as "wrong ones sent".
"""

from __future__ import annotations

import hmac

from werkzeug.datastructures import Authorization, Headers

from ..config import Settings

__all__ = ["credentials"]


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (a byte-by-byte compare would leak the password's prefix by timing)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def credentials(settings: Settings, headers: Headers, authorization: Authorization | None) -> bool | None:
    """True: valid credentials (or auth is off); None: no credentials sent; False: wrong ones."""
    if not settings.auth_enabled:
        return True
    if "Authorization" not in headers:
        return None
    auth = authorization
    if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
        return False
    ok_user = _same(auth.username, settings.basic_auth_user or "")
    ok_pass = _same(auth.password, settings.basic_auth_pass or "")
    return ok_user and ok_pass
