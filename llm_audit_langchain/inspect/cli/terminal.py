"""``rich`` output for a person at a terminal: ``show`` as a tree, ``stats`` as tables, ``verify``
and ``tail`` coloured by status. Used only when stdout is a terminal and ``rich`` is installed
(the ``cli`` extra); ``--json`` and piped output stay plain and stable. Every recorded string is
passed as text, never as rich markup (recorded content is untrusted)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...audit import VerifyReport
    from ...events import AuditEvent
    from ..traces import Trace

STATUS_STYLE = {"ok": "green", "error": "bold red", "timeout": "bold red", "retry": "yellow"}
KIND_STYLE = {"llm": "magenta", "tool": "cyan", "node": "blue", "route": "yellow", "chain": "",
              "point": "dim"}


def enabled() -> bool:
    """True when stdout is a terminal and rich is importable."""
    if not sys.stdout.isatty():
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160)) if chr(c) not in "\n\t"}


def inert(value: str) -> str:
    """``value`` with control characters spelled out (``\\x1b``): a recorded string must not
    move the cursor, clear the screen or retitle the terminal."""
    return value.translate(_CONTROL)


def _text(*parts: tuple[str, str]) -> Any:
    """A rich Text from (string, style) pairs: strings are never parsed as markup, and their
    control characters are made visible."""
    from rich.text import Text

    text = Text()
    for value, style in parts:
        text.append(inert(value), style=style or None)
    return text


def _span_text(event: AuditEvent) -> Any:
    from ..views import duration, kind_of, money, span_label

    kind = kind_of(event)
    parts = [(span_label(event), KIND_STYLE.get(kind, "")),
             (f"  {duration(event.latency_ms)}", "dim")]
    if event.tokens_input is not None or event.tokens_output is not None:
        parts.append((f"  {event.tokens_input or 0}→{event.tokens_output or 0} tok", "dim"))
    if event.cost_usd is not None:
        parts.append((f"  {money(event.cost_usd)}", "dim"))
    if event.status != "ok":
        parts.append((f"  {event.status.upper()}", STATUS_STYLE.get(event.status, "")))
    if event.error is not None and event.status in ("error", "timeout"):
        parts.append((f"  {event.error.type}: {event.error.message[:120]}", "red"))
    return _text(*parts)


def print_trace(trace: Trace, *, tracebacks: bool = False) -> None:
    """``llm-audit show``: header, the run tree, decisions and errors."""
    from rich.tree import Tree

    from ..views import decisions, duration, error_origin, money, point_label, span_tree

    console = _console()
    header = _text((f"trace {trace.trace_id}  ", "bold"),
                   (trace.status, STATUS_STYLE.get(trace.status, "")),
                   (f"  {duration(trace.latency_ms)}  {trace.tokens_input} in / "
                    f"{trace.tokens_output} out tokens  cost {money(trace.cost_usd)}", ""))
    tree = Tree(header)
    stack: list[tuple[Any, Any]] = [(tree, root) for root in reversed(span_tree(trace.events))]
    while stack:
        parent, node = stack.pop()
        branch = parent.add(_span_text(node.span))
        for point in node.points:
            branch.add(_text((f"↳ {point_label(point)}", "dim")))
        stack.extend((branch, child) for child in reversed(node.children))
    console.print(tree)
    rows = decisions(trace)
    if rows:
        console.print(_text(("decisions:", "bold")))
        for row in rows:
            console.print(_text((f"  {row.where}: ", ""), (row.text, "")))
    for event in trace.errors:
        error = event.error
        assert error is not None
        console.print(_text((f"error in {error_origin(event)}: ", "bold red"),
                            (f"{error.type}: {error.message}", "red")))
        if tracebacks and error.traceback:
            console.print(_text((error.traceback.rstrip(), "dim")))


def print_stats(report: dict[str, Any]) -> None:
    """``llm-audit stats``: cost tables and the SLO table."""
    from rich.table import Table

    console = _console()
    scan = report["scan"]
    console.print(_text((f"{scan['events']} events, {report['requests']} requests, "
                         f"{report['traces']} traces in {len(scan['files'])} file(s); total "
                         "cost ", ""), (_money(report["total_cost_usd"]), "bold")))
    for title in ("model", "day", "user"):
        key = f"cost_by_{title}"
        table = Table(title=f"cost by {title}", title_justify="left")
        for column in (title, "calls", "tokens in", "tokens out", "cost"):
            table.add_column(column, justify="left" if column == title else "right")
        for row in report[key]:
            table.add_row(_text((str(row["key"]), "")), str(row["calls"]),
                          str(row["tokens_input"] or 0), str(row["tokens_output"] or 0),
                          _money(row["cost_usd"]) + (f" ({row['unpriced_calls']} unpriced)"
                                                     if row["unpriced_calls"] else ""))
        console.print(table)
    slo = Table(title="SLOs", title_justify="left")
    for column in ("metric", "value", "target", "verdict"):
        slo.add_column(column, justify="right" if column in ("value", "target") else "left")
    for item in report["slo"]:
        latency = item["metric"] == "p95_latency_ms"
        value, target = item["value"], item["target_below"]
        shown = ("n/a" if value is None else f"{value:.1f} ms") if latency else _percent(value)
        verdict = {True: ("ok", "green"), False: ("BREACHED", "bold red"),
                   None: ("no data", "dim")}[item["ok"]]
        slo.add_row(item["metric"], shown, f"< {target:.0f} ms" if latency else
                    f"< {_percent(target)}", _text(verdict))
    console.print(slo)


def print_verify(report: VerifyReport) -> None:
    """``llm-audit verify``: OK in green or the break in red."""
    console = _console()
    if report.ok:
        last = f", last sequence {report.last.sequence}" if report.last else ""
        console.print(_text(("OK", "bold green"),
                            (f": {report.records} records in {len(report.files)} file(s){last}",
                             "")))
        return
    broken = report.first_broken
    assert broken is not None
    console.print(_text(("BROKEN", "bold red"),
                        (f": {broken.reason} at {broken.file}:{broken.line} (sequence "
                         f"{broken.sequence}): {broken.detail}", "red")))
    console.print(_text((f"  {report.records} record(s) verified before the break", "")))


def status_line(line: str, status: str) -> str:
    """A ``tail`` line coloured by its event's status (ANSI; plain when not a terminal)."""
    colour = {"ok": "32", "error": "1;31", "timeout": "1;31", "retry": "33"}.get(status)
    return f"\x1b[{colour}m{inert(line)}\x1b[0m" if colour and enabled() else line


def _money(value: Any) -> str:
    return "unpriced" if value is None else f"${value:.6f}"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"
