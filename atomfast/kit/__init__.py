"""The venue kit: what every venue is built from, so that a venue is declarations plus the few
methods that are truly its own.

- ``endpoints``: ``WebsocketEndpoint``, ``RestEndpoint``, ``Routes`` (where a venue is reached);
- ``dispatch``: ``Dispatch`` (the route table from a frame to the venue's handlers);
- ``booksync``: ``BookSync`` and its continuity rules (snapshot + buffered diffs + sequence);
- ``chain``: ``Chain`` (a websocket book's id chain: snapshot on the stream, a break is a gap and
  a resubscription);
- ``idlevels``: ``IdRows`` (a book whose levels the exchange names by id, BitMEX's: a message's
  rows of one market applied in C in the common case, the venue's own path for the rest);
- ``levels``: ``side_changes`` (a whole side as sent -> the level changes against the live book).

The ``Scheme`` base (``atomfast.scheme``) binds them; the frame driver (``atomfast.driver``)
calls the result.
"""
from .dispatch import Dispatch
from .endpoints import RestEndpoint, Routes, WebsocketEndpoint

__all__ = ["Dispatch", "RestEndpoint", "Routes", "WebsocketEndpoint"]
