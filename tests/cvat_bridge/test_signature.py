"""The webhook signature check, against the header value CVAT computes."""

from __future__ import annotations

import hashlib
import hmac
import json

from cvat_bridge.signature import Check, sign, verify


def test_cvat_signature_with_and_without_prefix() -> None:
    body = json.dumps({"event": "ping", "webhook": {"id": 1}}).encode()
    # what cvat/apps/webhooks computes: "sha256=" + hmac(secret, json.dumps(payload), sha256)
    cvat_header = "sha256=" + hmac.new(b"s3cret", body, digestmod=hashlib.sha256).hexdigest()
    assert sign("s3cret", body) == cvat_header
    assert verify("s3cret", body, cvat_header) is Check.VALID
    assert verify("s3cret", body, cvat_header.removeprefix("sha256=")) is Check.VALID
    assert verify("s3cret", body, cvat_header.upper().replace("SHA256=", "sha256=")) is Check.VALID


def test_missing_and_forged_signatures() -> None:
    body = b'{"event": "update:job"}'
    assert verify("s3cret", body, None) is Check.MISSING
    assert verify("s3cret", body, "  ") is Check.MISSING
    assert verify("s3cret", body, sign("other", body)) is Check.INVALID
    assert verify("s3cret", body + b" ", sign("s3cret", body)) is Check.INVALID
    assert verify("s3cret", body, "sha256=zz\u00e9") is Check.INVALID
