"""Varied agent-run inputs for the benchmarks (imported by bench_memory, bench_throughput and
bench_payload; not a benchmark itself).

The sanitizer remembers what it redacted (texts by value, messages by object), so a benchmark
that sends the same prompt every run measures cache hits, not the scan. Here every text is new:
a unique tag, then a slice of a random-word corpus at a random offset, with an email address
and a phone number in a fraction of them. ``agent()`` is the weather agent of
``tests/graphs.py`` (2 LLM calls + 1 tool call) with answers computed from the prompt instead of
a script played in call order, so it keeps that shape under threads and ``asyncio.gather``.
"""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from graphs import get_weather, react_agent, tool_call
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

_SYLLABLES = ("ka", "lo", "mer", "tan", "si", "pre", "ven", "dor", "ul", "ri", "che", "bas",
              "no", "tra", "mi", "gel", "os", "fa", "rin", "te", "pol", "shu", "a", "ber")


def _corpus(size: int, seed: int = 7) -> str:
    """``size`` characters of sentences: pseudo-words, short numbers, punctuation."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))
             for _ in range(600)]
    parts: list[str] = []
    length = 0
    while length < size:
        sentence = [rng.choice(words) for _ in range(rng.randint(5, 18))]
        if rng.random() < 0.3:
            sentence.insert(rng.randrange(len(sentence)), str(rng.randint(1, 9999)))
        text = " ".join(sentence).capitalize() + rng.choice((". ", "? ", "! ", ".\n"))
        parts.append(text)
        length += len(text)
    return "".join(parts)[:size]


CORPUS = _corpus(1 << 20)


class TextSource:
    """New text on every call: ``text(n)`` is about ``n`` characters (ASCII, so bytes too)."""

    def __init__(self, seed: int = 1, pii_fraction: float = 0.2) -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self._counter = itertools.count()
        self.pii_fraction = pii_fraction

    def text(self, size: int) -> str:
        rng = self._rng
        tag = f"#{self._seed}-{next(self._counter)} "
        body = max(0, size - len(tag))
        start = rng.randrange(len(CORPUS) - body) if body < len(CORPUS) else 0
        text = CORPUS[start:start + body]
        if body > 120 and rng.random() < self.pii_fraction:
            at = rng.randrange(body - 100)
            pii = (f" write to user{rng.randint(1, 10**6)}@example.com or call +34 6"
                   f"{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} ")
            text = text[:at] + pii + text[at + len(pii):]
        return tag + text

    def question(self, size: int) -> dict[str, Any]:
        """A graph input: one new human message of about ``size`` characters."""
        return {"messages": [HumanMessage(self.text(size) + " What is the weather in Paris?")]}

    def conversation(self, size: int, messages: int) -> list[BaseMessage]:
        """A prior conversation of ``messages`` Human/AI turns, about ``size`` characters in all."""
        each = max(1, size // messages)
        return [(HumanMessage if i % 2 == 0 else AIMessage)(self.text(each))
                for i in range(messages)]


def _responder(messages: list[BaseMessage]) -> AIMessage:
    """Ask for the weather, then answer with the tool's output: a function of the prompt."""
    tag = str(messages[-1].content if messages[-1].type == "human" else "").split(" ", 1)[0]
    if messages[-1].type == "tool":
        return AIMessage(f"It is {messages[-1].content}; enjoy your day.")
    return tool_call("get_weather", {"city": "Paris"}, f"call_{tag.lstrip('#')}")


def agent() -> Any:
    """agent -> tools -> agent: 2 LLM calls and 1 tool call, whatever the concurrency."""
    return react_agent(responder=_responder, tools=[get_weather])
