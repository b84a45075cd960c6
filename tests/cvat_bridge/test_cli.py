"""``coralseg bridge``: refuses to start unsigned unless told, and says what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from coralseg.cli import main
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings

BRIDGE_VARS = (
    "WEBHOOK_SECRET", "CORALSEG_WEBHOOK_SECRET", "CVAT_URL", "CVAT_USERNAME", "CVAT_PASSWORD",
    "CVAT_ACCESS_TOKEN", "CORALSEG_MODELS", "CORALSEG_QUEUE_URL", "QUEUE_URL",
)  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    for name in BRIDGE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./.env
    return tmp_path


def test_refuses_to_start_without_a_webhook_secret(clean_env: Path, capsys) -> None:
    assert main(["bridge", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "WEBHOOK_SECRET is not set" in err and "--unsigned" in err


def test_says_what_is_missing(clean_env: Path, monkeypatch, capsys) -> None:
    assert main(["bridge", "--unsigned"]) == 2
    assert "CVAT_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("CVAT_URL", "http://127.0.0.1:9")
    assert main(["bridge", "--unsigned"]) == 2
    assert "no CVAT credentials" in capsys.readouterr().err
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "token")
    assert main(["bridge", "--unsigned"]) == 2
    assert "CORALSEG_MODELS is not set" in capsys.readouterr().err
    (clean_env / "models.yaml").write_text("models: {}\n")
    monkeypatch.setenv("CORALSEG_MODELS", str(clean_env / "models.yaml"))
    assert main(["bridge", "--unsigned"]) == 2
    assert "needs a 'models:' mapping" in capsys.readouterr().err
    assert main(["bridge", "--no-server", "--workers", "0"]) == 2
    assert "would run nothing" in capsys.readouterr().err


def test_settings_from_dotenv_never_show_secrets(clean_env: Path, registry_file: Path) -> None:
    (clean_env / ".env").write_text(
        "CVAT_URL=http://cvat:8080/\nCVAT_USERNAME=bot\nCVAT_PASSWORD=hunter2\n"
        "WEBHOOK_SECRET=s3cret\nCORALSEG_QUEUE_URL=redis://:pw@redis:6379/3\n"
        f"CORALSEG_MODELS={registry_file}\n"
    )
    settings = BridgeSettings.from_env()
    assert settings.cvat_url == "http://cvat:8080" and settings.uses_redis
    shown = f"{settings!r} {settings.describe()}"
    for secret in ("hunter2", "s3cret", ":pw@"):
        assert secret not in shown
    registry = ModelRegistry.from_file(settings.models_file)
    assert registry.names == ["tiny-coral"] and registry.spec("tiny-coral").version == "1"
    with pytest.raises(ValueError, match="unknown model_name 'x'"):
        registry.spec("x")


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bridge", "--help"])
    out = capsys.readouterr().out
    assert "coralseg bridge --port 8000 --workers 2" in out and "WEBHOOK_SECRET" in out


def test_bad_state_files_and_a_volatile_redis_are_sentences(
    clean_env: Path, unloaded_registry: Path, monkeypatch, capsys, tmp_path: Path
) -> None:
    """A damaged, misplaced or locked state file, or a Redis that keeps nothing over a
    restart: ``coralseg bridge`` says which file or server, what is wrong and what to do --
    never a traceback -- before it starts anything."""
    import sqlite3

    from tests.cvat_bridge.harness import RedisServer

    monkeypatch.setenv("CVAT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "token")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("CORALSEG_MODELS", str(unloaded_registry))
    cache = tmp_path / "cache"
    monkeypatch.setenv("CACHE_DIR", str(cache))
    records = cache / "queue-records.sqlite"
    cache.mkdir()

    records.write_bytes(b"\x00garbage" * 512)
    assert main(["bridge"]) == 2
    err = capsys.readouterr().err
    assert str(records) in err and "move the file aside" in err and "Traceback" not in err

    records.unlink()
    records.mkdir()
    assert main(["bridge"]) == 2
    err = capsys.readouterr().err
    assert str(records) in err and "cannot be written" in err

    records.rmdir()
    (cache / "queue.sqlite").write_bytes(b"\x00garbage" * 512)
    assert main(["bridge"]) == 2
    err = capsys.readouterr().err
    assert str(cache / "queue.sqlite") in err and "move the file aside" in err

    (cache / "queue.sqlite").unlink()
    monkeypatch.setenv("CORALSEG_REQUEST_TIMEOUT", "0.5")
    holder = sqlite3.connect(records, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert main(["bridge"]) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert str(records) in err and "locked by another process" in err

    volatile = RedisServer(tmp_path / "redis", durable=False).start()
    try:
        monkeypatch.setenv("CORALSEG_QUEUE_URL", volatile.url)
        assert main(["bridge"]) == 2
        err = capsys.readouterr().err
        assert "in memory only" in err and "appendonly yes" in err
        assert "CORALSEG_ALLOW_VOLATILE_STORE=1" in err
    finally:
        volatile.stop()
