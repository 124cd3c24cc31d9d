"""Capture: what runs on the caller's thread (the hot path). LangChain callbacks, decorators and
the ASGI middleware turn into pending events here, O(1) per callback, no I/O, never raising.
Imports the event model, ``enrich`` (cache-hit check) and ``pipeline`` (to enqueue); nothing
imports it but the package root, ``otel`` and ``replay``."""
