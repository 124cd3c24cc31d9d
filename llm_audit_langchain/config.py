"""Settings, read once. ``AuditConfig.from_env()`` reads the variables below.

| variable | default | meaning |
|---|---|---|
| ``AUDIT_ENABLED`` | ``true`` | ``false`` turns the handler into a no-op |
| ``AUDIT_EXPORTER`` | ``jsonl`` | sinks, comma-separated (see ``exporters/registry.py``) |
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
| ``AUDIT_CHAIN_DIR`` | ``audit`` | directory of the hash chain (``AUDIT_EXPORTER=audit``) |
| ``AUDIT_CLOUDWATCH_LOG_GROUP`` | | log group of ``AUDIT_EXPORTER=cloudwatch`` (required there) |
| ``AUDIT_CLOUDWATCH_LOG_STREAM`` | host + pid | log stream; one per process by default |
| ``AUDIT_CLOUDWATCH_RETENTION_DAYS`` | | retention policy set on the group when given |
| ``AUDIT_CLOUDWATCH_METRICS`` | ``false`` | also Embedded Metric Format lines per LLM call |
| ``AUDIT_KAFKA_BOOTSTRAP`` | | ``host:port,...`` of ``AUDIT_EXPORTER=kafka`` (required there) |
| ``AUDIT_KAFKA_TOPIC`` | ``llm-audit-events`` | topic of ``AUDIT_EXPORTER=kafka`` |
| ``AUDIT_WRITE_AHEAD_TOOLS`` | (none) | tool names (comma-separated) whose calls are write-ahead |
| ``AUDIT_WRITE_AHEAD_TIMEOUT_S`` | ``0`` | a write-ahead tool waits up to this long for its call |
|  |  | record to be fsync'd in the audit chain; ``0``: never waits |
| ``AUDIT_KEEP_FIRST_TRACES`` | ``3`` | the first traces of each handler are always kept |

Values are case-insensitive and an empty variable means its default. A value we cannot use
raises ``ConfigError`` naming the variable (or the argument), the value and what is allowed; so
does an unknown ``AuditConfig`` argument. An ``AUDIT_*`` variable that is not one of ours but
close to one (``AUDIT_DEGUB``) is reported once with a warning.
| ``AUDIT_MONGO_URI`` | — | ``MongoExporter``'s ``mongodb://`` URI (``AUDIT_EXPORTER=mongodb``) |
| ``AUDIT_POSTGRES_DSN`` | — | ``PostgresExporter``'s DSN (``AUDIT_EXPORTER=postgres``) |
| ``AUDIT_RETENTION_DAYS`` | ``90`` | how long the database stores keep events |
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

logger = logging.getLogger("llm_audit_langchain")

CaptureMode = Literal["none", "redacted", "full"]


class AuditConfig(BaseSettings):
    """Everything the handler and pipeline can be tuned with. Fields map to ``AUDIT_*`` env vars."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", frozen=True,
                                      env_ignore_empty=True)

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
    keep_first_traces: int = Field(default=3, ge=0)
    mongo_uri: str | None = None
    postgres_dsn: str | None = None
    retention_days: int = Field(default=90, ge=1)
    retry_initial_backoff_s: float = Field(default=0.1, gt=0)
    retry_max_backoff_s: float = Field(default=30.0, gt=0)
    # Settings of the sinks selected by name in ``exporter`` (exporters/registry.py).
    chain_dir: Path = Path("audit")
    cloudwatch_log_group: str | None = None
    cloudwatch_log_stream: str | None = None
    cloudwatch_retention_days: int | None = None
    cloudwatch_metrics: bool = False
    kafka_bootstrap: str | None = None
    kafka_topic: str = "llm-audit-events"
    write_ahead_tools: str = Field(
        default="", description="Comma-separated tool names treated as side-effecting, as a tool "
        "whose metadata has audit='write_ahead'.",
    )
    write_ahead_timeout_s: float = Field(default=0.0, ge=0, le=60)
    sampling: Any = Field(
        default=None, exclude=True,
        description="A SamplingPolicy; None reads TRACE/SUCCESS/ERROR_SAMPLE_RATE from the env.",
    )

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        unknown = sorted(k for k in values if k not in fields and not k.startswith("_"))
        if unknown:
            raise ConfigError(f"AuditConfig: unknown argument(s) {', '.join(unknown)}"
                              f"{_suggestion(unknown[0], list(fields))}; allowed: "
                              f"{', '.join(fields)} (sampling rates go in "
                              f"sampling=SamplingPolicy(...))")
        warn_misspelled_variables()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc, values) from None

    @field_validator("capture", mode="before")
    @classmethod
    def _lower_capture(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("exporter", mode="before")
    @classmethod
    def _default_exporter(cls, value: Any) -> Any:
        if isinstance(value, str):  # names are case-insensitive; empty means the default
            return value.strip().lower() or "jsonl"
        return value

    @classmethod
    def from_env(cls) -> AuditConfig:
        """Read ``AUDIT_*`` (and the sampling variables) from the environment."""
        return cls()

    def write_ahead_names(self) -> frozenset[str]:
        """The tool names in ``write_ahead_tools``."""
        return frozenset(n.strip() for n in self.write_ahead_tools.split(",") if n.strip())

# AUDIT_* variables read outside AuditConfig (by exporters, the sampler, alerts, the chain).
OTHER_VARIABLES = (
    "AUDIT_CHAIN_KEY", "AUDIT_CHAIN_DIR", "AUDIT_PRICE_OVERRIDES", "AUDIT_COST_THRESHOLD_USD",
    "AUDIT_MONGO_URI", "AUDIT_POSTGRES_DSN", "AUDIT_RETENTION_DAYS", "AUDIT_CLOUDWATCH_LOG_GROUP",
    "AUDIT_CLOUDWATCH_LOG_STREAM", "AUDIT_KAFKA_BOOTSTRAP", "AUDIT_KAFKA_TOPIC", "AUDIT_ALERTS",
    "AUDIT_ALERT_RULES", "AUDIT_ALERT_INTERVAL_S", "AUDIT_ALERT_WEBHOOK_URL",
    "AUDIT_ALERT_WEBHOOK_SECRET", "AUDIT_ALERT_SNS_TOPIC_ARN",
)
# Read without the AUDIT_ prefix; ``AUDIT_SUCCESS_SAMPLE_RATE`` is a likely slip.
UNPREFIXED_VARIABLES = ("TRACE_SAMPLE_RATE", "SUCCESS_SAMPLE_RATE", "ERROR_SAMPLE_RATE",
                        "SLOW_REQUEST_THRESHOLD_MS")
_warned_variables: set[str] = set()


def known_variables() -> list[str]:
    """Every ``AUDIT_*`` variable the package reads."""
    fields = [f"AUDIT_{name.upper()}" for name in AuditConfig.model_fields if name != "sampling"]
    return [*fields, *OTHER_VARIABLES]


def warn_misspelled_variables() -> None:
    """Warn once per name about an ``AUDIT_*`` variable that looks like a misspelling of ours."""
    known = known_variables()
    for name in os.environ:
        if name in _warned_variables:
            continue
        hint = _misspelling_hint(name.upper(), known)
        if hint:
            _warned_variables.add(name)
            logger.warning("llm-audit: environment variable %s is not one we read%s",
                           name, hint)


def _misspelling_hint(upper: str, known: list[str]) -> str:
    """``"; did you mean X?"`` for a variable close to one we read, else ``""``."""
    if upper in UNPREFIXED_VARIABLES or upper in known:
        return ""
    if not upper.startswith("AUDIT_"):
        # SUCESS_SAMPLE_RATE would silently leave sampling at its default
        if "SAMPL" in upper or "SLOW_REQUEST" in upper:
            return _suggestion(upper, list(UNPREFIXED_VARIABLES))
        return ""
    unprefixed = upper.removeprefix("AUDIT_")
    if unprefixed in UNPREFIXED_VARIABLES:
        return f"; did you mean {unprefixed}?"
    return _suggestion(upper, known)


def _suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name.upper(), [k.upper() for k in known], n=1, cutoff=0.8)
    if not close:
        return ""
    match = next(k for k in known if k.upper() == close[0])
    return f"; did you mean {match}?"


def _config_error(exc: ValidationError, values: dict[str, Any]) -> ConfigError:
    """One line per bad setting: the variable (or argument), the value, what is allowed."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        value = error.get("input")
        where = (f"AuditConfig({field}={value!r})" if field in values
                 else f"AUDIT_{field.upper()}={value!r}")
        allowed = error["msg"].removeprefix("Input should be ")
        problems.append(f"{where}: must be {allowed}")
    return ConfigError("; ".join(problems))
