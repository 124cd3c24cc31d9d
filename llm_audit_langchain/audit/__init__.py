"""The audit layer: a tamper-evident, hash-chained, append-only log, apart from the debug log.

- :class:`AuditLogExporter` writes ``audit-chain-YYYY-MM-DD.jsonl`` files: each record is an
  event plus ``sequence``, ``prev_hash`` and ``record_hash`` (plain SHA-256 or keyed HMAC).
- :func:`verify` checks a directory and names the first break.
- :func:`decision_record`, :func:`record_override`, :func:`prompt_version` tie a decision to the
  exact prompt, model, parameters and output that produced it.

See ``docs/audit-trail.md`` for what each mode proves.
"""

from __future__ import annotations

from .chain import GAP_ACTION, AuditChainError, AuditLogExporter
from .decisions import (
    OVERRIDE_ACTION,
    apply_override,
    decision_record,
    override_event,
    prompt_version,
    record_override,
)
from .hashing import GENESIS_HASH, KEY_ENV_VAR, canonical_json, key_fingerprint, sha256_hex
from .layout import HEAD_NAME, ChainHead, chain_file_name, read_head
from .verify import ChainBreak, LineRef, Reason, VerifyReport, verify

__all__ = [
    "GAP_ACTION",
    "GENESIS_HASH",
    "HEAD_NAME",
    "KEY_ENV_VAR",
    "OVERRIDE_ACTION",
    "AuditChainError",
    "AuditLogExporter",
    "ChainBreak",
    "ChainHead",
    "LineRef",
    "Reason",
    "VerifyReport",
    "apply_override",
    "canonical_json",
    "chain_file_name",
    "decision_record",
    "key_fingerprint",
    "override_event",
    "prompt_version",
    "read_head",
    "record_override",
    "sha256_hex",
    "verify",
]
