"""The bridge's configuration, read from the environment and a ``.env`` file.

Variables (the real environment wins over ``./.env``; ``CORALSEG_`` spellings are accepted
for the bridge-specific ones):

* ``CVAT_URL`` and either ``CVAT_ACCESS_TOKEN`` or ``CVAT_USERNAME`` + ``CVAT_PASSWORD``;
* ``WEBHOOK_SECRET`` -- the secret typed into CVAT's webhook form;
* ``CACHE_DIR`` -- where the embedded queue and run records live (default
  ``~/.cache/coralseg/bridge``);
* ``CORALSEG_QUEUE_URL`` (or ``QUEUE_URL``) -- ``redis://host:port/db`` for a shared Redis,
  else a SQLite file path (default ``CACHE_DIR/queue.sqlite``);
* ``CORALSEG_MODELS`` -- the model registry file (YAML or JSON, see :mod:`.registry`);
* ``CORALSEG_WATCH_PROJECTS`` -- projects reconciliation watches without waiting for their
  webhook's first event: ``PROJECT_ID=MODEL_NAME[@ORG_ID]``, comma-separated (see
  :func:`.reconcile.watched_projects`);
* ``AUTO_ANN_TIMEOUT`` -- seconds a run may take before it is stopped and reported (3600);
* ``CORALSEG_DEVICE`` (``cpu``), ``CORALSEG_MAX_BODY_BYTES`` (1 MiB),
  ``CORALSEG_UPLOAD_BATCH_FRAMES`` (8), ``CORALSEG_RUN_LEASE`` (seconds a worker holds a
  run without a heartbeat, 120), ``CORALSEG_RECOVER_INTERVAL`` (10),
  ``CORALSEG_RECONCILE_INTERVAL`` (300; 0 turns reconciliation off),
  ``CORALSEG_CVAT_RETRIES`` (6), ``CORALSEG_CVAT_TIMEOUT`` (seconds per request, 60),
  ``CORALSEG_WORKER_NICE`` (10: workers yield the CPU to the web service);
* ``CORALSEG_REQUEST_TIMEOUT`` (3) -- seconds the web service waits for the records or the
  queue on one request (a locked file, a hung Redis) before it answers 503: CVAT gives up
  after 10 s; ``CORALSEG_BODY_TIMEOUT`` (5) -- seconds a client may take to send its body;
* ``CORALSEG_STATUS_TOKEN`` -- a token for ``GET /runs/{job}`` (``Authorization: Bearer``);
  the webhook secret is accepted too;
* ``CORALSEG_ALLOW_VOLATILE_STORE`` (``0``) -- ``1`` starts the bridge on a Redis that keeps
  nothing over a restart (otherwise refused: see :meth:`.kv.RedisStore.durability`).

Secrets never appear in :func:`repr` or logs: :meth:`BridgeSettings.describe` is what the
bridge prints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from coral_core.errors import CoralsegError

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "coralseg" / "bridge"


@dataclass(frozen=True)
class BridgeSettings:
    """Everything the web service and the workers need; see the module docstring."""

    cvat_url: str = ""
    cvat_username: str = field(default="", repr=False)
    cvat_password: str = field(default="", repr=False)
    cvat_access_token: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    cache_dir: Path = DEFAULT_CACHE_DIR
    queue_url: str = field(default="", repr=False)  # may hold a Redis password
    models_file: Path | None = None
    device: str = "cpu"
    auto_ann_timeout: float = 3600.0
    max_body_bytes: int = 1 << 20
    upload_batch_frames: int = 8
    run_lease: float = 120.0
    recover_interval: float = 10.0
    reconcile_interval: float = 300.0
    cvat_retries: int = 6
    cvat_timeout: float = 60.0
    retry_base_delay: float = 0.5
    worker_nice: int = 10
    watch_projects: str = ""
    request_timeout: float = 3.0
    body_timeout: float = 5.0
    status_token: str = field(default="", repr=False)
    allow_volatile_store: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env"
    ) -> BridgeSettings:
        """Read the variables of the module docstring; ``dotenv`` None reads no file."""
        values: dict[str, str] = {}
        if dotenv is not None and Path(dotenv).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)

        def get(*names: str, default: str = "") -> str:
            for name in names:
                if values.get(name, "") != "":
                    return values[name]
            return default

        def number(kind: type, default: float, *names: str) -> float:
            text = get(*names)
            if text == "":
                return default
            try:
                value = kind(text)
            except ValueError:
                raise CoralsegError(f"{names[0]} must be a number, not {text!r}") from None
            if value < 0:
                raise CoralsegError(f"{names[0]} must not be negative, got {text}")
            return value

        cache_dir = Path(get("CACHE_DIR", "CORALSEG_CACHE_DIR", default=str(DEFAULT_CACHE_DIR)))
        models = get("CORALSEG_MODELS", "MODELS_FILE")
        return cls(
            cvat_url=get("CVAT_URL", "CORALSEG_CVAT_URL").rstrip("/"),
            cvat_username=get("CVAT_USERNAME", "CORALSEG_CVAT_USERNAME"),
            cvat_password=get("CVAT_PASSWORD", "CORALSEG_CVAT_PASSWORD"),
            cvat_access_token=get("CVAT_ACCESS_TOKEN", "CORALSEG_CVAT_ACCESS_TOKEN"),
            webhook_secret=get("WEBHOOK_SECRET", "CORALSEG_WEBHOOK_SECRET"),
            cache_dir=cache_dir.expanduser(),
            queue_url=get("CORALSEG_QUEUE_URL", "QUEUE_URL"),
            models_file=Path(models).expanduser() if models else None,
            device=get("CORALSEG_DEVICE", default="cpu"),
            auto_ann_timeout=number(float, 3600.0, "AUTO_ANN_TIMEOUT", "CORALSEG_AUTO_ANN_TIMEOUT"),
            max_body_bytes=int(number(int, 1 << 20, "CORALSEG_MAX_BODY_BYTES")),
            upload_batch_frames=max(1, int(number(int, 8, "CORALSEG_UPLOAD_BATCH_FRAMES"))),
            run_lease=number(float, 120.0, "CORALSEG_RUN_LEASE"),
            recover_interval=number(float, 10.0, "CORALSEG_RECOVER_INTERVAL"),
            reconcile_interval=number(float, 300.0, "CORALSEG_RECONCILE_INTERVAL"),
            cvat_retries=int(number(int, 6, "CORALSEG_CVAT_RETRIES")),
            cvat_timeout=number(float, 60.0, "CORALSEG_CVAT_TIMEOUT"),
            retry_base_delay=number(float, 0.5, "CORALSEG_RETRY_BASE_DELAY"),
            worker_nice=int(number(int, 10, "CORALSEG_WORKER_NICE")),
            watch_projects=get("CORALSEG_WATCH_PROJECTS"),
            request_timeout=max(0.1, number(float, 3.0, "CORALSEG_REQUEST_TIMEOUT")),
            body_timeout=max(0.1, number(float, 5.0, "CORALSEG_BODY_TIMEOUT")),
            status_token=get("CORALSEG_STATUS_TOKEN"),
            allow_volatile_store=get("CORALSEG_ALLOW_VOLATILE_STORE", default="0").lower()
            in ("1", "true", "yes", "on"),
        )

    @property
    def effective_queue_url(self) -> str:
        """The queue URL, defaulting to the embedded SQLite file in the cache folder."""
        return self.queue_url or str(self.cache_dir / "queue.sqlite")

    @property
    def uses_redis(self) -> bool:
        return self.effective_queue_url.startswith(("redis://", "rediss://", "unix://"))

    def check_cvat(self) -> None:
        """Raise a sentence when the CVAT server or its credentials are missing."""
        if not self.cvat_url:
            raise CoralsegError("CVAT_URL is not set: give the CVAT server's address")
        if not self.cvat_access_token and not (self.cvat_username and self.cvat_password):
            raise CoralsegError(
                "no CVAT credentials: set CVAT_ACCESS_TOKEN (a personal access token) or "
                "CVAT_USERNAME and CVAT_PASSWORD"
            )

    def describe(self) -> dict[str, object]:
        """What the bridge logs at start: the configuration without any secret."""
        return {
            "cvat_url": self.cvat_url,
            "cvat_auth": "token" if self.cvat_access_token else "password",
            "webhook_signed": bool(self.webhook_secret),
            "queue": _redact_url(self.effective_queue_url),
            "models_file": str(self.models_file) if self.models_file else None,
            "device": self.device,
        }


def _redact_url(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://***@host``."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
