"""Stubs of the book sync's compiled live path (native/booksync/_booksync.pyx)."""
from typing import Any, Callable

RULE_PYTHON: int
RULE_CONTIGUOUS: int
RULE_CHAINED: int
RULE_INCREASING: int

class MarketSync:
    """Sync state of one market's book."""

    live: bool
    fresh: bool
    last: Any
    snap: Any
    buffer: list[tuple[Any, Any, Any, Any, int]]
    pending: bool
    conn: Any
    attempts: int
    retry_ns: int
    stale: bool
    floor: Any
    def __init__(self, conn: Any = None) -> None: ...

class L2Diff:
    """An L2 diff's levels and time, declared: applied by the book sync in C."""

    def __init__(self, scheme: Any, bids: str, asks: str, times: tuple[str, ...], max_ms: int, bad_time: str,
                 bad_level: str, levels: Any = None) -> None: ...

class SyncCore:
    """The compiled base of ``atomfast.kit.booksync.BookSync``."""

    @property
    def scheme(self) -> Any: ...
    @property
    def rule(self) -> Any: ...
    @property
    def apply(self) -> Any: ...
    @property
    def markets(self) -> dict[str, MarketSync]: ...
    def __init__(self, scheme: Any, rule: Any, apply: Any, compiled: int = ...) -> None: ...
    def diff(self, conn: Any, native: str, diff: Any, first: Any, last: Any, prev: Any, data: bytes | None,
             recv_ns: int) -> None: ...
    def route(self, slow: Callable[[Any, Any, bytes, int], None], native: str, first: str, last: str,
              prev: str | None = None, need_prev: bool = False,
              retype: Callable[[Any, Any, bytes, int], None] | None = None) -> Callable[[Any, Any, bytes, int], None]:
        """The bound ``on_diff`` of a ``DiffRoute``."""
    def _live(self, st: MarketSync, native: str, diff: Any, first: Any, last: Any, prev: Any, data: bytes | None,
              recv_ns: int) -> None: ...

class DiffRoute:
    """``SyncCore.route``'s handler: its bound ``on_diff``."""

    def on_diff(self, conn: Any, msg: Any, data: bytes, recv_ns: int) -> None: ...
