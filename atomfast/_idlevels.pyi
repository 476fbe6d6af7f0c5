"""Type stubs for native/idlevels/_idlevels.pyx (atomfast.kit.idlevels)."""
from typing import Any, Callable

INSERT: int
UPDATE: int
DELETE: int
NOT_APPLIED: int

def iso_ms(text: object) -> int:
    """The strict ``YYYY-MM-DDTHH:MM:SS.fffZ`` -> ms since the epoch; -1 for anything else."""

class IdRows:
    def __init__(self, bid_name: str, ask_name: str, lob_type: type[tuple], spread_type: type[tuple],
                 exchange: str, bid: int = 0, ask: int = 1) -> None: ...
    def apply(self, book: Any, ids: dict[Any, tuple[int, bytes]], rows: list[Any], action: int,
              rows_of: Callable[[str], Any], native: str, symbol: str, recv_ns: int) -> int:
        """The book's flags, or ``NOT_APPLIED`` with nothing changed (book, ids, rows)."""
    def message(self, owner: Any, action: str, rows: list[Any], recv_ns: int) -> int:
        """``apply`` on the live book of the first row's market, read from ``owner`` (the scheme's
        books, unsynced, _symbols, rows, ids); ``NOT_APPLIED`` also for another action or no book."""
    def market(self, rows: list[Any]) -> str | None:
        """The market (``symbol``) every row names; None for no row or rows of several."""
    def partial(self, rows: list[Any], recv_ms: int) -> tuple[list[tuple[int, list[Any], int]], dict] | None:
        """A snapshot's rows: (runs (side, rows, event ms), ids), or None (not the common form)."""
