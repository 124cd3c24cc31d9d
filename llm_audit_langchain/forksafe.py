"""Locks re-created in a forked child, as the OpenTelemetry SDK does with
``os.register_at_fork(after_in_child=...)``.

A child process starts with only the thread that called ``fork()``. A lock that another thread
held at that moment stays held in the child for ever, so the child's first callback that needs
it would hang. Every object owning such a lock registers it here; in the child each is replaced
by a new, free lock. Objects are held weakly: registering keeps nothing alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

_owners: dict[int, tuple[weakref.ref[Any], tuple[str, ...], Callable[[], Any]]] = {}


def renew_after_fork(owner: object, *attributes: str,
                     factory: Callable[[], Any] = threading.Lock) -> None:
    """In a forked child, set each of ``owner``'s ``attributes`` to a new ``factory()``."""
    key = id(owner)

    def forget(_: object, key: int = key) -> None:
        _owners.pop(key, None)  # a plain dict operation: safe in a collector callback

    _owners[key] = (weakref.ref(owner, forget), attributes, factory)


def _renew_in_child() -> None:
    for ref, attributes, factory in list(_owners.values()):
        owner = ref()
        if owner is not None:
            for name in attributes:
                setattr(owner, name, factory())


os.register_at_fork(after_in_child=_renew_in_child)
