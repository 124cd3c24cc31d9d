"""An exception as text, whatever it does: its message and traceback are read through user code
(``__str__``, ``__repr__``, arguments nested 10,000 deep) that may raise. A failure to describe
the error must never cost the error record itself."""

from __future__ import annotations

import traceback


def error_message(error: BaseException) -> str:
    """``str(error)``; its ``repr`` if that raises; a placeholder naming the type if both do."""
    for describe in (str, repr):
        try:
            return describe(error)
        except Exception:
            continue
    return f"<unprintable {type(error).__name__}>"


def error_traceback(error: BaseException) -> str:
    """The formatted traceback, as ``traceback.format_exception`` gives it; the frames alone, with
    the placeholder message, when formatting the whole raises."""
    try:
        return "".join(traceback.format_exception(error))
    except Exception:
        try:
            frames = "".join(traceback.format_tb(error.__traceback__))
        except Exception:
            frames = ""
        return f"Traceback (most recent call last):\n{frames}{type(error).__name__}: " \
               f"{error_message(error)}\n"
