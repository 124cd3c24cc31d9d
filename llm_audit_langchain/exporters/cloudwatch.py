"""``CloudWatchExporter``: events as JSON lines in a CloudWatch Logs stream (extra ``aws``).

    exporter = CloudWatchExporter("/llm-audit/prod", retention_days=30)
    handler = AuditCallbackHandler(exporters=[exporter])

or ``AUDIT_EXPORTER=cloudwatch AUDIT_CLOUDWATCH_LOG_GROUP=/llm-audit/prod``. Credentials, region
and endpoint come from the standard AWS variables (``AWS_REGION``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``...). The stream defaults to ``<host>-<pid>``, so processes
never write to one stream together. The group and stream are created on first use (and again if
they disappear); calls are cut to the service's limits (``cloudwatch_batches``); throttling and
5xx answers are retried with backoff inside one export, anything else fails the export and the
pipeline retries it later without sending twice what was already accepted. With
``metrics=True`` every LLM call also writes an Embedded Metric Format line (cost, tokens,
latency by model), which CloudWatch turns into metrics without extra code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError
from ..events import AuditEvent, AuditEventType, event_to_dict
from .cloudwatch_batches import LogEvent, PrepareCounts, batches, message_parts, restamp
from .jsonl import json_safe

if TYPE_CHECKING:
    from ..config import AuditConfig

logger = logging.getLogger("llm_audit_langchain")

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)
"""The values ``PutRetentionPolicy`` accepts."""
_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
_STREAM_NAME = re.compile(r"^[^:*]{1,512}$")
_THROTTLED_CODES = {"RequestLimitExceeded", "TooManyRequestsException"}
_SERVER_ERROR_CODES = {"ServiceUnavailableException", "InternalFailure", "ServiceUnavailable"}
_EMF_METRICS = (("CostUSD", "None", "cost_usd"), ("TokensInput", "Count", "tokens_input"),
                ("TokensOutput", "Count", "tokens_output"),
                ("LatencyMs", "Milliseconds", "latency_ms"))


def default_stream_name() -> str:
    """``<host>-<pid>``: one stream per process."""
    return f"{socket.gethostname()}-{os.getpid()}"


class CloudWatchExporter:
    """Sends events to CloudWatch Logs with ``PutLogEvents``.

    Args:
        log_group: the log group (created when missing).
        log_stream: the stream; default ``<host>-<pid>``.
        retention_days: set this retention policy on the group (one of :data:`RETENTION_DAYS`).
        metrics: also write an Embedded Metric Format line per LLM call.
        metrics_namespace: the CloudWatch namespace of those metrics.
        region_name, endpoint_url: override the AWS defaults (the environment's otherwise).
        client: a ready ``logs`` client (then the two above are ignored).
        max_attempts: tries per call when throttled or answered 5xx.
        timeout_s: connect and read timeout of each call.
    """

    name = "cloudwatch"

    def __init__(self, log_group: str, log_stream: str | None = None, *,
                 retention_days: int | None = None, metrics: bool = False,
                 metrics_namespace: str = "LLMAudit", region_name: str | None = None,
                 endpoint_url: str | None = None, client: Any = None, max_attempts: int = 5,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(log_group, str) or not _GROUP_NAME.match(log_group):
            raise ConfigError(f"CloudWatch log group {log_group!r}: 1-512 characters of "
                              "letters, digits and . - _ / # (AUDIT_CLOUDWATCH_LOG_GROUP)")
        stream = log_stream or default_stream_name()
        if not _STREAM_NAME.match(stream):
            raise ConfigError(f"CloudWatch log stream {stream!r}: 1-512 characters, no ':' "
                              "or '*' (AUDIT_CLOUDWATCH_LOG_STREAM)")
        if retention_days is not None and retention_days not in RETENTION_DAYS:
            raise ConfigError(f"CloudWatch retention {retention_days!r} days is not accepted "
                              f"(AUDIT_CLOUDWATCH_RETENTION_DAYS); use one of {RETENTION_DAYS}")
        if max_attempts < 1:
            raise ConfigError("CloudWatchExporter: max_attempts must be at least 1")
        self.log_group = log_group
        self.log_stream = stream
        self.retention_days = retention_days
        self.metrics = metrics
        self.metrics_namespace = metrics_namespace
        self._max_attempts = max_attempts
        self._clock = clock
        self._client = client if client is not None else _logs_client(
            region_name, endpoint_url, timeout_s)
        if metrics:
            # PutLogEvents turns EMF lines into metrics only when the request says so.
            self._client.meta.events.register("before-sign.cloudwatch-logs.PutLogEvents",
                                              _emf_header)
        self._lock = threading.Lock()
        self._ready = False
        self._accepted_keys: set[str] = set()  # sent during an export that then failed
        self._closed = False
        self._counts = PrepareCounts()
        self._stats = {"events": 0, "log_events": 0, "calls": 0, "throttled_retries": 0,
                       "server_error_retries": 0, "failed_calls": 0, "rejected_too_old": 0,
                       "rejected_too_new": 0, "rejected_expired": 0, "metric_lines": 0,
                       "created_groups": 0, "created_streams": 0}

    def stats(self) -> dict[str, int]:
        """Counts since construction: ``events`` exported, ``log_events`` sent (parts and metric
        lines included), ``calls``, retries, failures, what the service rejected, and events
        split, truncated or restamped to fit the limits."""
        # No lock: an export may hold it for a whole network call; a dict copy is consistent
        # enough for counters that only grow.
        return {**self._stats, "split_events": self._counts.split_events,
                "truncated_events": self._counts.truncated_events,
                "restamped_events": self._counts.restamped_events}

    # -- exporter protocol -------------------------------------------------------------------

    def export(self, batch: Sequence[AuditEvent]) -> None:
        with self._lock:
            if self._closed:
                return
            log_events = self._log_events(batch)
            # Only this batch's keys matter (a retry is the same batch): keys of a batch the
            # pipeline gave up on after a partial send must not stay here for ever.
            if self._accepted_keys:
                self._accepted_keys.intersection_update(e.key for e in log_events)
            pending = [e for e in log_events if e.key not in self._accepted_keys]
            for call in batches(pending):
                self._send(call)
                self._accepted_keys.update(e.key for e in call)
            # The whole batch is in: forget the keys (the pipeline will not retry it).
            self._accepted_keys.clear()
            self._stats["events"] += len(batch)

    def force_flush(self, timeout: float | None = None) -> bool:
        return True  # every export is sent before it returns

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            close = getattr(self._client, "close", None)  # its connection pool
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock and its own stream (never the parent's)."""
        self._lock = threading.Lock()
        if self.log_stream.endswith(f"-{os.getppid()}"):
            self.log_stream = default_stream_name()
            self._ready = False

    # -- building the calls --------------------------------------------------------------------

    def _log_events(self, batch: Sequence[AuditEvent]) -> list[LogEvent]:
        now_ms = int(self._clock() * 1000)
        out: list[LogEvent] = []
        for event in batch:
            stamp = int(event.timestamp.timestamp() * 1000)
            line = _json_line(event)
            parts = message_parts(line, event.event_id, event.trace_id, self._counts)
            out.extend(LogEvent(stamp, part, f"{event.event_id}:{index}")
                       for index, part in enumerate(parts))
            if self.metrics and event.event_type == AuditEventType.LLM_INVOKE:
                metric = emf_line(event, self.metrics_namespace)
                if metric is not None:
                    out.append(LogEvent(stamp, metric, f"{event.event_id}:emf"))
                    self._stats["metric_lines"] += 1
        return restamp(out, now_ms, self._counts)

    # -- sending ------------------------------------------------------------------------------

    def _send(self, call: list[LogEvent]) -> None:
        if not self._ready:
            self._ensure_destination()
        attempt = 0
        while True:
            attempt += 1
            try:
                self._stats["calls"] += 1
                response = self._client.put_log_events(
                    logGroupName=self.log_group, logStreamName=self.log_stream,
                    logEvents=[e.as_input() for e in call])
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ResourceNotFoundException" and attempt == 1:
                    self._ensure_destination()  # deleted, or the service lost it: recreate
                    continue
                if attempt < self._max_attempts and self._retryable(exc, code):
                    time.sleep(min(5.0, 0.1 * 2 ** (attempt - 1)))
                    continue
                self._stats["failed_calls"] += 1
                raise
            except BotoCoreError:
                self._stats["failed_calls"] += 1
                raise  # unreachable, timed out: the pipeline retries the batch with backoff
        self._stats["log_events"] += len(call)
        self._count_rejected(response.get("rejectedLogEventsInfo") or {}, len(call))

    def _retryable(self, exc: ClientError, code: str) -> bool:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if "Throttl" in code or code in _THROTTLED_CODES:
            self._stats["throttled_retries"] += 1
            return True
        if status >= 500 or code in _SERVER_ERROR_CODES:
            self._stats["server_error_retries"] += 1
            return True
        return False

    def _count_rejected(self, info: dict[str, int], sent: int) -> None:
        if not info:
            return
        if "tooOldLogEventEndIndex" in info:
            self._stats["rejected_too_old"] += info["tooOldLogEventEndIndex"] + 1
        if "expiredLogEventEndIndex" in info:
            self._stats["rejected_expired"] += info["expiredLogEventEndIndex"] + 1
        if "tooNewLogEventStartIndex" in info:
            self._stats["rejected_too_new"] += sent - info["tooNewLogEventStartIndex"]
        logger.warning("CloudWatch rejected some log events of %s/%s: %s (counted in stats)",
                       self.log_group, self.log_stream, info)

    def _ensure_destination(self) -> None:
        client = self._client
        try:
            client.create_log_group(logGroupName=self.log_group)
            self._stats["created_groups"] += 1
        except client.exceptions.ResourceAlreadyExistsException:
            pass
        if self.retention_days is not None:
            client.put_retention_policy(logGroupName=self.log_group,
                                        retentionInDays=self.retention_days)
        try:
            client.create_log_stream(logGroupName=self.log_group, logStreamName=self.log_stream)
            self._stats["created_streams"] += 1
        except client.exceptions.ResourceAlreadyExistsException:
            pass
        self._ready = True


def _json_line(event: AuditEvent) -> str:
    record = event_to_dict(event)
    try:
        return orjson.dumps(record).decode("utf-8")
    except (TypeError, ValueError, orjson.JSONEncodeError):
        return orjson.dumps(json_safe(record)).decode("utf-8")


def emf_line(event: AuditEvent, namespace: str) -> str | None:
    """An Embedded Metric Format line with the cost, tokens and latency of one LLM call,
    dimensioned by model (and by nothing, for the totals); None when it has none of them."""
    values = {name: getattr(event, field) for name, _, field in _EMF_METRICS
              if getattr(event, field) is not None}
    if not values:
        return None
    model = event.model or "unknown"
    document = {
        "_aws": {
            "Timestamp": int(event.timestamp.timestamp() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["model"], []],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in _EMF_METRICS
                            if name in values],
            }],
        },
        "model": model,
        "trace_id": event.trace_id,
        **values,
    }
    return orjson.dumps(document).decode("utf-8")


def _emf_header(request: Any, **_: Any) -> None:
    request.headers["x-amzn-logs-format"] = "json/emf"


def _logs_client(region_name: str | None, endpoint_url: str | None, timeout_s: float) -> Any:
    # Our own loop retries throttling with counts; botocore's retries would hide them.
    config = Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                    retries={"total_max_attempts": 1, "mode": "standard"})
    try:
        return boto3.session.Session().client("logs", region_name=region_name,
                                              endpoint_url=endpoint_url, config=config)
    except BotoCoreError as exc:  # no region anywhere, a malformed endpoint...
        raise ConfigError(f"CloudWatch Logs client: {exc} (set AWS_REGION or AWS_DEFAULT_REGION)"
                          ) from exc


def cloudwatch_from_config(config: AuditConfig) -> CloudWatchExporter:
    """``AUDIT_EXPORTER=cloudwatch``: the exporter the ``AUDIT_CLOUDWATCH_*`` settings describe."""
    if not config.cloudwatch_log_group:
        raise ConfigError("AUDIT_EXPORTER=cloudwatch needs AUDIT_CLOUDWATCH_LOG_GROUP")
    return CloudWatchExporter(config.cloudwatch_log_group, config.cloudwatch_log_stream,
                              retention_days=config.cloudwatch_retention_days,
                              metrics=config.cloudwatch_metrics)
