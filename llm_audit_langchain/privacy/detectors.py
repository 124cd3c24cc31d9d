"""The built-in detector table: ``_Detector`` rows, API-key and token patterns, the e-mail
finder, the rows built from the number rules, and how overlapping matches are resolved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from .scan import _NUMBER_RULES, Finder, Span, _everywhere, _near, _number_finder, _Scan
from .validators import _aws_secret_ok, _ipv6_ok


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


# A PEM private key (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted): from its BEGIN line to its END
# line, or, when the text was cut before the END line, through the base64 body that follows
# (newlines may be real or escaped, as in a ``repr``). Certificates and public keys are kept.
_PRIVATE_KEY = (
    r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----"
    r"(?:[A-Za-z0-9+/=\s\\\x1c-\x1e:,\-.]{0,16384}?-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----"
    r"|(?:[\s\\\x1c-\x1e]{1,4}[A-Za-z0-9+/=]{16,80}){1,256})"
)

# How it stays fast: every detector is a row of ``_BUILTIN_DETECTORS`` with a *gate*, one cheap
# check that skips all rows sharing it (no 16-character token run: no key, token or JWT can be
# there; no '@': no e-mail). Patterns with a literal prefix (``sk-``, ``eyJ``...) scan the whole
# text, which ``re`` does at gigabytes per second. Patterns that start with a character class
# (cards, phones, IBANs...) would scan at ~150 MB/s, so they are tried, as one alternation, only
# in small windows around digit runs, found with one ``bytes.translate`` and a literal-prefixed
# scan (``_Scan.numbers`` in scan.py).
_BUILTIN_DETECTORS: tuple[_Detector, ...] = (
    _Detector("PASSWORD", _everywhere(r"://[^\s:/@]{0,256}:([^\s@/]{1,256})@", group=1), gate="@"),
    _Detector("PRIVATE_KEY", _everywhere(_PRIVATE_KEY, min_len=20), gate="token"),
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
        "AWS_ACCESS_KEY",  # also glued after '_' or '-' (a tool named "notify_x_AKIA..."): the
        # fixed length and upper-case alphabet make a false match in an identifier unlikely
        _everywhere(r"KIA(?<=AKIA)(?<![A-Za-z0-9]AKIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
                    r"|SIA(?<=ASIA)(?<![A-Za-z0-9]ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
                    extend_left=1, min_len=20),
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


# Run and message ids LangChain makes (a UUID, ``lc_run--<uuid>-N``, ``run-<uuid>``) are new with
# every call, so the sanitizer's result cache never hits them, and no built-in detector matches
# one with a hex letter (checked on 20,000 random ids); an all-digit one still takes the scan.
LANGCHAIN_ID = re.compile(r"(?:lc_run--|run-)?(?=[0-9-]*[a-f])[0-9a-f]{8}-[0-9a-f]{4}-"
                          r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:-\d{1,4})?")
LANGCHAIN_ID_MAX = 54
