"""Canonical serialisation and record hashing for the audit chain.

A record's ``record_hash`` is computed over the canonical JSON of the record without
``record_hash``: ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded
as UTF-8. Two modes:

- ``sha256``: plain SHA-256. Detects accidental corruption and naive edits; anyone who can edit
  the file can also recompute every hash after an edit, so it proves nothing against a writer
  with file access.
- ``hmac-sha256``: HMAC-SHA256 under a secret key. A valid chain proves that it was written by a
  holder of the key (and not changed since, by anyone without it).

Each record names its mode (``hash_alg``) and, when keyed, a ``key_id``: a short fingerprint of
the key, never the key itself, so a verifier can pick the right key and tell "wrong key" apart
from "modified".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

HashAlg = Literal["sha256", "hmac-sha256"]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of a chain."""

KEY_ENV_VAR = "AUDIT_CHAIN_KEY"
"""Environment variable holding the HMAC key when none is passed."""


def canonical_json(value: Any) -> bytes:
    """The canonical bytes hashed for a record (and for decision-record hashes).

    Values JSON cannot hold are written with ``str()``; keys of mixed types are normalised to
    strings first, so any mapping that ``json`` can write has one canonical form.
    """
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
    except TypeError:  # sort_keys cannot order mixed key types: normalise through JSON once
        normal = json.loads(json.dumps(value, ensure_ascii=False, default=str))
        text = json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in a model's output must not make the record unwritable
    return text.encode("utf-8", "surrogatepass")


def sha256_hex(value: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def key_fingerprint(key: bytes | str) -> str:
    """A public identifier of ``key``: 16 hex characters of a domain-separated SHA-256."""
    return hashlib.sha256(b"llm-audit-chain key id\x00" + _key_bytes(key)).hexdigest()[:16]


@dataclass(frozen=True)
class ChainKey:
    """How records are hashed: plain SHA-256, or HMAC-SHA256 under a key."""

    secret: bytes | None = None

    @classmethod
    def resolve(cls, key: bytes | str | None) -> ChainKey:
        """The key passed, else ``$AUDIT_CHAIN_KEY``, else plain SHA-256 (empty means none)."""
        if key is None:
            key = os.environ.get(KEY_ENV_VAR) or None
        if key is None or len(key) == 0:
            return cls(None)
        return cls(_key_bytes(key))

    @property
    def alg(self) -> HashAlg:
        """The ``hash_alg`` written into each record."""
        return "sha256" if self.secret is None else "hmac-sha256"

    @property
    def key_id(self) -> str | None:
        """The ``key_id`` written into each record (None for plain SHA-256)."""
        return None if self.secret is None else key_fingerprint(self.secret)

    def digest(self, body: bytes) -> str:
        """Hex digest of ``body`` in this mode."""
        if self.secret is None:
            return hashlib.sha256(body).hexdigest()
        return hmac.digest(self.secret, body, "sha256").hex()


def keyring(keys: bytes | str | Iterable[bytes | str] | None) -> dict[str, ChainKey]:
    """Keys by ``key_id``, for a verifier that may face rotated keys.

    ``None`` reads ``$AUDIT_CHAIN_KEY``; no key at all gives an empty ring (plain mode).
    """
    if keys is None or isinstance(keys, bytes | str):
        resolved = ChainKey.resolve(keys)
        return {} if resolved.key_id is None else {resolved.key_id: resolved}
    ring: dict[str, ChainKey] = {}
    for key in keys:
        resolved = ChainKey.resolve(key)
        if resolved.key_id is not None:
            ring[resolved.key_id] = resolved
    return ring


def record_line(record: Mapping[str, Any], key: ChainKey) -> tuple[bytes, str]:
    """Hash ``record`` (which has no ``record_hash``) and return its line and hash.

    The line is the canonical body with ``record_hash`` appended as the last top-level key, so
    a verifier can hash the line's bytes without re-serialising (see :func:`split_line`).
    """
    body = canonical_json(record)
    digest = key.digest(body)
    return body[:-1] + b',"record_hash":"' + digest.encode("ascii") + b'"}\n', digest


_SUFFIX_LEN = len(b',"record_hash":"') + 64 + len(b'"}')


def split_line(line: bytes, record_hash: str) -> bytes | None:
    """The canonical body a writer hashed, if ``line`` is exactly as the writer wrote it.

    Returns None when the line was reformatted (the verifier then re-serialises instead).
    """
    suffix = b',"record_hash":"' + record_hash.encode("ascii", "replace") + b'"}'
    if len(suffix) != _SUFFIX_LEN or not line.endswith(suffix):
        return None
    return line[:-_SUFFIX_LEN] + b"}"
