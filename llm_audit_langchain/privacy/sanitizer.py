"""Redaction: the one stage every payload passes before any exporter sees it.

A :class:`Sanitizer` turns any Python value into a *new* JSON-safe structure (``dict``, ``list``,
``str``, ``int``, ``float``, ``bool``, ``None``) with secrets and personal data replaced by
``[REDACTED_<KIND>]`` markers. It never mutates its input and never raises. See
``docs/privacy.md`` for what each capture mode stores and what each detector finds.

Example::

    >>> from llm_audit_langchain.privacy.sanitizer import Sanitizer, sanitize
    >>> sanitize({"api_key": "abc", "note": "mail ana@example.com"})
    {'api_key': '[REDACTED_SECRET]', 'note': 'mail [REDACTED_EMAIL]'}
    >>> Sanitizer(hmac_key=b"k").sanitize_text("ana@example.com")
    '[REDACTED_EMAIL:375b7390511a]'

How it stays fast: every detector is a row of ``_BUILTIN_DETECTORS`` with a *gate*, one cheap
check that skips all rows sharing it (no 16-character token run: no key, token or JWT can be
there; no '@': no e-mail). Patterns with a literal prefix (``sk-``, ``eyJ``...) scan the whole
text, which ``re`` does at gigabytes per second. Patterns that start with a character class
(cards, phones, IBANs...) would scan at ~150 MB/s, so they are tried, as one alternation, only in
small windows around digit runs, found with one ``bytes.translate`` and a literal-prefixed scan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from collections.abc import Set as AbstractSet
from datetime import date, time
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from itertools import groupby, islice
from pathlib import PurePath
from typing import Any, Literal, NamedTuple
from uuid import UUID

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

__all__ = ["BUILTIN_SENSITIVE_KEYS", "CaptureMode", "Sanitizer", "sanitize"]

logger = logging.getLogger("llm_audit_langchain")

CaptureMode = Literal["none", "redacted", "full"]

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
_HASH_HEX = 12  # 48 bits of HMAC-SHA256: correlation without practical collisions
_CACHE_MAX_CHARS = 1_000_000  # total characters kept by the per-instance result cache
_TRUNC_SLACK = 4_096  # redact a little past the cut so a secret straddling it is still found
_MAX_PASSES = 3
_SHORT = 64
# Every built-in detector's match holds a digit, '@', ':', '=', '[' or a 16-character token run.
_SHORT_SUSPECT = re.compile(r"[0-9@:=\[]|[A-Za-z0-9_\-.+/]{16}")

_IN_TEXT_MARKER = re.compile(
    r"\[(?:REDACTED_[A-Z0-9_]+(?::[0-9a-f]{8,64})?|TRUNCATED: [0-9]+ chars)\]"
)
_WHOLE_MARKER = re.compile(  # a whole value we produced; kept as is (idempotence)
    r"\[(?:REDACTED_[A-Z0-9_]+(?::[0-9a-f]{8,64})?|(?:str|bytes) len=[0-9]+(?: hmac=[0-9a-f]+)?"
    r"|float (?:nan|-?inf)|CYCLE|MAX_DEPTH|UNSERIALIZABLE [\w.<>]{0,100})\]"
)


# --------------------------------------------------------------------------- validators


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _luhn_ok(text: str) -> bool:
    digits = _digits(text)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _cpf_ok(text: str) -> bool:
    d = [int(ch) for ch in _digits(text)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    return all(sum(d[i] * (n + 1 - i) for i in range(n)) * 10 % 11 % 10 == d[n] for n in (9, 10))


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = str.maketrans("XYZ", "012")


def _dni_ok(text: str) -> bool:
    compact = text.upper().replace("-", "")
    number = compact[0].translate(_NIE_PREFIX) + compact[1:-1]  # NIE: X/Y/Z stand for 0/1/2
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == compact[-1]


def _ssn_ok(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone_digits_ok(low: int, high: int) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        digits = _digits(text)
        return low <= len(digits) <= high and len(set(digits)) > 2

    return ok


def _ipv4_ok(text: str) -> bool:
    return not text.startswith("0")


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    groups = [g for g in text.split(":") if g]
    return len(groups) >= 3 or any(len(g) >= 3 for g in groups)


def _aws_secret_ok(text: str) -> bool:
    return any(c.isdigit() for c in text) and not text.islower() and not text.isupper()


# --------------------------------------------------------------------------- scanning


Span = tuple[int, int]


class _Scan:
    """One string being scanned, with lazily computed byte views whose offsets match the text's.

    ``encode("latin-1", "replace")`` keeps one byte per character, so byte offsets are text
    offsets, and ``bytes.lower``/``bytes.translate`` run at memory speed even on non-ASCII text
    (``str.lower``/``str.translate`` are 10-100x slower there).
    """

    __slots__ = ("_gates", "_low", "_numbers", "_raw", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._raw: bytes | None = None
        self._low: bytes | None = None
        self._numbers: list[list[Span]] | None = None
        self._gates: dict[str, bool] = {}

    def gate_open(self, gate: str) -> bool:
        """Whether detectors sharing ``gate`` can match at all; one cheap check skips them all."""
        if not gate:
            return True
        found = self._gates.get(gate)
        if found is None:
            if gate == "numbers":
                found = any(self.numbers())
            elif gate == "token":  # every key, token and JWT is a run of 16+ such characters
                found = self.raw().translate(_TOKEN_CHARS_TO_A).find(_LONG_TOKEN) >= 0
            else:  # a single character the matches must contain: found at memchr speed
                found = gate.encode() in self.raw()
            self._gates[gate] = found
        return found

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.text.encode("latin-1", "replace")
        return self._raw

    def low(self) -> bytes:
        if self._low is None:
            self._low = self.raw().lower()
        return self._low

    def numbers(self) -> list[list[Span]]:
        """Spans found by each of ``_NUMBER_RULES``, computed once for all of them."""
        if self._numbers is None:
            self._numbers = _scan_numbers(self.text, self._number_windows())
        return self._numbers

    def _number_windows(self) -> list[Span]:
        """Windows around digit runs that could be a number rule's match: 7+ digits with short
        separators (capitals allowed, for IBANs), or a dotted quad."""
        shape = self.raw().translate(_DIGITS_TO_ZERO)
        size = len(self.text)
        windows: list[Span] = []
        for m in _CANDIDATE.finditer(shape):
            digits = shape.count(b"0", m.start(), m.end())
            if digits < 7 and (digits < 4 or b"." not in m.group()):
                continue
            if _DATE_SHAPE.fullmatch(m.group()):
                continue  # ISO dates and timestamps are the commonest digit runs in tool output
            lo, hi = max(0, m.start() - 6), min(size, m.end() + 3)
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        return windows


_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else i for i in range(256))
# On the digits-as-'0' view; a literal first byte makes ``re`` skip ahead at memchr speed, and a
# single character class never backtracks.
_CANDIDATE = re.compile(rb"0[0A-Z ().\-/]{6,}")
_DATE_SHAPE = re.compile(rb"0000-00-00(?:[T ]00)? ?")

Finder = Callable[[_Scan], Iterable[Span]]


def _validated_end(text: str, start: int, end: int, ok: Callable[[str], bool], trim: str) -> int:
    """``end`` if ``text[start:end]`` validates, else the longest prefix ending before one of
    the ``trim`` separators that does (a card followed by " 12" still matches), else -1."""
    if ok(text[start:end]):
        return end
    cut = end
    while trim:
        cut = max(text.rfind(sep, start, cut) for sep in trim)
        if cut <= start:
            break
        if ok(text[start:cut]):
            return cut
    return -1


def _spans(
    pattern: re.Pattern[Any],
    haystack: str | bytes,
    text: str,
    windows: Iterable[Span],
    ok: Callable[[str], bool] | None,
    *,
    group: int | str = 0,
    trim: str = "",
) -> Iterator[Span]:
    """Matches of ``pattern`` in ``haystack`` (the text, or its same-offset bytes view) inside
    ``windows``, each checked by ``ok`` on the text."""
    for lo, hi in windows:
        for match in pattern.finditer(haystack, lo, hi):
            start, end = match.span(group)
            if ok is not None:
                end = _validated_end(text, start, end, ok, trim)
            if end > start:
                yield start, end


def _everywhere(
    regex: str | re.Pattern[str],
    ok: Callable[[str], bool] | None = None,
    *,
    group: int | str = 0,
    min_len: int = 0,
    extend_left: int = 0,
) -> Finder:
    """Scan the whole text, for patterns with a literal prefix (which ``re`` finds fast).

    ASCII patterns given as strings (the built-ins) run on the one-byte-per-character view,
    which is faster than the text itself when it holds characters such as '€'."""
    on_bytes = isinstance(regex, str) and regex.isascii()
    pattern: re.Pattern[Any] = (
        re.compile(regex.encode())
        if isinstance(regex, str) and on_bytes
        else regex
        if isinstance(regex, re.Pattern)
        else re.compile(regex)
    )

    def find(scan: _Scan) -> Iterable[Span]:
        size = len(scan.text)
        if size < min_len:
            return ()
        haystack = scan.raw() if on_bytes else scan.text
        found = _spans(pattern, haystack, scan.text, ((0, size),), ok, group=group)
        return ((start - extend_left, end) for start, end in found) if extend_left else found

    return find


def _number_finder(index: int) -> Finder:
    """Spans of ``_NUMBER_RULES[index]``, from the scan shared by all number rules."""

    def find(scan: _Scan) -> Iterable[Span]:
        return scan.numbers()[index]

    return find


def _near(
    anchors: tuple[bytes, ...],
    left: int,
    right: int,
    regex: str,
    ok: Callable[[str], bool] | None,
) -> Finder:
    """Scan only windows around matches of ``anchors`` (bytes regexes with a literal prefix)
    in the lowercased text."""
    anchor_res = tuple(re.compile(anchor) for anchor in anchors)
    pattern = re.compile(regex)

    def find(scan: _Scan) -> Iterable[Span]:
        low = scan.low()
        size = len(scan.text)
        hits = sorted(m.start() for anchor in anchor_res for m in anchor.finditer(low))
        windows: list[Span] = []
        for hit in hits:
            lo, hi = max(0, hit - left), min(size, hit + right)
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        return _spans(pattern, scan.text, scan.text, windows, ok)

    return find


def _find_emails(scan: _Scan) -> Iterator[Span]:
    """E-mail addresses, found from each '@': the domain forwards, the local part backwards
    (a forward regex would be tried at every word of the text)."""
    text = scan.text
    raw = scan.raw()
    at = raw.find(b"@")
    while at > 0:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if domain is not None:
            local = _EMAIL_LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
            if local is not None:
                yield at - len(local.group().rstrip(".")), domain.end()
        at = raw.find(b"@", at + 1)


_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)
_EMAIL_LOCAL_REVERSED = re.compile(r"[\w%+\-][\w.%+\-]{0,63}(?![\w.%+\-])")


class _Detector(NamedTuple):
    """One row of the detector table; earlier rows win where matches overlap."""

    kind: str | None  # None: protected text (our own markers), kept verbatim
    find: Finder
    digits_only: bool = False  # tag the digits, so "4111 1111..." and "4111-1111..." correlate
    gate: str = ""  # rows sharing a gate are skipped together when it is closed (_Scan.gate_open)


_TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/="
_TOKEN_CHARS_TO_A = bytes(97 if bytes([i]) in _TOKEN_CHARS else 32 for i in range(256))
_LONG_TOKEN = b"a" * 16  # found with a skip search: prose words are far shorter
_GATE_MAX_CHARS = 2_048


_W = r"[A-Za-z0-9_\-]"
_END = r"(?![\w\-])"


def _prefixed(prefix: str, rest: str) -> str:
    """``prefix`` (a literal, so ``re`` can scan for it fast) not glued to a preceding word."""
    literal = re.escape(prefix)
    return f"{literal}(?<!{_W}{literal}){rest}{_END}"


_API_KEY_PATTERNS = (
    _prefixed("sk-", r"(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),  # Anthropic, OpenAI
    _prefixed("gh", r"[pousr]_[A-Za-z0-9]{36,}"),  # GitHub classic tokens
    _prefixed("github_pat_", r"[A-Za-z0-9_]{22,}"),  # GitHub fine-grained tokens
    _prefixed("xox", r"[baprs]-[A-Za-z0-9\-]{16,}"),  # Slack
    _prefixed("AIza", r"[A-Za-z0-9_\-]{35}"),  # Google
    _prefixed("hf_", r"[A-Za-z0-9]{30,}"),  # Hugging Face
    _prefixed("glpat-", r"[A-Za-z0-9_\-]{20,}"),  # GitLab
    # Stripe sk_/rk_/pk_: scan for the literal "k_", then check the letter before it.
    rf"k_(?<=[spr]k_)(?<!{_W}[spr]k_)(?:live|test)_[A-Za-z0-9]{{16,}}{_END}",
)


class _NumberRule(NamedTuple):
    """A detector for digit-bearing data. All rules are tried in one alternation, in windows
    around digit clusters only; a candidate that fails ``ok`` is retried with each rule."""

    kind: str
    regex: str
    ok: Callable[[str], bool]
    trim: str = ""  # separators at which a failing candidate may be shortened and retried
    digits_only: bool = True


_NUMBER_RULES: tuple[_NumberRule, ...] = (
    _NumberRule(
        "IBAN",
        r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
        r"(?![A-Za-z0-9])",
        _iban_ok,
        trim=" ",
        digits_only=False,
    ),
    _NumberRule(
        "CARD",
        r"(?<![\w\-+.,/])[2-6][0-9](?:[ \-]?[0-9]){11,17}(?![\w\-]|[.,/][0-9])",
        _luhn_ok,
        trim=" -",
    ),
    _NumberRule(
        "CPF",
        r"(?<![\w.\-/])[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}(?![\w\-]|[.,/][0-9])",
        _cpf_ok,
    ),
    _NumberRule("SSN", r"(?<![\w\-.])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![\w\-]|\.[0-9])", _ssn_ok),
    _NumberRule("DNI", r"(?<![\w\-.])[0-9]{8}-?[A-Za-z](?![\w\-])", _dni_ok, digits_only=False),
    _NumberRule(
        "NIE", r"(?<![\w\-.])[XYZxyz]-?[0-9]{7}-?[A-Za-z](?![\w\-])", _dni_ok, digits_only=False
    ),
    _NumberRule(
        "IP",
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![\w]|\.[0-9])",
        _ipv4_ok,
        digits_only=False,
    ),
    _NumberRule(  # international: +CC then 2-6 groups, 8-15 digits (E.164)
        "PHONE",
        r"(?<![\w+])\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,4}\)?){2,6}(?![\w]|[.,/\-][0-9])",
        _phone_digits_ok(8, 15),
        trim=" .-",
    ),
    _NumberRule(  # national formats: US, ES, BR, UK, FR; separators required
        "PHONE",
        r"(?<![\w+.,/:\-])(?:\(?[2-9][0-9]{2}\)?[ .\-]?[0-9]{3}[ .\-][0-9]{4}"  # US
        r"|[6789][0-9]{2}(?: [0-9]{3} [0-9]{3}| [0-9]{2} [0-9]{2} [0-9]{2})"  # ES mobile
        r"|[89][0-9] [0-9]{3} [0-9]{2} [0-9]{2}"  # ES landline
        r"|\(?[1-9][0-9]\)? ?9?[0-9]{4}-[0-9]{4}"  # BR
        r"|0[1-9][0-9]{1,3} [0-9]{3,4} ?[0-9]{3,4}"  # UK and other trunk-0 formats
        r"|0[1-9](?:[ .][0-9]{2}){4})"  # FR
        r"(?![\w]|[.,/:\-][0-9])",
        _phone_digits_ok(9, 12),
    ),
)
_NUMBER_RES = tuple(re.compile(rule.regex) for rule in _NUMBER_RULES)
# One alternation for all rules, tried only where a token starts (the guard makes every other
# position fail at once instead of trying each rule there).
_NUMBERS = re.compile(
    r"(?=[0-9A-Z+(xyz])(?<![0-9A-Za-z_])(?:"
    + "|".join(f"(?P<n{i}>{rule.regex})" for i, rule in enumerate(_NUMBER_RULES))
    + ")"
)


def _scan_numbers(text: str, windows: Iterable[Span]) -> list[list[Span]]:
    found: list[list[Span]] = [[] for _ in _NUMBER_RULES]
    for lo, hi in windows:
        for match in _NUMBERS.finditer(text, lo, hi):
            index = int(match.lastgroup[1:])  # type: ignore[index]
            rule = _NUMBER_RULES[index]
            start = match.start()
            end = _validated_end(text, start, match.end(), rule.ok, rule.trim)
            if end > 0:
                found[index].append((start, end))
            else:  # another rule may still match here, e.g. a phone where a card failed Luhn
                _retry_rules(text, start, min(hi, match.end() + 32), index, found)
    return found


def _retry_rules(text: str, lo: int, hi: int, failed: int, found: list[list[Span]]) -> None:
    for index, (rule, pattern) in enumerate(zip(_NUMBER_RULES, _NUMBER_RES, strict=True)):
        if index == failed:
            continue
        for match in pattern.finditer(text, lo, hi):
            end = _validated_end(text, match.start(), match.end(), rule.ok, rule.trim)
            if end > 0:
                found[index].append((match.start(), end))


_BUILTIN_DETECTORS: tuple[_Detector, ...] = (
    _Detector("PASSWORD", _everywhere(r"://[^\s:/@]{0,256}:([^\s@/]{1,256})@", group=1), gate="@"),
    _Detector(
        "JWT",
        _everywhere(r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", min_len=20),
        gate="token",
    ),
    *(
        _Detector("API_KEY", _everywhere(p, min_len=14), gate="token")
        for p in _API_KEY_PATTERNS[:-1]
    ),
    _Detector(
        "API_KEY", _everywhere(_API_KEY_PATTERNS[-1], extend_left=1, min_len=14), gate="token"
    ),
    _Detector(
        "AWS_ACCESS_KEY",
        _everywhere(_prefixed("A", r"(?:KIA|SIA)[A-Z0-9]{16}"), min_len=20),
        gate="token",
    ),
    _Detector(
        "AWS_SECRET_KEY",
        _near(
            (b"aws", b"secret"),
            16,
            160,
            r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
            _aws_secret_ok,
        ),
        gate="token",
    ),
    _Detector(
        "BEARER",
        _everywhere(r"earer(?<=[Bb]earer)\s+([A-Za-z0-9._~+/\-]{16,}=*)", group=1),
        gate="token",
    ),
    _Detector("EMAIL", _find_emails, gate="@"),
    *(
        _Detector(rule.kind, _number_finder(i), rule.digits_only, gate="numbers")
        for i, rule in enumerate(_NUMBER_RULES)
    ),
    _Detector(
        "IP",
        _near(
            (rb":(?::|[0-9a-f]{1,4}:[0-9a-f]{1,4}:)",),
            40,
            40,
            r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|(?=:))(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])",
            _ipv6_ok,
        ),
    ),
)


# --------------------------------------------------------------------------- key names

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


def _overlap(
    taken: list[tuple[int, int, _Detector]], i: int, start: int, end: int
) -> tuple[int, int, _Detector] | None:
    """The accepted span that [start, end) overlaps, if any. ``taken`` is sorted and disjoint,
    so only its neighbours around the insertion point ``i`` can overlap."""
    if i and taken[i - 1][1] > start:
        return taken[i - 1]
    if i < len(taken) and taken[i][0] < end:
        return taken[i]
    return None


# --------------------------------------------------------------------------- the sanitizer

_full_mode_warned = False
_warn_lock = threading.Lock()


def _warn_full_mode() -> None:
    global _full_mode_warned  # noqa: PLW0603 - one process-wide warning, by design
    with _warn_lock:
        if _full_mode_warned:
            return
        _full_mode_warned = True
    logger.warning(
        "llm-audit-langchain: capture mode 'full' is ON. Prompts, outputs and tool arguments "
        "are exported WITHOUT redaction, including any secrets and personal data they hold. "
        "Use it only for local debugging, never in production."
    )


def _type_name(value: object) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "object"


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
        self._cache: OrderedDict[str, str] = OrderedDict()
        # The same message objects recur in many events of a run (the prompt of each call, the
        # node's output, the final state): convert each once. Keyed by id, checked by identity.
        self._messages: OrderedDict[int, tuple[BaseMessage, Any]] = OrderedDict()
        self._cache_chars = 0
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
        if size < _SHORT and self._builtin_only and not _SHORT_SUSPECT.search(text):
            return text  # every built-in match holds one of these; a regex call is all it costs
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        result = self._redact_escaped(text) if "\\" in text else self._redact_uncached(text)
        if size <= self.max_string_length:
            self._remember(text, result)
        return result

    def _redact_escaped(self, text: str) -> str:
        """Text holding escape sequences as characters (``\\n`` in a ``repr``: an error message
        quoting its input, say) glues the escape's letter to what follows it, hiding a secret
        from the word-boundary rules. Detect with each ``\\n``/``\\t``/``\\r`` letter swapped for
        a separator of the same length, then put the letters back where they survived."""
        masked = _ESCAPE_LETTER.sub(lambda m: "\\" + _MASK_OF[m.group(1)], text)
        if masked == text:
            return self._redact_uncached(text)
        redacted = self._redact_uncached(masked)
        return _MASKED_ESCAPE.sub(lambda m: "\\" + _LETTER_OF[m.group(1)], redacted)

    def _remember(self, text: str, result: str) -> None:
        with self._lock:
            if text in self._cache:
                return
            self._cache[text] = result
            self._cache_chars += len(text)
            while self._cache_chars > _CACHE_MAX_CHARS:
                old, _ = self._cache.popitem(last=False)
                self._cache_chars -= len(old)

    def _redact_uncached(self, text: str) -> str:
        if len(text) > self.max_string_length:
            return self._truncate(text, redact=True)
        return self._redact_all(text)

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
        head = self._redact_all(text[: keep + _TRUNC_SLACK]) if redact else text
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
            for key, item in self._head(mapping.items(), len(mapping), out):
                name = key if type(key) is str else self._key_text(key)
                if self.mode != "full" and self._is_sensitive_key(name):
                    cleaned = self._mask(item)
                else:
                    cleaned = self._node(item, depth + 1, active)
                out[self._unique_key(out, self._clean_key(name))] = cleaned
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
            walked = [self._node(item, depth + 1, active) for item in self._head(items, size, tail)]
            return walked + tail
        finally:
            active.discard(id(owner))

    def _head(self, items: Iterable[Any], size: int | None, overflow: Any) -> list[Any]:
        """At most ``max_items`` items of a container (a huge list or a ``range(10**12)`` must
        not stall the worker). When more are cut, a marker saying how many is added to
        ``overflow`` (the output list, or the output dict under the key ``…``). A container of
        exactly ``max_items + 1`` is kept whole, so the marker never triggers a second cut."""
        head = list(islice(items, self.max_items + 2))
        if len(head) <= self.max_items + 1:
            return head
        more = f"{size - self.max_items}" if size is not None else "more"
        marker = f"[TRUNCATED: {more} more items]"
        if isinstance(overflow, dict):
            overflow["…"] = marker
        else:
            overflow.append(marker)
        return head[: self.max_items]

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

    @staticmethod
    def _key_text(key: object) -> str:
        return str(key)  # an unprintable key fails the whole mapping, caught by _node

    def _clean_key(self, name: str) -> str:
        if self.mode == "full":
            return name
        return (
            name
            if len(name) < 6 or (name.isidentifier() and name.isascii() and len(name) < 20)
            else self._redacted(name)
        )

    @staticmethod
    def _unique_key(out: Mapping[str, Any], key: str) -> str:
        """Two keys that became equal (1 and "1", two redacted e-mails) both survive."""
        if key not in out:
            return key
        n = 2
        while f"{key}#{n}" in out:
            n += 1
        return f"{key}#{n}"

    def _is_sensitive_key(self, name: str) -> bool:
        normal = _normal_key(name)
        return bool(normal) and normal.endswith(self._key_suffixes)

    def _mask(self, value: Any) -> Any:
        if value is None or (value == "" and isinstance(value, str)):
            return value  # absence is not a secret, and knowing it helps debugging
        if isinstance(value, str) and _WHOLE_MARKER.fullmatch(value):
            return value
        if self._hmac is None or not isinstance(value, str | int | bytes):
            return "[REDACTED_SECRET]"
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return f"[REDACTED_SECRET:{self._tag(text)}]"


# --------------------------------------------------------------------------- conversion table

_Converter = Callable[[Sanitizer, Any, int, set[int]], Any]


def _message_fields(msg: BaseMessage) -> dict[str, Any]:
    """The compact form of a LangChain message: what a reader of an audit log needs."""
    fields = vars(msg)  # a miss through pydantic's __getattr__ costs an exception
    out: dict[str, Any] = {"type": msg.type, "content": msg.content}
    for name in ("name", "id", "tool_call_id", "status"):
        field = fields.get(name)
        if field is not None:
            out[name] = field
    calls = fields.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {"name": c.get("name"), "args": c.get("args"), "id": c.get("id")} for c in calls
        ]
    for name in ("invalid_tool_calls", "usage_metadata", "response_metadata", "additional_kwargs"):
        field = fields.get(name)
        if field:
            out[name] = field
    return out


def _document_fields(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "document",
        "page_content": doc.page_content,
        "metadata": doc.metadata,
    }
    if doc.id is not None:
        out["id"] = doc.id
    return out


def _exception_fields(exc: BaseException) -> dict[str, Any]:
    return {"type": _type_name(exc), "message": str(exc)}


def _as_text(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    text = value.isoformat() if isinstance(value, date | time) else str(value)
    return s._string(text)


def _as_float(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    number = float(value)
    return number if math.isfinite(number) else f"[float {number}]"  # JSON has no NaN/inf


def _as_int(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    return s._integer(int(value))


def _as_primitive(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    return bool(value) if isinstance(value, bool) else value


def _as_enum(s: Sanitizer, value: Enum, depth: int, active: set[int]) -> Any:
    inner = value.value
    if isinstance(inner, str | int | float | bool):
        return s._node(type(inner)(inner), depth, active)
    return s._string(str(value))


def _as_bytes(
    s: Sanitizer, value: bytes | bytearray | memoryview, depth: int, active: set[int]
) -> Any:
    data = bytes(value)
    return (
        s._size_marker("bytes", data)
        if s.mode != "full"
        else s._string(data.decode("utf-8", "replace"))
    )


def _as_mapping(s: Sanitizer, value: Mapping[Any, Any], depth: int, active: set[int]) -> Any:
    return s._mapping(value, depth, active)


def _as_list(s: Sanitizer, value: Iterable[Any], depth: int, active: set[int]) -> Any:
    return s._sequence(value, depth, active, value)


def _as_set(s: Sanitizer, value: AbstractSet[Any], depth: int, active: set[int]) -> Any:
    items = s._sequence(value, depth, active, value)
    if isinstance(items, list):
        items.sort(key=repr)  # set order differs between runs; sorted output is comparable
    return items


def _as_message(s: Sanitizer, value: BaseMessage, depth: int, active: set[int]) -> Any:
    return s._message(value, depth, active)


def _as_document(s: Sanitizer, value: Document, depth: int, active: set[int]) -> Any:
    return s._fields(value, _document_fields(value), depth, active)


def _as_model(s: Sanitizer, value: BaseModel, depth: int, active: set[int]) -> Any:
    return s._fields(value, dict(value), depth, active)  # shallow: nested models walked by us


def _as_dataclass(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return s._fields(value, fields, depth, active)


def _as_exception(s: Sanitizer, value: BaseException, depth: int, active: set[int]) -> Any:
    return s._fields(value, _exception_fields(value), depth, active)


def _as_repr(s: Sanitizer, value: Any, depth: int, active: set[int]) -> Any:
    return s._string(repr(value))


# Checked in order; the first matching row converts every instance of that type.
_CONVERSIONS: tuple[tuple[type | tuple[type, ...], _Converter], ...] = (
    (Enum, _as_enum),
    (str, _as_text),
    (bool, _as_primitive),
    (int, _as_int),
    (float, _as_float),
    ((bytes, bytearray, memoryview), _as_bytes),
    (BaseMessage, _as_message),
    (Document, _as_document),
    (BaseModel, _as_model),
    (Mapping, _as_mapping),
    ((list, tuple, Sequence), _as_list),
    (AbstractSet, _as_set),
    (BaseException, _as_exception),
    ((date, time, UUID, Decimal, PurePath), _as_text),
)
_converters: dict[type, _Converter] = {}


def _converter(cls: type) -> _Converter:
    found = _converters.get(cls)
    if found is None:
        found = next((conv for types, conv in _CONVERSIONS if issubclass(cls, types)), None)
        if found is None:
            found = _as_dataclass if dataclasses.is_dataclass(cls) else _as_repr
        if len(_converters) < 4096:
            _converters[cls] = found
    return found


_MESSAGE_MEMO = 256
_MASK_OF = {"n": "\x1c", "t": "\x1d", "r": "\x1e"}
_LETTER_OF = {mask: letter for letter, mask in _MASK_OF.items()}
_ESCAPE_LETTER = re.compile(r"\\([ntr])")
_MASKED_ESCAPE = re.compile("\\\\([\x1c\x1d\x1e])")
_default = Sanitizer()


def sanitize(data: Any) -> Any:
    """Sanitize ``data`` with the default ``Sanitizer("redacted")``: a new JSON-safe value with
    secrets and personal data replaced by ``[REDACTED_<KIND>]``. Never raises.

    Example::

        >>> sanitize({"password": "hunter2", "q": "call +34 612 345 678"})
        {'password': '[REDACTED_SECRET]', 'q': 'call [REDACTED_PHONE]'}
    """
    return _default(data)
