"""Level helpers the venues share: what a whole side as sent changes in a live book, and whether
a book is crossed.

``crossed(book)``: the reason a book whose best bid is at or above its best ask cannot be
trusted (``"book crossed: bid <bid> >= ask <ask>"``, the prices as floats), or "" (either side
empty, or not crossed). A venue resyncs such a book (``Scheme.resync_crossed``), or counts a
crossed snapshot as bad input first.

``side_changes(book, side, levels, ticks=None)``: the level changes that turn one side of a live
``L2Book`` into ``levels`` (the whole side as sent, (price, size) pairs): new and changed levels
as sent, in their order, then every level no longer there with size ``"0"`` (in the book's
order). Handing them to ``book.apply_sides`` publishes only what changed (HTX ``depth.step0``,
Hyperliquid ``l2Book``), instead of a ``snapshot`` status and the whole book again. Levels whose
price ticks a venue has already computed (it checked for a crossed book) pass them as
``ticks``; else they are read here. Sizes are compared as ticks (``"1.50"`` is ``"1.5"``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..book import L2Book, parse_ticks


def crossed(book: L2Book) -> str:
    """Why ``book`` is crossed (best bid >= best ask), or "" (module doc)."""
    bp, _bs, ap, _as = book.best()
    return f"book crossed: bid {bp!r} >= ask {ap!r}" if 0.0 < ap <= bp else ""


def side_changes(book: L2Book, side: int, levels: Iterable[tuple[str, str]],
                 ticks: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """The level changes that turn ``side`` of ``book`` into ``levels`` (module doc)."""
    pd, sd = book.price_decimals, book.size_decimals
    held = {parse_ticks(p, pd): s for p, s in book.levels(side)}
    pop = held.pop
    out = []
    append = out.append
    if ticks is None:
        ticks = [parse_ticks(price, pd) for price, _size in levels]
    for (price, size), key in zip(levels, ticks):
        old = pop(key, None)
        # sizes are compared as ticks only where their texts differ ("1.50" is "1.5")
        if old is None or (old != size and (size.__class__ is str or old.encode() != bytes(size))
                           and parse_ticks(old, sd) != parse_ticks(size, sd)):
            append((price, size))
    if held:
        prices = {key: p for p, _s in book.levels(side) if (key := parse_ticks(p, pd)) in held}
        out.extend((prices[key], "0") for key in held)
    return out


__all__ = ["crossed", "side_changes"]
