"""Throughput of the sanitizer on realistic chat payloads (a script, not a test).

    .venv/bin/python bench/bench_sanitizer.py

Prints MB/s (of text content) per capture mode for a few-KB chat history given as LangChain
messages and as plain dicts, cold (every call sees new strings, so the result cache never hits)
and warm (the same history again, as an agent re-sends it on every model call), then the time
to sanitize one typical agent run: 4 model calls whose histories grow, plus tool arguments.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from llm_audit_langchain.sanitizer import CaptureMode, Sanitizer

SYSTEM = (
    "You are a helpful customer-support assistant for an online store. Answer in the user's "
    "language, be concise, never reveal internal notes, and use the tools to look up orders, "
    "refunds and shipping. If the user shares payment data, do not repeat it back. "
) * 3

TURNS_EN = [
    "Hi, I ordered a pair of running shoes last week (order ORD-2024-000123) and the tracking "
    "page has said 'in transit' since Tuesday. Can you tell me where it is? My e-mail is "
    "maria.garcia@example.com if you need it.",
    "The package left our warehouse in Zaragoza on 2024-05-02 and is with the carrier. Their "
    "last scan was at 14:32 in Madrid. Delivery is expected within 2-3 working days, version "
    "v2.3.1 of the tracking feed shows no incidents.",
    "OK thanks. Actually I'd rather cancel and get a refund to my card 4111 1111 1111 1111, "
    "the total was $1,234.56 including shipping. You can call me at +34 612 345 678.",
]
TURNS_ES = [
    "Hola, quería saber si podéis cambiar la dirección de entrega. Ahora vivo en la calle "
    "Mayor 12, 3º B, 28013 Madrid. Mi DNI es 12345678Z por si lo necesitáis para verificar.",
    "Claro, he actualizado la dirección del pedido. El importe de 1.234,56 € no cambia y la "
    "entrega sigue prevista para el jueves. ¿Necesitas algo más?",
    "Sí, la factura a nombre de la empresa, IBAN ES91 2100 0418 4502 0005 1332, y enviadla "
    "a facturacion@empresa.es por favor. Muchas gracias por la ayuda, de verdad.",
]


def history(n_turns: int, salt: str) -> list[BaseMessage]:
    """A chat of ``n_turns`` exchanges; ``salt`` makes every string unique (cold cache)."""
    messages: list[BaseMessage] = [SystemMessage(SYSTEM + salt)]
    turns = itertools.cycle(TURNS_EN + TURNS_ES)
    for i in range(n_turns):
        messages.append(HumanMessage(f"{next(turns)} ({salt}-{i})"))
        call = {"name": "lookup_order", "args": {"order_id": "ORD-2024-000123"}, "id": f"c{i}"}
        messages.append(AIMessage(f"{next(turns)} [{salt}]", tool_calls=[call]))
        messages.append(
            ToolMessage(f'{{"status": "in_transit", "eta": "2024-05-0{i % 9 + 1}"}}', tool_call_id=f"c{i}")
        )
    return messages


def as_dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [{"role": m.type, "content": m.content} for m in messages]


def text_bytes(messages: list[BaseMessage]) -> int:
    return sum(len(str(m.content).encode()) for m in messages)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Best-of-5 seconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def throughput_rows() -> None:
    print(f"{'mode':<9} {'payload':<16} {'KB':>5} {'cold MB/s':>10} {'warm MB/s':>10}")
    counter = itertools.count()
    for mode in ("redacted", "none", "full"):
        sanitizer = Sanitizer(mode, hmac_key=None)
        for label, convert in (("messages", lambda m: m), ("plain dicts", as_dicts)):
            sample = history(6, "s")
            size = text_bytes(sample)
            fresh = [convert(history(6, f"k{next(counter)}")) for _ in range(400)]
            cold_iter = iter(fresh)
            cold = timed(lambda: sanitizer(next(cold_iter)), 60)
            warm_payload = convert(sample)
            warm = timed(lambda: sanitizer(warm_payload), 60)
            print(
                f"{mode:<9} {label:<16} {size / 1e3:5.1f} {size / cold / 1e6:10.1f} "
                f"{size / warm / 1e6:10.1f}"
            )


def agent_run(sanitizer: Sanitizer, salt: str) -> None:
    """4 model calls over a growing history, plus the tool calls in between."""
    full = history(4, salt)
    for calls in range(1, 5):
        sanitizer({"messages": full[: 1 + 3 * calls - 2], "invocation_params": {"max_tokens": 512}})
        sanitizer({"tool": "lookup_order", "args": {"order_id": "ORD-2024-000123", "email": "a@b.co"}})


def agent_rows() -> None:
    print()
    print(f"{'mode':<9} {'one agent run (4 LLM calls + 4 tool calls)':<44} {'ms':>7}")
    for mode in ("redacted", "none", "full"):
        sanitizer = Sanitizer(mode)  # type: ignore[arg-type]
        counter = itertools.count()
        cold = timed(lambda s=sanitizer: agent_run(s, f"r{next(counter)}"), 20)
        print(f"{mode:<9} {'new conversation each run (cold cache)':<44} {cold * 1e3:7.3f}")
    sanitizer = Sanitizer("redacted", hmac_key=b"bench-key")
    cold = timed(lambda: agent_run(sanitizer, f"h{next(counter)}"), 20)
    print(f"{'redacted':<9} {'  same, with hmac_key':<44} {cold * 1e3:7.3f}")


def prose_row() -> None:
    print()
    text = " ".join(TURNS_EN + TURNS_ES) * 4
    sanitizer = Sanitizer()
    counter = itertools.count()
    per_call = timed(lambda: sanitizer.sanitize_text(f"{next(counter)} {text}"), 300)
    print(f"sanitize_text, {len(text) / 1e3:.1f} KB prose with 24 PII items: "
          f"{per_call * 1e6:.0f} us, {len(text) / per_call / 1e6:.0f} MB/s")


if __name__ == "__main__":
    _mode: CaptureMode = "redacted"
    throughput_rows()
    agent_rows()
    prose_row()
