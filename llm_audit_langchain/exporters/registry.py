"""Every sink by name: ``AUDIT_EXPORTER=jsonl,otlp,kafka`` builds those exporters.

One table maps a name to a builder that takes the ``AuditConfig``. Sinks that live in other
packages of this project (OTLP, the hash chain) or need an optional dependency (CloudWatch,
Kafka) are named by ``module:attribute`` and imported only when selected, so the core install
never needs boto3 or confluent-kafka, and a missing extra is a ``ConfigError`` naming the
``pip install`` that fixes it.

Third-party exporters register under the entry-point group ``llm_audit_langchain.exporters``
(the OpenTelemetry SDK's convention for its exporters)::

    # the plug-in's pyproject.toml
    [project.entry-points."llm_audit_langchain.exporters"]
    splunk = "audit_splunk:SplunkExporter"

The entry point names a class or a factory; it is called with ``config=`` (the ``AuditConfig``)
when it takes a ``config`` parameter, else with no arguments. Built-in names win over plug-ins.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import Exporter
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .stdout import StdoutExporter

if TYPE_CHECKING:
    from ..config import AuditConfig

logger = logging.getLogger("llm_audit_langchain")

ENTRY_POINT_GROUP = "llm_audit_langchain.exporters"
DEFAULT_EXPORTERS = ("jsonl",)
ALIASES = {"jsonfile": "jsonl"}
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PACKAGE = "llm_audit_langchain"


@dataclass(frozen=True)
class _Lazy:
    """A sink imported only when selected: ``target`` is ``module:attribute``; ``build`` makes
    the exporter from what was imported and the config; ``extra`` is the pip extra it needs."""

    target: str
    extra: str | None
    build: Callable[[Any, AuditConfig], Exporter]

    def __call__(self, config: AuditConfig) -> Exporter:
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = exc.name or ""
            if self.extra is None or missing.startswith(_PACKAGE + ".") or missing == _PACKAGE:
                raise
            raise ConfigError(
                f"AUDIT_EXPORTER: this sink needs the {self.extra!r} extra (missing module "
                f"{missing or exc}): pip install 'llm-audit-langchain[{self.extra}]'") from None
        return self.build(getattr(module, attribute), config)


def _audit_chain(cls: Any, config: AuditConfig) -> Exporter:
    # The chain reads its HMAC key from AUDIT_CHAIN_KEY itself (plain SHA-256 without one).
    exporter: Exporter = cls(config.chain_dir, fsync=config.fsync)
    return exporter


def _from_config(factory: Any, config: AuditConfig) -> Exporter:
    exporter: Exporter = factory(config)
    return exporter


def _no_arguments(cls: Any, config: AuditConfig) -> Exporter:
    exporter: Exporter = cls()
    return exporter


BUILTIN: dict[str, Callable[[AuditConfig], Exporter]] = {
    "jsonl": lambda config: JsonlExporter(config.log_dir, fsync=config.fsync),
    "stdout": lambda config: StdoutExporter(),
    "memory": lambda config: MemoryExporter(),
    "otlp": _Lazy(f"{_PACKAGE}.otel.exporter:OtlpExporter", "otel", _no_arguments),
    "audit": _Lazy(f"{_PACKAGE}.audit.chain:AuditLogExporter", None, _audit_chain),
    "cloudwatch": _Lazy(f"{_PACKAGE}.exporters.cloudwatch:cloudwatch_from_config", "aws",
                        _from_config),
    "kafka": _Lazy(f"{_PACKAGE}.exporters.kafka:kafka_from_config", "kafka", _from_config),
    "mongodb": _Lazy(f"{_PACKAGE}.exporters.mongo:mongo_from_config", "mongo", _from_config),
    "postgres": _Lazy(f"{_PACKAGE}.exporters.postgres:postgres_from_config", "postgres",
                      _from_config),
}
"""Name → builder of every built-in sink (``none`` selects nothing)."""


def plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    """Third-party exporters installed under :data:`ENTRY_POINT_GROUP`, by name."""
    return {ep.name.lower(): ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_exporters() -> list[str]:
    """Every name ``AUDIT_EXPORTER`` accepts: built-ins, aliases, ``none`` and plug-ins."""
    return [*BUILTIN, *ALIASES, "none", *sorted(set(plugin_entry_points()) - set(BUILTIN))]


def otlp_endpoint_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when an OTLP traces endpoint is set and OpenTelemetry is not switched off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in OTLP_ENDPOINT_VARS)


def exporter_selection(config: AuditConfig) -> tuple[list[str], bool]:
    """The sink names ``config.exporter`` (``AUDIT_EXPORTER``) selects, in order, without
    duplicates, and whether the selection is the default (the variable unset or empty).

    The one place ``AUDIT_EXPORTER`` is parsed: comma-separated, case-insensitive, blanks
    ignored, ``jsonfile`` means ``jsonl``, ``none`` alone means no sink. The default is ``jsonl``,
    plus ``otlp`` when an OTLP endpoint variable is set. An unknown name is a ``ConfigError``
    that lists the valid ones.
    """
    raw = config.exporter if "exporter" in config.model_fields_set else None
    parts = [p.strip().lower() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        names = list(DEFAULT_EXPORTERS)
        if otlp_endpoint_configured():
            names.append("otlp")
        return names, True
    plugins = plugin_entry_points()
    names = []
    for part in parts:
        name = ALIASES.get(part, part)
        if name != "none" and name not in BUILTIN and name not in plugins:
            valid = ", ".join(available_exporters())
            raise ConfigError(f"AUDIT_EXPORTER: unknown exporter {part!r}; valid names: {valid}")
        if name != "none" and name not in names:
            names.append(name)
    return names, False


def exporter_names(config: AuditConfig) -> list[str]:
    """The sink names ``config.exporter`` selects (see :func:`exporter_selection`)."""
    return exporter_selection(config)[0]


def build_exporter(name: str, config: AuditConfig) -> Exporter:
    """One sink by its (canonical) name: a built-in, else a plug-in's entry point."""
    builder = BUILTIN.get(name)
    if builder is not None:
        return builder(config)
    entry_point = plugin_entry_points().get(name)
    if entry_point is None:
        raise ConfigError(f"AUDIT_EXPORTER: unknown exporter {name!r}")
    try:
        factory = entry_point.load()
    except Exception as exc:
        raise ConfigError(f"AUDIT_EXPORTER: exporter {name!r} ({entry_point.value}) "
                          f"could not be loaded: {exc}") from exc
    return _call_plugin(factory, config)


def _call_plugin(factory: Any, config: AuditConfig) -> Exporter:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    exporter: Exporter = factory(config=config) if "config" in parameters else factory()
    return exporter


def exporters_from_config(config: AuditConfig) -> list[Exporter]:
    """The exporters ``config.exporter`` (``AUDIT_EXPORTER``) names, built in order.

    The OTLP sink added only because an endpoint variable is set is skipped with a warning when
    the ``otel`` extra is missing (the variable may be meant for other libraries); named
    explicitly, a missing extra is a ``ConfigError``.
    """
    names, default = exporter_selection(config)
    exporters: list[Exporter] = []
    for name in names:
        try:
            exporters.append(build_exporter(name, config))
        except ConfigError as exc:
            if not (default and name == "otlp"):
                raise
            logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OTLP export is off: %s", exc)
    return exporters
