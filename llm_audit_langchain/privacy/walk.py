"""Walking structures: the table that picks, per type, how a value is converted (text, number,
mapping, sequence, message, document, model, dataclass, exception...) and the fields kept."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, time
from decimal import Decimal
from enum import Enum
from itertools import islice
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

if TYPE_CHECKING:
    from .sanitizer import Sanitizer


def _type_name(value: object) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "object"


_Converter = Callable[["Sanitizer", Any, int, set[int]], Any]


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


def head_of(items: Iterable[Any], size: int | None, overflow: Any, max_items: int) -> list[Any]:
    """At most ``max_items`` items of a container (a huge list or a ``range(10**12)`` must
    not stall the worker). When more are cut, a marker saying how many is added to
    ``overflow`` (the output list, or the output dict under the key ``…``). A container of
    exactly ``max_items + 1`` is kept whole, so the marker never triggers a second cut."""
    head = list(islice(items, max_items + 2))
    if len(head) <= max_items + 1:
        return head
    more = f"{size - max_items}" if size is not None else "more"
    marker = f"[TRUNCATED: {more} more items]"
    if isinstance(overflow, dict):
        overflow["…"] = marker
    else:
        overflow.append(marker)
    return head[:max_items]


def unique_key(out: Mapping[str, Any], key: str) -> str:
    """Two keys that became equal (1 and "1", two redacted e-mails) both survive."""
    if key not in out:
        return key
    n = 2
    while f"{key}#{n}" in out:
        n += 1
    return f"{key}#{n}"
