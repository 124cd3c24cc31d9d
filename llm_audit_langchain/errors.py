"""The exceptions users can act on. The hot path never raises any of them."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of every error this package raises."""


class ConfigError(AuditError, ValueError):
    """A setting or environment variable has a value we cannot use."""


class TraceNotFoundError(AuditError, LookupError):
    """No events for the requested trace id."""
