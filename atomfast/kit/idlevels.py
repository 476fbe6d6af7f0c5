"""A book whose levels the exchange names by id (BitMEX ``orderBookL2``: ``insert`` an id at a
price, ``update`` a held id's size, ``delete`` it; the price of an update or delete is the one
held for its id): a message's rows of one market applied in C in the common case.

The venue keeps its market's ids (``id -> (side, price as sent)``, a dict) and its own checks;
``IdRows.apply(book, ids, rows, action, rows_of, native, symbol, recv_ns)`` applies a message's
rows when nothing about them is out of the ordinary (see ``atomfast._idlevels``: every row of the
market, of one side and one time, a strict ``YYYY-MM-DDTHH:MM:SS.fffZ`` time or none, ids in the
state the action expects, plain decimals the book takes; the ``lob`` rows, the ids, the spread
where the top changed) and otherwise changes nothing and returns ``NOT_APPLIED``, for the venue's
step-by-step path to say what is amiss (a gap, a malformed row). ``IdRows.partial`` reads a
snapshot's runs and ids the same way; ``iso_ms`` is the strict time those read (-1: not that form).
"""
from .._idlevels import DELETE, INSERT, NOT_APPLIED, UPDATE, IdRows, iso_ms

__all__ = ["DELETE", "INSERT", "NOT_APPLIED", "UPDATE", "IdRows", "iso_ms"]
