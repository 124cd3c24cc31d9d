"""Privacy: every payload passes through here before any sink (exporter, audit log) sees it.
It runs on the pipeline's worker thread, never on the caller's path, and imports nothing else
from this package; ``sanitizer.py`` is the entry point, the other modules are its detectors."""

from __future__ import annotations

from .sanitizer import CaptureMode, Sanitizer, sanitize

__all__ = ["CaptureMode", "Sanitizer", "sanitize"]
