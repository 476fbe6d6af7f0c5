"""How a venue's frames reach its handlers: the route table a venue declares, dispatched here.

A venue declares ONE ``Dispatch`` as its scheme's ``dispatch`` class attribute; the kit turns it
into the scheme's ``on_frame`` (``Scheme.__init__`` binds it), so every venue is dispatched the
same way and no venue writes a frame loop of its own. Two shapes cover the venues:

* decode first, route by what was decoded: ``decoder`` (a msgspec decoder, usually of a tagged
  union) decodes every frame; the route key is the decoded message's type, or its ``field``
  (BitMEX ``table``, Deribit ``method``)::

      dispatch = Dispatch({m.BookMsg: "_on_book", m.TradeMsg: "_on_trades", m.Heartbeat: None},
                          decoder=m.decoder, fallback="_on_other")

* a cheap prefilter on the raw bytes first: ``prefilter`` reads the route key without decoding;
  ``decoders`` gives the decoder of each key (a key without one is handed ``msg=None`` and
  decodes for itself). The two common shapes are declared, and read in C: ``ByteAfter`` (the
  byte after a marker: Binance's stream kind) and ``Lookup`` (the frame's prefix up to a
  delimiter, in the connection's ``state``: Kraken v1's channelID); another is a method's name,
  ``(conn, data) -> key``::

      dispatch = Dispatch({D: "_on_depth", T: "_on_trade"}, decoders={D: m.depth, T: m.trade},
                          prefilter=ByteAfter(b'{"stream":"', b"@", end=96), fallback="_slow")
      dispatch = Dispatch({b"books": "_on_book"}, prefilter="_route", decoders={b"books": m.book})

Where every message of the venue starts with one byte (a JSON object: ``lead=b"{"``), a frame
that does not is not decoded: it goes to ``fallback`` where the venue names one (a bare text
answer such as BitMEX's ``pong`` is the venue's to recognise), else it is counted as bad input
``not a JSON object``.

A frame a route's decoder refuses (valid JSON of another shape; in the prefiltered shape, also
not JSON) goes to ``refused(conn, data, recv_ns, exc)`` where the venue names one (it reports the
decoder's own words), else as what is not routed.

A route names a handler method, or declares its message's shape (``atomfast.kit.shapes``:
``Quote``, ``Trade``): where the event's fields are in the decoded message; the Router executes a
shape in C, with no Python for a well-formed message. ``Scheme.route(key)`` is what runs for a
key (for a venue's slow path that decodes a message itself).

A handler is ``handler(conn, msg, data, recv_ns)``; with ``unwrap`` (an envelope format such as
Binance's combined streams ``{"stream": .., "data": {..}}``; prefiltered routes only) it is handed
``getattr(msg, unwrap)`` instead of the envelope (``None`` for a route without a decoder). A route
whose handler is ``None`` is known and ignored (heartbeats, pongs). Whatever is not routed goes to ``fallback(conn, data, recv_ns)``
where the venue names one (it classifies the frame and counts it); otherwise it is counted as bad
input: ``malformed JSON`` (not JSON at all), ``unknown message`` (JSON of no known shape) or
``unrouted`` (a known shape with a key no route names; the venue may name the kind, e.g.
"unknown table").

The table is the specification; ``atomfast._dispatch.Router`` (compiled, native/dispatch) is its
one executor: ``bind`` hands the scheme the Router's bound ``on_frame``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from .shapes import Shape

if TYPE_CHECKING:
    from ..scheme import Scheme

OnFrame = Callable[[Any, bytes, int], None]


class Dispatch:
    """A venue's route table (see the module's doc)."""

    __slots__ = ("routes", "decoder", "decoders", "prefilter", "field", "fallback", "unrouted", "unwrap", "lead",
                 "refused")

    def __init__(
        self,
        routes: Mapping[Any, str | Shape | None],
        *,
        decoder: Any = None,
        decoders: Mapping[Any, Any] | None = None,
        prefilter: Union[str, "ByteAfter", "Lookup", None] = None,
        field: str | None = None,
        fallback: str | None = None,
        refused: str | None = None,
        unrouted: str = "unrouted",
        unwrap: str | None = None,
        lead: bytes | None = None,
    ) -> None:
        if prefilter is None and decoder is None:
            raise ValueError("Dispatch: a decoder, or a prefilter, is needed")
        if decoders and prefilter is None:
            raise ValueError("Dispatch: decoders (one per route key) need a prefilter")
        self.routes = dict(routes)
        self.decoder = decoder
        self.decoders = dict(decoders or {})
        self.prefilter = prefilter
        self.field = field
        self.fallback = fallback
        self.refused = refused
        self.unrouted = unrouted
        self.unwrap = unwrap
        if lead is not None and (prefilter is not None or len(lead) != 1):
            raise ValueError("Dispatch: lead (one byte) goes with a decoder, not a prefilter")
        if unwrap is not None and prefilter is None:
            raise ValueError("Dispatch: unwrap goes with a prefilter")
        if prefilter is not None and not isinstance(prefilter, (str, ByteAfter, Lookup)):
            raise TypeError(f"Dispatch: prefilter {prefilter!r} is neither a method name, ByteAfter nor Lookup")
        self.lead = lead

    def handlers(self, scheme: "Scheme") -> dict[Any, Callable | Shape | None]:
        """route key -> the scheme's bound handler (None: ignored), or the route's declared shape."""
        out: dict[Any, Callable | Shape | None] = {}
        for key, name in self.routes.items():
            if name is None or isinstance(name, Shape):
                out[key] = name
                continue
            handler = getattr(scheme, name, None)
            if handler is None:
                raise TypeError(f"{type(scheme).__name__}: dispatch names {name!r}, which it does not define")
            out[key] = handler
        return out

    def bind(self, scheme: "Scheme") -> OnFrame:
        """The scheme's ``on_frame``: this table, dispatching to ``scheme``'s handlers (executed
        by the compiled ``atomfast._dispatch.Router``; its bound method, so that the frame core's
        call is one C call)."""
        return Router(self, scheme).on_frame


class ByteAfter:
    """A prefilter read in C: the frame starts with ``prefix``, and the route key is the byte
    (its value, an int, as ``data[i]`` gives) after the first ``marker`` (one byte) within
    ``data[len(prefix):end]``. ``only`` names, per key byte, the bytes the frame must go on with
    from that byte (one of them) for the key to count. No key (None: not routed) where the frame
    does not start so, has no marker there, ends at the marker, or fails ``only``.

    Binance's combined streams (``{"stream":"btcusdt@depth@100ms","data":..}``): the kind is the
    byte after ``@``, and ``d`` is the diff depth only as ``depth@..`` or ``depth"`` (not the
    partial ``depth5``)::

        ByteAfter(b'{"stream":"', b"@", end=96, only={ord("d"): (b"depth@", b'depth"')})
    """

    __slots__ = ("prefix", "marker", "end", "only")

    def __init__(self, prefix: bytes, marker: bytes, *, end: int,
                 only: Mapping[int | bytes, tuple[bytes, ...]] | None = None) -> None:
        if len(marker) != 1:
            raise ValueError("ByteAfter: the marker is one byte")
        if end <= len(prefix):
            raise ValueError("ByteAfter: end is past the prefix")
        self.prefix = bytes(prefix)
        self.marker = bytes(marker)
        self.end = end
        self.only: dict[int, tuple[bytes, ...]] = {}
        for key, tails in (only or {}).items():
            if isinstance(key, bytes):
                if len(key) != 1:
                    raise ValueError(f"ByteAfter: only's key {key!r} is not one byte")
                key = key[0]
            if isinstance(tails, bytes):
                tails = (tails,)
            if not 0 <= key < 256 or any(t[:1] != bytes((key,)) for t in tails):
                raise ValueError(f"ByteAfter: only[{key!r}] = {tails!r}: each starts with the key byte")
            self.only[key] = tuple(tails)

    def __repr__(self) -> str:
        return f"ByteAfter({self.prefix!r}, {self.marker!r}, end={self.end}, only={self.only!r})"


class Lookup:
    """A prefilter read in C: the frame's bytes up to its first ``delimiter`` (included; b"" where
    it has none) are looked up in the connection's ``state``; a hit's ``attr`` is the route key,
    and the hit is set as the scheme's attribute ``keep`` for the handler (where named); a miss's
    key is the frame's first byte (bytes, b"" for an empty frame).

    Kraken v1: ``conn.state[b"[3648,"]`` is the channel (``_Channel``) learnt from its
    ``subscriptionStatus``; its ``kind`` routes the frame, the handler reads it as
    ``self._channel``; b"[" is a channelID not learnt yet, b"{" an event::

        Lookup(b",", attr="kind", keep="_channel")
    """

    __slots__ = ("delimiter", "attr", "keep")

    def __init__(self, delimiter: bytes, *, attr: str, keep: str | None = None) -> None:
        if len(delimiter) != 1:
            raise ValueError("Lookup: the delimiter is one byte")
        self.delimiter = bytes(delimiter)
        self.attr = attr
        self.keep = keep

    def __repr__(self) -> str:
        return f"Lookup({self.delimiter!r}, attr={self.attr!r}, keep={self.keep!r})"


def _called(decode: Callable[[Any], Any], data: Any) -> Any:
    """``decode(data)``, for the Router under a profiler: called from Python, the decoder's call
    is seen by ``sys.setprofile`` hooks (cProfile, bench/floor.py's ``decoder_calls``)."""
    return decode(data)


from .._dispatch import RefusingDecoder, Router  # noqa: E402  (it reads ByteAfter and Lookup from here)

__all__ = ["ByteAfter", "Dispatch", "Lookup", "OnFrame", "RefusingDecoder"]
