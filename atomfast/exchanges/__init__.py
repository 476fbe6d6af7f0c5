"""Exchange modules. Each module (or subpackage, whose __init__ exports them) declares its
Scheme subclasses; this registry finds them.

Adding a venue means adding one module here (and its tests): nothing else needs to change.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from ..scheme import Scheme


@lru_cache(maxsize=1)
def schemes() -> dict[str, list[type[Scheme]]]:
    """Exchange name -> its schemes, the default first."""
    found: dict[str, list[type[Scheme]]] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Scheme) and obj.exchange and obj.__module__.startswith(module.__name__):
                found.setdefault(obj.exchange, []).append(obj)
    for lst in found.values():
        lst.sort(key=lambda s: (not s.is_default, s.__name__))
    return found


def scheme_for(exchange: str, url: str | None = None) -> type[Scheme]:
    """The scheme of ``exchange``; with ``url``, the one whose ws_url matches it (replays)."""
    table = schemes()
    if exchange not in table:
        raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(sorted(table))}")
    options = table[exchange]
    if url:
        norm = url.rstrip("/")
        for s in options:
            if s.ws_url.rstrip("/") == norm:
                return s
    return options[0]
