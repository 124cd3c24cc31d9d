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
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from llm_audit_langchain.privacy.sanitizer import CaptureMode, Sanitizer

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


PLAIN = [
    "Thanks for waiting. I checked with the warehouse team and the parcel was re-routed "
    "because of a strike at the regional hub; it should move again tomorrow morning. I have "
    "added a note to your order so the courier calls before delivering. Anything else?",
    "Perfecto, muchas gracias. La verdad es que el servicio suele ser excelente y esta es la "
    "primera vez que tengo un problema, así que no pasa nada. ¿Me avisaréis cuando salga?",
    "Sí, recibirás un correo y una notificación en la aplicación en cuanto el transportista "
    "escanee el paquete. Si prefieres, también puedo programar la entrega para el sábado.",
    "That would be great, Saturday works better for me because I am at the office during "
    "the week. Please also make sure they leave it with the neighbour if I am not at home.",
]


def history(n_turns: int, salt: str, *, dense: bool = False) -> list[BaseMessage]:
    """A chat of ``n_turns`` exchanges; ``salt`` makes every string unique (cold cache).

    Realistic: one turn in three carries personal data. Dense: every turn does (worst case).
    """
    messages: list[BaseMessage] = [SystemMessage(SYSTEM + salt)]
    pii = TURNS_EN + TURNS_ES
    mixed = [t for pair in zip(pii, PLAIN * 2, PLAIN[1:] + PLAIN, strict=False) for t in pair]
    turns = itertools.cycle(pii if dense else mixed)
    for i in range(n_turns):
        messages.append(HumanMessage(f"{next(turns)} ({salt}-{i})"))
        call = {"name": "lookup_order", "args": {"order_id": "ORD-2024-000123"}, "id": f"c{i}"}
        messages.append(AIMessage(f"{next(turns)} [{salt}]", tool_calls=[call]))
        messages.append(
            ToolMessage(
                f'{{"status": "in_transit", "eta": "2024-05-0{i % 9 + 1}"}}', tool_call_id=f"c{i}"
            )
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
    print(f"{'mode':<9} {'payload':<26} {'KB':>5} {'cold MB/s':>10} {'warm MB/s':>10}")
    counter = itertools.count()
    rows: tuple[tuple[CaptureMode, bool], ...] = (
        ("redacted", False),
        ("redacted", True),
        ("none", False),
        ("full", False),
    )
    for mode, dense in rows:
        sanitizer = Sanitizer(mode)
        for label, convert in (("messages", to_messages), ("plain dicts", as_dicts)):
            size, cold, warm = cold_and_warm(sanitizer, convert, dense, counter)
            name = f"{label}{', dense PII' if dense else ''}"
            print(
                f"{mode:<9} {name:<26} {size / 1e3:5.1f} {size / cold / 1e6:10.1f} "
                f"{size / warm / 1e6:10.1f}"
            )


def cold_and_warm(
    sanitizer: Sanitizer,
    convert: Callable[[list[BaseMessage]], Any],
    dense: bool,
    counter: Iterator[int],
) -> tuple[int, float, float]:
    """Text bytes of one history, and seconds per call on new histories and on the same one."""
    sample = history(6, "s", dense=dense)
    fresh = iter([convert(history(6, f"k{next(counter)}", dense=dense)) for _ in range(400)])
    cold = timed(lambda: sanitizer(next(fresh)), 60)
    warm_payload = convert(sample)
    warm = timed(lambda: sanitizer(warm_payload), 60)
    return text_bytes(sample), cold, warm


def to_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    return messages


def agent_run(sanitizer: Sanitizer, salt: str) -> None:
    """4 model calls over a growing history, plus the tool calls in between."""
    full = history(4, salt)
    for calls in range(1, 5):
        sanitizer({"messages": full[: 1 + 3 * calls - 2], "invocation_params": {"max_tokens": 512}})
        sanitizer(
            {"tool": "lookup_order", "args": {"order_id": "ORD-2024-000123", "email": "a@b.co"}}
        )


def agent_rows() -> None:
    print()
    print(f"{'mode':<9} {'one agent run: 4 LLM calls + 4 tool calls':<44} {'ms':>7}")
    modes: tuple[CaptureMode, ...] = ("redacted", "none", "full")
    for mode in modes:
        sanitizer = Sanitizer(mode)
        runs = itertools.count()
        cold = timed(lambda s=sanitizer, n=runs: agent_run(s, f"r{next(n)}"), 20)
        print(f"{mode:<9} {'new conversation each run (cold cache)':<44} {cold * 1e3:7.3f}")
    sanitizer = Sanitizer("redacted", hmac_key=b"bench-key")
    runs = itertools.count()
    cold = timed(lambda: agent_run(sanitizer, f"h{next(runs)}"), 20)
    print(f"{'redacted':<9} {'  same, with hmac_key':<44} {cold * 1e3:7.3f}")


def prose_rows() -> None:
    print()
    sanitizer = Sanitizer()
    counter = itertools.count()
    pii = TURNS_EN + TURNS_ES
    for label, text in (
        ("prose, no PII", " ".join(PLAIN) * 4),
        ("prose, 6 PII items", " ".join(PLAIN * 3 + pii[:2])),
        ("prose, 24 PII items (dense)", " ".join(pii) * 4),
    ):
        per_call = timed(lambda t=text: sanitizer.sanitize_text(f"{next(counter)} {t}"), 300)
        print(
            f"sanitize_text, {len(text) / 1e3:.1f} KB {label:<28} {per_call * 1e6:6.0f} us "
            f"{len(text) / per_call / 1e6:6.0f} MB/s"
        )


if __name__ == "__main__":
    throughput_rows()
    agent_rows()
    prose_rows()
