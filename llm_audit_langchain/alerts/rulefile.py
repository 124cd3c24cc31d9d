"""Alert rules from a TOML or YAML file (``AUDIT_ALERT_RULES``)::

    [[rule]]
    name = "error_rate"            # a built-in's name replaces the built-in
    metric = "error_rate"
    threshold = 0.10
    window = "10m"                 # seconds, or "30s", "5m", "1h", "1d"
    for = "2m"
    severity = "critical"
    labels = { team = "agents" }

    [[rule]]
    name = "daily_requests_warning"
    enabled = false                # leave a built-in out

or the same in YAML (a file named ``*.yaml`` or ``*.yml``)::

    rule:
      - name: error_rate
        metric: error_rate
        threshold: 0.10
        window: 10m

Fields: ``name``, ``metric``, ``threshold``, ``comparison``, ``window``, ``for``, ``severity``,
``labels``, ``short_window``, ``baseline``, ``min_count``, ``cooldown``, ``description``,
``enabled``. A mistake fails at start with :class:`ConfigError` naming the file, the rule and
the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .rules import AlertRule

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, None: 1.0}
_DURATIONS = {"window": "window_s", "for": "for_s", "short_window": "short_window_s",
              "baseline": "baseline_s", "cooldown": "cooldown_s"}
_PLAIN = ("name", "metric", "threshold", "comparison", "severity", "labels", "min_count",
          "description")


@dataclass(frozen=True)
class RuleFile:
    """What a rule file says: rules to add or replace, and names of rules to leave out."""

    rules: list[AlertRule]
    disabled: list[str]


def parse_duration(value: Any) -> float:
    """Seconds from a number or a text such as ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration (a number of seconds, or like 30s, 5m, 1h)")


def load_rules(path: str | Path, *, variable: str = "AUDIT_ALERT_RULES") -> RuleFile:
    """Read and check every rule in the TOML file at ``path``."""
    where = f"{variable}={path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {exc}") from None
    document = _parse(text, Path(path).suffix.lower() in (".yaml", ".yml"), where)
    unknown_tables = set(document) - {"rule"}
    if unknown_tables:
        raise ConfigError(f"{where}: unknown table(s) {sorted(unknown_tables)}; "
                          f"write each rule as [[rule]]")
    entries = document.get("rule", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: write each rule as [[rule]]")
    rules: list[AlertRule] = []
    disabled: list[str] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: rule #{number} is not a table of fields")
        rule, enabled = _rule(entry, f"{where}: rule #{number}")
        if rule.name in seen:
            raise ConfigError(f"{where}: rule {rule.name!r} is defined twice")
        seen.add(rule.name)
        if enabled:
            rules.append(rule)
        else:
            disabled.append(rule.name)
    return RuleFile(rules, disabled)


def _parse(text: str, yaml: bool, where: str) -> dict[str, Any]:
    if not yaml:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    import yaml as pyyaml  # type: ignore[import-untyped]  # PyYAML comes with langchain-core

    try:
        document = pyyaml.safe_load(text)
    except pyyaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: write the rules as a list under 'rule:'")
    return document


def _rule(entry: Mapping[str, Any], where: str) -> tuple[AlertRule, bool]:
    name = entry.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    known = {*_PLAIN, *_DURATIONS, "enabled"}
    for key in entry:
        if key not in known:
            raise ConfigError(f"{where}: unknown field {key!r} "
                              f"(fields: {', '.join(sorted(known))})")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: field 'enabled' must be true or false")
    for required in ("name", "metric") if enabled else ("name",):
        if required not in entry:
            raise ConfigError(f"{where}: field {required!r} is required")
    if not enabled:  # only its name matters: leave that rule out
        return AlertRule(str(name), "requests", 0.0), False
    if "threshold" not in entry:
        raise ConfigError(f"{where}: field 'threshold' is required")
    kwargs: dict[str, Any] = {key: entry[key] for key in _PLAIN if key in entry}
    for key, field_name in _DURATIONS.items():
        if key in entry:
            try:
                kwargs[field_name] = parse_duration(entry[key])
            except ValueError as exc:
                raise ConfigError(f"{where}: field {key!r}: {exc}") from None
    try:
        return AlertRule(**kwargs), True
    except ConfigError as exc:
        raise ConfigError(f"{where}: {_field_message(str(exc))}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _field_message(message: str) -> str:
    """``alert rule 'x': field 'window_s' ...`` → ``field 'window' ...`` (the file's name)."""
    for key, field_name in _DURATIONS.items():
        message = message.replace(f"field {field_name!r}", f"field {key!r}")
    return message.split(": ", 1)[1] if message.startswith("alert rule ") else message
