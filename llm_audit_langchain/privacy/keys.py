"""Key names: the built-in sensitive key names, their normal form, and the finder for values
of ``password=...``, ``"api_key": "..."`` and ``Authorization: ...`` inside text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from .scan import Finder, Span, _Scan

BUILTIN_SENSITIVE_KEYS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "secretkey",
    "privatekey", "accesskey", "auth", "authorization", "cookie", "credential", "credentials",
)  # fmt: skip
"""A dict key is masked when its lowercase alphanumeric form *ends with* one of these, so
``API-Key``, ``x_api_key``, ``client_secret`` and ``refresh_token`` match while ``max_tokens``,
``token_count`` and ``tokens_input`` do not."""

# Substrings of the names above, searched in lowercased text to find ``key: value`` pairs.
_KEY_ANCHORS = ("pass", "pwd", "secret", "token", "key", "auth", "cookie", "credential")
_LINE_VALUE_KEYS = ("authorization", "cookie")  # header-like: the value runs to end of line
_GATE_MAX_CHARS = 2_048

_NON_ALNUM = re.compile(r"[^a-z0-9]")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_KV_TAIL = re.compile(
    r"""(?P<key>[A-Za-z0-9_.\-]*)(?:\\?["'])?[ \t]*(?:=|:(?!//))[ \t]*"""
    r"""(?:(?P<q>\\?["'])(?P<quoted>.*?)(?P=q)|(?P<bare>[^\s"'\\,;&)}\]]+))"""
)


@lru_cache(maxsize=4096)
def _normal_key(key: str) -> str:
    return _NON_ALNUM.sub("", key.lower())


def _anchor_of(name: str) -> str:
    """The last word of a key name, to search for in lowercased text."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)
    return words[-1].lower() if words else _normal_key(name)


def _key_value_finder(suffixes: tuple[str, ...], anchors: Iterable[str]) -> Finder:
    """Values of ``password=...``, ``"api_key": "..."``, ``Authorization: ...`` inside text."""
    words = sorted({a.encode() for a in anchors if a})
    anchor_res = [re.compile(re.escape(word)) for word in words]
    gate = re.compile(b"|".join(map(re.escape, words)))

    def find(scan: _Scan) -> Iterator[Span]:
        text = scan.text
        if ":" not in text and "=" not in text:
            return
        low = scan.low()
        if len(text) <= _GATE_MAX_CHARS and not gate.search(low):
            return
        for anchor in anchor_res:
            for hit in anchor.finditer(low):
                span = _value_after_key(text, hit.start(), suffixes)
                if span is not None:
                    yield span

    return find


def _value_after_key(text: str, at: int, suffixes: tuple[str, ...]) -> Span | None:
    tail = _KV_TAIL.match(text, at)
    if tail is None:
        return None
    start = at
    while start > 0 and at - start < 64 and text[start - 1] in _KEY_CHARS:
        start -= 1
    key = _normal_key(text[start : tail.end("key")])
    if not key.endswith(suffixes):
        return None
    if tail.group("quoted") is not None:
        return tail.span("quoted")
    value_start, value_end = tail.span("bare")
    if key.endswith(_LINE_VALUE_KEYS):
        line_end = text.find("\n", value_start)
        value_end = len(text) if line_end < 0 else line_end
        value_end = value_start + len(text[value_start:value_end].rstrip())
    return value_start, value_end


_KEY_MEMO = 4_096  # distinct key names remembered per sanitizer (cleared when full)
_KEY_MAX_CACHED = 512  # longer keys are not remembered


class KeyMemo:
    """What a mapping key becomes (its output form, and whether its value is masked), worked out
    once per key name: the same keys recur in every event (``content``, ``type``, ``id``...).
    ``redact`` is the sanitizer's text redaction (None in ``full`` mode: keys kept, nothing
    masked). Bounded: a flood of distinct keys clears it and it starts over."""

    def __init__(self, suffixes: tuple[str, ...], redact: Callable[[str], str] | None) -> None:
        self.known: dict[str, tuple[str, bool]] = {}
        self._suffixes = suffixes
        self._redact = redact

    def facts(self, name: str) -> tuple[str, bool]:
        redact = self._redact
        if redact is None:
            return name, False
        # Short identifier-like keys cannot hold anything a detector finds.
        short = len(name) < 6 or (name.isidentifier() and name.isascii() and len(name) < 20)
        normal = _normal_key(name)
        facts = (name if short else redact(name),
                 bool(normal) and normal.endswith(self._suffixes))
        if len(name) <= _KEY_MAX_CACHED:
            if len(self.known) >= _KEY_MEMO:
                self.known.clear()
            self.known[name] = facts
        return facts
