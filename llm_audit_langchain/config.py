"""Settings, read once. ``AuditConfig.from_env()`` reads the variables below (seed 001 §3.3).

| variable | default | meaning |
|---|---|---|
| ``AUDIT_ENABLED`` | ``true`` | ``false`` turns the handler into a no-op |
| ``AUDIT_EXPORTER`` | ``jsonl`` | sinks, comma-separated: ``jsonl,stdout,memory,none`` |
| ``AUDIT_LOG_DIR`` | ``logs`` | where ``JsonlExporter`` writes ``audit-YYYY-MM-DD.jsonl`` |
| ``AUDIT_DEBUG`` | ``false`` | keep every trace (no sampling) |
| ``AUDIT_INCLUDE_SNAPSHOTS`` | ``true`` | sanitized input snapshots in ``ErrorDetail`` |
| ``AUDIT_QUEUE_SIZE`` | ``10000`` | bound of the event queue; when full the oldest is dropped |
| ``AUDIT_BATCH_SIZE`` | ``512`` | events per export call |
| ``AUDIT_FLUSH_INTERVAL_MS`` | ``500`` | the worker exports at least this often |
| ``AUDIT_RUN_TTL_S`` | ``600`` | a run with no end after this long is closed as ``timeout`` |
| ``AUDIT_MAX_RUNS`` | ``100000`` | bound of the open-run map (oldest evicted as ``timeout``) |
| ``AUDIT_FSYNC`` | ``false`` | fsync the JSONL file after each batch |
| ``AUDIT_SHUTDOWN_TIMEOUT_S`` | ``5`` | how long the exit hook waits to flush |
| ``AUDIT_MONGO_URI`` | — | ``MongoExporter``'s ``mongodb://`` URI (``AUDIT_EXPORTER=mongodb``) |
| ``AUDIT_POSTGRES_DSN`` | — | ``PostgresExporter``'s DSN (``AUDIT_EXPORTER=postgres``) |
| ``AUDIT_RETENTION_DAYS`` | ``90`` | how long the database stores keep events |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CaptureMode = Literal["none", "redacted", "full"]


class AuditConfig(BaseSettings):
    """Everything the handler and pipeline can be tuned with. Fields map to ``AUDIT_*`` env vars."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", frozen=True)

    enabled: bool = True
    exporter: str = "jsonl"
    log_dir: Path = Path("logs")
    debug: bool = False
    include_snapshots: bool = True
    capture: CaptureMode = "redacted"
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=512, ge=1)
    flush_interval_ms: float = Field(default=500.0, gt=0)
    run_ttl_s: float = Field(default=600.0, gt=0)
    max_runs: int = Field(default=100_000, ge=1)
    fsync: bool = False
    shutdown_timeout_s: float = Field(default=5.0, ge=0)
    mongo_uri: str | None = None
    postgres_dsn: str | None = None
    retention_days: int = Field(default=90, ge=1)
    retry_initial_backoff_s: float = Field(default=0.1, gt=0)
    retry_max_backoff_s: float = Field(default=30.0, gt=0)
    sampling: Any = Field(
        default=None, exclude=True,
        description="A SamplingPolicy; None reads TRACE/SUCCESS/ERROR_SAMPLE_RATE from the env.",
    )

    @classmethod
    def from_env(cls) -> AuditConfig:
        """Read ``AUDIT_*`` (and the sampling variables) from the environment."""
        return cls()
