"""The :class:`Sanitizer` (capture modes, keyed hashing, result cache, the structure walk) and
``sanitize()``: any value in, a new JSON-safe value out, secrets and personal data redacted.
See ``docs/privacy.md`` for what each capture mode stores and what each detector finds."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sized
from itertools import groupby
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from ..forksafe import renew_after_fork
from .detectors import _BUILTIN_DETECTORS, LANGCHAIN_ID, LANGCHAIN_ID_MAX, _Detector, _overlap
from .keys import (
    _KEY_ANCHORS,
    BUILTIN_SENSITIVE_KEYS,
    KeyMemo,
    _anchor_of,
    _key_value_finder,
    _normal_key,
)
from .markers import (
    _ESCAPE_LETTER,
    _IN_TEXT_MARKER,
    _LETTER_OF,
    _MASK_OF,
    _MASKED_ESCAPE,
    _WHOLE_MARKER,
)
from .scan import _everywhere, _Scan
from .validators import _digits
from .walk import _converter, _message_fields, _type_name, head_of, unique_key

__all__ = ["BUILTIN_SENSITIVE_KEYS", "CaptureMode", "Sanitizer", "sanitize"]

logger = logging.getLogger("llm_audit_langchain")

CaptureMode = Literal["none", "redacted", "full"]

_HASH_HEX = 12  # 48 bits of HMAC-SHA256: correlation without practical collisions
_CACHE_MAX_CHARS = 1_000_000  # total characters kept by the per-instance result cache
_CACHE_MAX_ENTRIES = 16_384  # and entries (short strings cost ~100 bytes each beyond their text)
_TRUNC_SLACK = 4_096  # redact a little past the cut so a secret straddling it is still found
_MAX_PASSES = 3
_SHORT = 64
# Every built-in detector's match holds a digit, '@', ':', '=', '[' or a 16-character token run.
_SHORT_SUSPECT = re.compile(r"[0-9@:=\[]|[A-Za-z0-9_\-.+/]{16}")

_MESSAGE_MEMO = 256
_NAME_MEMO = 4_096
_NAME_MAX_CACHED = 512
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@functools.cache  # once per process
def _warn_full_mode() -> None:
    logger.warning(
        "llm-audit-langchain: capture mode 'full' is ON. Prompts, outputs and tool arguments "
        "are exported WITHOUT redaction, including any secrets and personal data they hold. "
        "Use it only for local debugging, never in production."
    )


class Sanitizer:
    """Make any value JSON-safe and free of secrets before it leaves the process.

    ``mode`` is ``"redacted"`` (default: detectors and sensitive keys replaced by
    ``[REDACTED_<KIND>]``), ``"none"`` (structure, sizes and keyed hashes only) or ``"full"``
    (everything kept; logs a warning once per process). With ``hmac_key`` every replacement
    carries a keyed tag, ``[REDACTED_EMAIL:f463dfa862c7]``, so equal values correlate across
    events without being stored. ``patterns`` (name -> regex) and ``sensitive_keys`` add to the
    built-ins. Calling it never mutates the input and never raises; failures become
    ``[UNSERIALIZABLE <type>]`` markers and are counted in :attr:`errors`.

    Example::

        >>> Sanitizer()({"user": "ana@example.com", "max_tokens": 512, "api_key": "k"})
        {'user': '[REDACTED_EMAIL]', 'max_tokens': 512, 'api_key': '[REDACTED_SECRET]'}
        >>> Sanitizer(hmac_key=b"k").sanitize_text("ana@example.com")
        '[REDACTED_EMAIL:375b7390511a]'
    """

    mode: CaptureMode

    def __init__(
        self,
        mode: CaptureMode = "redacted",
        *,
        hmac_key: bytes | str | None = None,
        patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        sensitive_keys: Iterable[str] | None = None,
        max_string_length: int = 16_384,
        max_depth: int = 32,
        max_items: int = 1_000,
    ) -> None:
        if mode not in ("none", "redacted", "full"):
            raise ValueError(f"mode must be 'none', 'redacted' or 'full', not {mode!r}")
        if max_string_length < 128:
            raise ValueError("max_string_length must be at least 128")
        self.mode = mode
        self.max_string_length = max_string_length
        self.max_depth = max_depth
        self.max_items = max(1, max_items)
        key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        self._hmac = None if not key else hmac.new(key, digestmod=hashlib.sha256)
        extra_keys = [k for k in (sensitive_keys or ()) if _normal_key(k)]
        self._key_suffixes = tuple({*BUILTIN_SENSITIVE_KEYS, *map(_normal_key, extra_keys)})
        self._detectors = self._build_detectors(patterns or {}, extra_keys)
        self._gated = [
            (gate, tuple(group)) for gate, group in groupby(self._detectors, lambda d: d.gate)
        ]
        self._builtin_only = not patterns
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._cache: OrderedDict[str, str] = OrderedDict()
        # The same message objects recur in many events of a run (the prompt of each call, the
        # node's output, the final state): convert each once. Keyed by id, checked by identity.
        self._messages: OrderedDict[int, tuple[BaseMessage, Any]] = OrderedDict()
        self._cache_chars = 0
        self._names: dict[str, str] = {}  # sanitize_name's results; dict get/set need no lock
        self._keys = KeyMemo(self._key_suffixes, self._redacted if mode != "full" else None)
        self._errors = 0
        self._logged_causes: set[str] = set()
        if mode == "full":
            _warn_full_mode()

    def _build_detectors(
        self, patterns: Mapping[str, str | re.Pattern[str]], extra_keys: list[str]
    ) -> tuple[_Detector, ...]:
        custom = []
        for name, regex in patterns.items():
            kind = re.sub(r"[^A-Z0-9]+", "_", str(name).upper()).strip("_") or "CUSTOM"
            compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
            custom.append(_Detector(kind, _everywhere(compiled)))
        anchors = [*_KEY_ANCHORS, *map(_anchor_of, extra_keys)]
        return (
            _Detector(None, _everywhere(_IN_TEXT_MARKER.pattern), gate="["),
            *custom,
            _Detector("SECRET", _key_value_finder(self._key_suffixes, anchors)),
            *_BUILTIN_DETECTORS,
        )

    @property
    def errors(self) -> int:
        """How many values could not be converted and were replaced by a marker."""
        return self._errors

    # ----------------------------------------------------------------- public entry points

    def __call__(self, value: Any) -> Any:
        """Return a new JSON-safe copy of ``value`` with secrets and personal data redacted."""
        return self._node(value, 0, set())

    def sanitize_text(self, text: str) -> str:
        """Redact one string as the current mode does (``none``: ``[str len=N]``)."""
        try:
            return self._string(str(text))
        except Exception as exc:
            return self._failed(text, exc)

    def sanitize_name(self, name: str) -> str:
        """Redact a name (of a run, node, tool, custom event, model, request): secrets and
        personal data are found as in ``redacted`` mode, in every mode but ``full``. In
        ``none`` mode too: a name is the log's structure, kept once redacted, not a size marker.
        Names are short and recur in every event, so results are remembered."""
        if self.mode == "full" and type(name) is str:
            return name
        if (hit := self._names.get(name)) is not None:
            return hit
        try:
            text = name if type(name) is str else str(name)
            # A LangGraph checkpoint namespace ("agent:<task uuid>") is new in every run: the
            # parts around the ids are checked instead (they recur, so they are cached).
            parts = _UUID.split(text) if self.mode != "full" else [text]
            result = (text if self.mode == "full" else self._redacted(text)) if len(parts) == 1 \
                else "".join(p if i % 2 else self.sanitize_name(p) for i, p in enumerate(parts))
        except Exception as exc:
            return self._failed(name, exc)
        if len(parts) == 1 and len(text) <= _NAME_MAX_CACHED:  # one with an id never recurs
            if len(self._names) >= _NAME_MEMO:
                self._names.clear()  # a flood of distinct names: start over, stay bounded
            self._names[text] = result
        return result

    # ----------------------------------------------------------------- text

    def _string(self, text: str) -> str:
        if self.mode == "none":
            return text if _WHOLE_MARKER.fullmatch(text) else self._size_marker("str", text)
        if self.mode == "full":
            return (
                text if len(text) <= self.max_string_length else self._truncate(text, redact=False)
            )
        return self._redacted(text)

    def _redacted(self, text: str) -> str:
        size = len(text)
        if self._builtin_only and ((size < _SHORT and not _SHORT_SUSPECT.search(text)) or (size
                                   <= LANGCHAIN_ID_MAX and LANGCHAIN_ID.fullmatch(text))):
            return text  # no built-in detector can match: a regex call is all it costs
        if size > self.max_string_length:
            return self._truncate(text, redact=True)  # only the kept head is scanned
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        result = self._redact_text(text)
        self._remember(text, result)
        return result

    def _redact_text(self, text: str) -> str:
        return self._redact_escaped(text) if "\\" in text else self._redact_all(text)

    def _redact_escaped(self, text: str) -> str:
        """Text holding escape sequences as characters (``\\n`` in a ``repr``: an error message
        quoting its input, say) glues the escape's letter to what follows it, hiding a secret
        from the word-boundary rules. Detect with each ``\\n``/``\\t``/``\\r`` letter swapped for
        a separator of the same length, then put the letters back where they survived."""
        masked = _ESCAPE_LETTER.sub(lambda m: "\\" + _MASK_OF[m.group(1)], text)
        if masked == text:
            return self._redact_all(text)
        redacted = self._redact_all(masked)
        return _MASKED_ESCAPE.sub(lambda m: "\\" + _LETTER_OF[m.group(1)], redacted)

    def _remember(self, text: str, result: str) -> None:
        with self._lock:
            if text in self._cache:
                return
            self._cache[text] = result
            self._cache_chars += len(text)
            while self._cache_chars > _CACHE_MAX_CHARS or len(self._cache) > _CACHE_MAX_ENTRIES:
                old, _ = self._cache.popitem(last=False)
                self._cache_chars -= len(old)

    def _redact_uncached(self, text: str) -> str:
        if len(text) > self.max_string_length:
            return self._truncate(text, redact=True)
        return self._redact_text(text)

    def _redact_all(self, text: str) -> str:
        for _ in range(_MAX_PASSES):
            spans, partial = self._find_spans(_Scan(text))
            if not spans:
                return text
            text = self._render(text, spans)
            if not partial:
                break
        return text

    def _truncate(self, text: str, *, redact: bool) -> str:
        marker = f"…[TRUNCATED: {len(text)} chars]"
        keep = max(
            0, self.max_string_length - len(marker) - 64
        )  # room for a placeholder at the cut
        head = self._redact_text(text[: keep + _TRUNC_SLACK]) if redact else text
        return head[:keep] + marker

    def _find_spans(self, scan: _Scan) -> tuple[list[tuple[int, int, _Detector]], bool]:
        """Non-overlapping matches, earlier detectors first; ``partial`` when a later match
        straddled an earlier one (its remainder may match again, so the caller re-scans)."""
        starts: list[int] = []
        taken: list[tuple[int, int, _Detector]] = []
        partial = False
        for gate, detectors in self._gated:
            if not scan.gate_open(gate):
                continue
            for detector in detectors:
                for start, end in detector.find(scan):
                    i = bisect_left(starts, start)
                    clash = _overlap(taken, i, start, end)
                    if clash is None:
                        starts.insert(i, start)
                        taken.insert(i, (start, end, detector))
                    elif start < clash[0] or end > clash[1]:
                        partial = True
        return taken, partial

    def _render(self, text: str, spans: list[tuple[int, int, _Detector]]) -> str:
        parts: list[str] = []
        pos = 0
        for start, end, detector in spans:
            parts.append(text[pos:start])
            found = text[start:end]
            parts.append(found if detector.kind is None else self._placeholder(detector, found))
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def _placeholder(self, detector: _Detector, found: str) -> str:
        if self._hmac is None:
            return f"[REDACTED_{detector.kind}]"
        tag = self._tag(_digits(found) if detector.digits_only else found)
        return f"[REDACTED_{detector.kind}:{tag}]"

    def _tag(self, text: str) -> str:
        mac = self._hmac.copy()  # type: ignore[union-attr]
        mac.update(text.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:_HASH_HEX]

    def _size_marker(self, kind: str, value: str | bytes) -> str:
        if self._hmac is None:
            return f"[{kind} len={len(value)}]"
        data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        mac = self._hmac.copy()
        mac.update(data)
        return f"[{kind} len={len(value)} hmac={mac.hexdigest()[:_HASH_HEX]}]"

    # ----------------------------------------------------------------- structure

    def _node(self, value: Any, depth: int, active: set[int]) -> Any:
        try:
            cls = type(value)
            if cls is str:
                return self._string(value)
            if value is None or cls is bool or (cls is float and math.isfinite(value)):
                return value
            if cls is int:
                return self._integer(value)
            return _converter(cls)(self, value, depth, active)
        except Exception as exc:
            return self._failed(value, exc)

    def _message(self, message: BaseMessage, depth: int, active: set[int]) -> Any:
        """A message's sanitized form, memoized per message object (bounded, recent first)."""
        key = id(message)
        with self._lock:
            hit = self._messages.get(key)
        if hit is not None and hit[0] is message:
            return hit[1]
        result = self._fields(message, _message_fields(message), depth, active)
        with self._lock:
            self._messages[key] = (message, result)
            if len(self._messages) > _MESSAGE_MEMO:
                self._messages.popitem(last=False)
        return result

    def _failed(self, value: object, exc: BaseException) -> str:
        cause = type(exc).__name__
        with self._lock:
            self._errors += 1
            first = cause not in self._logged_causes
            self._logged_causes.add(cause)
        if first:
            logger.warning("sanitizer could not convert a value (%s); replaced by a marker", cause)
        return f"[UNSERIALIZABLE {_type_name(value)}]"

    def _integer(self, value: int) -> int | str:
        if self.mode == "full" or -1_000_000 < value < 1_000_000:
            return value
        text = str(value)  # a card or phone number stored as an int is still one
        redacted = self._redacted(text) if self.mode == "redacted" else self._redact_uncached(text)
        return value if redacted == text else redacted

    def _enter(self, value: object, depth: int, active: set[int]) -> str | None:
        """A marker when ``value`` must not be descended into, else None (and marks it)."""
        if depth >= self.max_depth:
            return "[MAX_DEPTH]"
        if id(value) in active:
            return "[CYCLE]"
        active.add(id(value))
        return None

    def _mapping(self, mapping: Mapping[Any, Any], depth: int, active: set[int]) -> Any:
        stop = self._enter(mapping, depth, active)
        if stop is not None:
            return stop
        try:
            out: dict[str, Any] = {}
            size = len(mapping)
            # a copy (atomic for a dict): the host may change its dict while we walk it
            pairs = (list(mapping.items()) if type(mapping) is dict and size <= self.max_items
                     else head_of(mapping.items(), size, out, self.max_items))
            known, facts = self._keys.known.get, self._keys.facts
            for key, item in pairs:
                name = key if type(key) is str else str(key)  # raising fails the mapping
                clean, masked = known(name) or facts(name)
                if masked:
                    cleaned = self._mask(item)
                elif item is None or type(item) is bool:
                    cleaned = item
                else:
                    cleaned = self._node(item, depth + 1, active)
                out[unique_key(out, clean) if clean in out else clean] = cleaned
            return out
        finally:
            active.discard(id(mapping))

    def _sequence(self, items: Iterable[Any], depth: int, active: set[int], owner: object) -> Any:
        stop = self._enter(owner, depth, active)
        if stop is not None:
            return stop
        try:
            size = len(items) if isinstance(items, Sized) else None
            tail: list[Any] = []
            head = head_of(items, size, tail, self.max_items)
            walked = [self._node(item, depth + 1, active) for item in head]
            return walked + tail
        finally:
            active.discard(id(owner))

    def _fields(
        self, owner: object, fields: Mapping[str, Any], depth: int, active: set[int]
    ) -> Any:
        """Walk an object's fields as a dict, guarding the object itself against cycles."""
        stop = self._enter(owner, depth, active)
        if stop is not None:
            return stop
        try:
            return self._mapping(fields, depth, active)
        finally:
            active.discard(id(owner))

    def _mask(self, value: Any) -> Any:
        if value is None or (value == "" and isinstance(value, str)):
            return value  # absence is not a secret, and knowing it helps debugging
        if isinstance(value, str) and _WHOLE_MARKER.fullmatch(value):
            return value
        if self._hmac is None or not isinstance(value, str | int | bytes):
            return "[REDACTED_SECRET]"
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return f"[REDACTED_SECRET:{self._tag(text)}]"


_default = Sanitizer()


def sanitize(data: Any) -> Any:
    """Sanitize ``data`` with the default ``Sanitizer("redacted")``: a new JSON-safe value with
    secrets and personal data replaced by ``[REDACTED_<KIND>]``. Never raises.

    Example::

        >>> sanitize({"password": "hunter2", "q": "call +34 612 345 678"})
        {'password': '[REDACTED_SECRET]', 'q': 'call [REDACTED_PHONE]'}
    """
    return _default(data)
