"""CVAT's webhook signature: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``.

CVAT signs ``json.dumps(payload)`` with the webhook's secret and posts exactly those bytes,
so the check runs over the raw request body, before any JSON parsing. The comparison is
constant-time; the ``sha256=`` prefix is optional, as some proxies and tools strip it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

HEADER = "X-Signature-256"
PREFIX = "sha256="


class Check(enum.Enum):
    VALID = "valid"
    MISSING = "missing"  # no signature header: answer 401
    INVALID = "invalid"  # a signature that does not match: answer 403


def sign(secret: str, body: bytes) -> str:
    """The header value CVAT sends for ``body``."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> Check:
    """Check ``header`` (the X-Signature-256 value, or None) against ``body``."""
    if header is None or not header.strip():
        return Check.MISSING
    given = header.strip()
    if given[: len(PREFIX)].lower() == PREFIX:
        given = given[len(PREFIX) :]
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if hmac.compare_digest(given.lower().encode("ascii", "replace"), expected.encode("ascii")):
        return Check.VALID
    return Check.INVALID
