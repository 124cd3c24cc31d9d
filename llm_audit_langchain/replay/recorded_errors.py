"""Raise a recorded error again: an exception with the recorded type name and message.

How the exception class is found, from ``ErrorDetail.type`` (the handler writes builtins by bare
name, ``ValueError``, and anything else qualified, ``mypkg.errors.QuotaExceeded``):

1. a bare name is looked up in :mod:`builtins` (``ValueError``, ``TimeoutError``...);
2. a qualified name is looked up in modules **already imported** by the replaying process
   (``sys.modules``): nothing named in a log file is ever imported, so a log cannot run code;
3. the class must be an ``Exception`` subclass that ``cls(message)`` builds with
   ``str(exc) == message``;
4. otherwise the exception is a :class:`ReplayedToolError` subclass created on the fly with the
   recorded class's name, qualname and module, so ``type(exc).__name__``, ``repr(exc)`` and the
   qualified name the handler records all match the recording, and ``except ReplayedToolError``
   catches it.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import sys
import threading
from typing import Any, cast

from ..errors import AuditError
from ..events import ErrorDetail


class ReplayedToolError(AuditError):
    """Stands in for a recorded exception whose class could not be rebuilt.

    ``recorded_type`` is the recorded (qualified) type name; ``str(exc)`` is the recorded message.
    """

    recorded_type: str = "ReplayedToolError"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


_STAND_INS: dict[str, type[ReplayedToolError]] = {}
_STAND_INS_LOCK = threading.Lock()


def _stand_in(type_name: str) -> type[ReplayedToolError]:
    with _STAND_INS_LOCK:
        cls = _STAND_INS.get(type_name)
        if cls is None:
            module, _, qualname = type_name.rpartition(".")
            name = qualname.rsplit(".", 1)[-1] or "ReplayedToolError"
            namespace: dict[str, Any] = {"recorded_type": type_name, "__qualname__": qualname,
                                         "__module__": module or "builtins"}
            cls = cast(type[ReplayedToolError], type(name, (ReplayedToolError,), namespace))
            _STAND_INS[type_name] = cls
        return cls


def _recorded_class(type_name: str) -> type[BaseException] | None:
    module_name, _, qualname = type_name.rpartition(".")
    if not module_name:
        found: Any = getattr(builtins, type_name, None)
    else:
        found = sys.modules.get(module_name)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is None:  # a nested qualname: the module is a prefix of the dotted name
            found = _nested(type_name)
    return found if isinstance(found, type) and issubclass(found, Exception) else None


def _nested(type_name: str) -> Any:
    parts = type_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        found: Any = sys.modules.get(".".join(parts[:cut]))
        if found is None:
            continue
        for part in parts[cut:]:
            found = getattr(found, part, None)
        return found
    return None


def rebuild_exception(error: ErrorDetail) -> BaseException:
    """An exception equal in type name and message to the recorded ``error`` (see module doc)."""
    cls = _recorded_class(error.type)
    if cls is not None:
        for argument in _arguments(error.message):
            try:
                exc = cls(argument)
            except Exception:
                continue
            if str(exc) == error.message:
                return exc
    return _stand_in(error.type)(error.message)


def _arguments(message: str) -> list[Any]:
    """The message itself, and for ``KeyError``-style messages (``str`` is the key's repr) the
    key it was the repr of."""
    candidates: list[Any] = [message]
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "'\"":
        with contextlib.suppress(ValueError, SyntaxError):
            candidates.append(ast.literal_eval(message))
    return candidates
