"""Per-field work is bounded by the cut size, not by the size of the value: a 30 MB string costs
the sanitizer and the token estimate no more than the part that is kept (counted, not timed)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_audit_langchain.enrich import tokens
from llm_audit_langchain.privacy import sanitizer as sanitizer_module
from llm_audit_langchain.privacy.sanitizer import Sanitizer

HUGE = 30_000_000


class _Spy:
    """Records the length of every text a regex or an encoder is run over."""

    def __init__(self, real: Any, method: str) -> None:
        self.real, self.method, self.sizes = real, method, []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name != self.method:
            return attribute

        def spied(*args: Any, **kwargs: Any) -> Any:
            self.sizes.extend(len(a) for a in args if isinstance(a, str | bytes))
            return attribute(*args, **kwargs)

        return spied


@pytest.mark.parametrize("text", [
    "a\\nb " * (HUGE // 5),  # escape sequences: the mask pass
    "ana@example.com " * (HUGE // 16),
])
def test_the_sanitizer_scans_only_what_it_keeps(monkeypatch: pytest.MonkeyPatch,
                                                 text: str) -> None:
    escape = _Spy(sanitizer_module._ESCAPE_LETTER, "sub")
    monkeypatch.setattr(sanitizer_module, "_ESCAPE_LETTER", escape)
    scanned: list[int] = []
    real_scan = sanitizer_module._Scan

    def scan(value: str) -> Any:
        scanned.append(len(value))
        return real_scan(value)

    monkeypatch.setattr(sanitizer_module, "_Scan", scan)
    sanitizer = Sanitizer()
    result = sanitizer.sanitize_text(text)
    bound = sanitizer.max_string_length + 4_096
    assert len(result) <= sanitizer.max_string_length
    assert result.endswith(f"[TRUNCATED: {len(text)} chars]")
    assert max(escape.sizes + scanned) <= bound
    assert "ana@example.com" not in result


def test_the_token_estimate_reads_a_bounded_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tokens._encoding("cl100k_base")
    if real is None:
        pytest.skip("no tiktoken encoding available offline")
    spy = _Spy(real, "encode_ordinary")
    monkeypatch.setattr(tokens, "_encoding", lambda name: spy)
    sentence = "The quick brown fox jumps over the lazy dog. "
    text = sentence * (HUGE // len(sentence))
    count, _ = tokens.count_tokens([text, "short"], None)
    assert max(spy.sizes) <= 1_000_000
    exact_per_sentence = len(real.encode_ordinary(sentence * 10)) / 10
    expected = exact_per_sentence * (HUGE // len(sentence)) + 1
    assert count is not None and abs(count - expected) / expected < 0.01
