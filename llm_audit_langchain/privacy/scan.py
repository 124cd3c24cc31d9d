"""The text-scanning machinery: ``_Scan`` (one string and its byte views), spans, finders
that scan the whole text or only windows, and the number rules tried in one alternation
around digit runs (with their retry when a candidate fails its check)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from .validators import (
    _cpf_ok,
    _dni_ok,
    _iban_ok,
    _ipv4_ok,
    _luhn_ok,
    _phone_digits_ok,
    _ssn_ok,
)

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
# The "token" gate (``_Scan.gate_open``): a run of 16+ of these characters.
_TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/="
_TOKEN_CHARS_TO_A = bytes(97 if bytes([i]) in _TOKEN_CHARS else 32 for i in range(256))
_LONG_TOKEN = b"a" * 16  # found with a skip search: prose words are far shorter

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
        # ``_`` and ``-`` may glue it to a word (``card_4242...``, ``ref-4242...``): still found
        r"(?<![^\W_]|[+.,/])[2-6][0-9](?:[ \-]?[0-9]){11,17}(?![^\W_]|[\-.,/][0-9])",
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
    r"(?=[0-9A-Z+(xyz])(?<![0-9A-Za-z])(?:"
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
