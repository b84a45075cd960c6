"""Webhook delivery the way CVAT does it (``cvat/apps/webhooks``), for the fake server.

* The body is ``json.dumps(payload)`` of ``{"event", "webhook_id", "job", "sender"}`` (the
  job serialized as ``GET /api/jobs/{id}`` returns it); with a secret, the header
  ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
* Timeouts: 3 s to connect, 10 s to read. A connection error counts as 502, a timeout as
  504; 5xx, 408 and 429 are retried after each of ``retry_intervals`` (CVAT: 5 s, 5 min,
  30 min, 3 h, then daily; tests use short ones); any other status is final.
* ``update:job`` is sent whenever a job is saved: its stage/state changes and every
  annotation save (which moves its ``updated_date``), with or without a state change.
* :meth:`WebhookSender.redeliver` sends a delivery's body again, as the UI's "Redeliver".

Deliveries go out one at a time, in order, from a background thread.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE = frozenset({408, 429})


@dataclass
class Webhook:
    id: int
    project_id: int
    target_url: str
    secret: str = ""
    events: tuple[str, ...] = ("update:job",)
    is_active: bool = True


@dataclass
class Delivery:
    """One event sent to one webhook, with every attempt's ``(status, seconds)``."""

    id: int
    webhook_id: int
    url: str
    event: str
    body: bytes
    headers: dict[str, str]
    redelivery: bool = False
    attempts: list[tuple[int, float]] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        return self.attempts[-1][0] if self.attempts else None


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Sends deliveries from a daemon thread; :meth:`wait_idle` waits until none is due."""

    def __init__(self, retry_intervals: tuple[float, ...] | None = None) -> None:
        """``retry_intervals``: the waits before each retry (None: short ones for tests; an
        empty tuple: no retry, as CVAT before mid-2026)."""
        self.retry_intervals = (0.2, 0.5, 1.0, 2.0) if retry_intervals is None else retry_intervals
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._heap: list[tuple[float, int, Delivery, int]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0))
        self._thread = threading.Thread(target=self._loop, daemon=True, name="fake-cvat-webhooks")
        self._thread.start()

    def send(self, webhook: Webhook, payload: dict[str, Any], redelivery: bool = False) -> Delivery:
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if webhook.secret:
            headers["X-Signature-256"] = sign(webhook.secret, body)
        delivery = Delivery(
            next(self._ids), webhook.id, webhook.target_url, payload["event"], body, headers,
            redelivery,
        )  # fmt: skip
        self._schedule(delivery, 0.0, 0)
        return delivery

    def redeliver(self, delivery: Delivery) -> Delivery:
        again = Delivery(
            next(self._ids), delivery.webhook_id, delivery.url, delivery.event, delivery.body,
            dict(delivery.headers), redelivery=True,
        )  # fmt: skip
        self._schedule(again, 0.0, 0)
        return again

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("webhook deliveries still pending")
                self._cond.wait(min(left, 0.1))

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(15)
        self._client.close()

    def _schedule(self, delivery: Delivery, delay: float, attempt: int) -> None:
        with self._cond:
            if attempt == 0:
                self.deliveries.append(delivery)
            heapq.heappush(self._heap, (time.monotonic() + delay, delivery.id, delivery, attempt))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(0.05)
                if self._stopped:
                    return
                _, _, delivery, attempt = heapq.heappop(self._heap)
                self._busy = True
            try:
                status = self._post(delivery)
                if (status >= 500 or status in RETRYABLE) and attempt < len(self.retry_intervals):
                    self._schedule(delivery, self.retry_intervals[attempt], attempt + 1)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _post(self, delivery: Delivery) -> int:
        started = time.monotonic()
        try:
            response = self._client.post(
                delivery.url, content=delivery.body, headers=delivery.headers
            )
            status = response.status_code
        except httpx.TimeoutException:
            status = 504
        except httpx.TransportError:
            status = 502
        delivery.attempts.append((status, time.monotonic() - started))
        return status
