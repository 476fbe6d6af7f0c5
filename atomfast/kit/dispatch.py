"""How a venue's frames reach its handlers: the route table a venue declares, dispatched here.

A venue declares ONE ``Dispatch`` as its scheme's ``dispatch`` class attribute; the kit turns it
into the scheme's ``on_frame`` (``Scheme.__init__`` binds it), so every venue is dispatched the
same way and no venue writes a frame loop of its own. Two shapes cover the venues:

* decode first, route by what was decoded: ``decoder`` (a msgspec decoder, usually of a tagged
  union) decodes every frame; the route key is the decoded message's type, or its ``field``
  (BitMEX ``table``, Deribit ``method``)::

      dispatch = Dispatch({m.BookMsg: "_on_book", m.TradeMsg: "_on_trades", m.Heartbeat: None},
                          decoder=m.decoder, fallback="_on_other")

* a cheap prefilter on the raw bytes first: ``prefilter`` names a method ``(conn, data) -> key``
  that reads the route key without decoding (Binance: the byte after ``@`` in the stream name;
  Kraken v1: the channelID's digits); ``decoders`` gives the decoder of each key (a key without
  one is handed ``msg=None`` and decodes for itself)::

      dispatch = Dispatch({b"d": "_on_depth", b"t": "_on_trade"}, prefilter="_route_key",
                          decoders={b"d": m.depth_decoder, b"t": m.trade_decoder}, fallback="_slow")

Where every message of the venue starts with one byte (a JSON object: ``lead=b"{"``), a frame
that does not is not decoded: it goes to ``fallback`` where the venue names one (a bare text
answer such as BitMEX's ``pong`` is the venue's to recognise), else it is counted as bad input
``not a JSON object``.

A frame a route's decoder refuses (valid JSON of another shape; in the prefiltered shape, also
not JSON) goes to ``refused(conn, data, recv_ns, exc)`` where the venue names one (it reports the
decoder's own words), else as what is not routed.

A handler is ``handler(conn, msg, data, recv_ns)``; with ``unwrap`` (an envelope format such as
Binance's combined streams ``{"stream": .., "data": {..}}``) it is handed ``getattr(msg, unwrap)``
instead of the envelope. A route whose handler is ``None`` is known
and ignored (heartbeats, pongs). Whatever is not routed goes to ``fallback(conn, data, recv_ns)``
where the venue names one (it classifies the frame and counts it); otherwise it is counted as bad
input: ``malformed JSON`` (not JSON at all), ``unknown message`` (JSON of no known shape) or
``unrouted`` (a known shape with a key no route names; the venue may name the kind, e.g.
"unknown table").
"""
from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Mapping

import msgspec

if TYPE_CHECKING:
    from ..scheme import Scheme

#: what msgspec raises on input it cannot decode (see ``atomfast.scheme.DECODE_ERRORS``)
_MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
_VALIDATION = msgspec.ValidationError
_MISSING = object()

OnFrame = Callable[[Any, bytes, int], None]


class Dispatch:
    """A venue's route table (see the module's doc)."""

    __slots__ = ("routes", "decoder", "decoders", "prefilter", "field", "fallback", "unrouted", "unwrap", "lead",
                 "refused")

    def __init__(
        self,
        routes: Mapping[Any, str | None],
        *,
        decoder: Any = None,
        decoders: Mapping[Any, Any] | None = None,
        prefilter: str | None = None,
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
        self.lead = lead

    def handlers(self, scheme: "Scheme") -> dict[Any, Callable | None]:
        """route key -> the scheme's bound handler (None: ignored)."""
        out = {}
        for key, name in self.routes.items():
            if name is None:
                out[key] = None
                continue
            handler = getattr(scheme, name, None)
            if handler is None:
                raise TypeError(f"{type(scheme).__name__}: dispatch names {name!r}, which it does not define")
            out[key] = handler
        return out

    def bind(self, scheme: "Scheme") -> OnFrame:
        """The scheme's ``on_frame``: this table, dispatching to ``scheme``'s handlers."""
        table = self.handlers(scheme)
        bad_input = scheme.bad_input
        unrouted = self.unrouted
        fallback: Callable | None = getattr(scheme, self.fallback) if self.fallback else None

        refused: Callable | None = getattr(scheme, self.refused) if self.refused else None

        def other(conn, data: bytes, recv_ns: int, kind: str, detail: str) -> None:
            """Not routed: the venue's fallback, or counted bad input of ``kind``."""
            if fallback is not None:
                fallback(conn, data, recv_ns)
            else:
                bad_input(kind, detail, data)

        def declined(conn, data: bytes, recv_ns: int, kind: str, exc: Exception) -> None:
            """A route's decoder refused the frame: the venue's ``refused(conn, data, recv_ns,
            exc)``, else as ``other``."""
            if refused is not None:
                refused(conn, data, recv_ns, exc)
            else:
                other(conn, data, recv_ns, kind, str(exc))

        if self.prefilter is not None:
            return self._bind_prefiltered(scheme, table, other, declined, unrouted)

        decode = self.decoder.decode
        if self.unwrap is not None:
            raise ValueError("Dispatch: unwrap goes with a prefilter")
        lead = self.lead
        not_lead = f"frame does not start with {lead.decode()}" if lead is not None else ""
        #: the route key of a decoded message (its type, or its ``field``), read in C
        key_of = attrgetter(self.field or "__class__")

        def not_routed(conn, msg, data: bytes, recv_ns: int) -> None:
            key = key_of(msg)
            other(conn, data, recv_ns, unrouted, repr(getattr(key, "__name__", key))[:100])

        # one lookup per frame: an ignored route is a no-op handler, a key no route names is
        # ``not_routed`` (the lookup's default); the lead check is left out where there is none
        route = {key: _ignore if handler is None else handler for key, handler in table.items()}.get

        if lead is None:
            def on_frame(conn, data: bytes, recv_ns: int) -> None:
                try:
                    msg = decode(data)
                except _VALIDATION as exc:
                    declined(conn, data, recv_ns, "unknown message", exc)
                    return
                except _MALFORMED as exc:
                    bad_input("malformed JSON", str(exc), data)
                    return
                route(key_of(msg), not_routed)(conn, msg, data, recv_ns)
        else:
            def on_frame(conn, data: bytes, recv_ns: int) -> None:
                if data[:1] != lead:
                    other(conn, data, recv_ns, "not a JSON object", not_lead)
                    return
                try:
                    msg = decode(data)
                except _VALIDATION as exc:
                    declined(conn, data, recv_ns, "unknown message", exc)
                    return
                except _MALFORMED as exc:
                    bad_input("malformed JSON", str(exc), data)
                    return
                route(key_of(msg), not_routed)(conn, msg, data, recv_ns)

        return on_frame

    def _bind_prefiltered(self, scheme, table, other, declined, unrouted) -> OnFrame:
        route_key = getattr(scheme, self.prefilter)
        decoders = {key: dec.decode for key, dec in self.decoders.items()}
        default = self.decoder.decode if self.decoder is not None else None
        # key -> (handler, decode): one lookup per frame; an ignored route and a route without a
        # decoder get stand-ins here, so that the frame's path has no branch for them
        entries = {}
        for key, handler in table.items():
            decode = decoders.get(key, default)
            entries[key] = (handler or _ignore, decode if decode is not None and handler is not None else _no_decode)

        unwrap = self.unwrap
        if unwrap is None:
            def on_frame(conn, data: bytes, recv_ns: int) -> None:
                entry = entries.get(route_key(conn, data))
                if entry is None:
                    other(conn, data, recv_ns, unrouted, "no route for the frame")
                    return
                handler, decode = entry
                try:
                    msg = decode(data)
                except _VALIDATION as exc:
                    declined(conn, data, recv_ns, "unknown message", exc)
                    return
                except _MALFORMED as exc:
                    declined(conn, data, recv_ns, "malformed JSON", exc)
                    return
                handler(conn, msg, data, recv_ns)
        else:
            def on_frame(conn, data: bytes, recv_ns: int) -> None:
                entry = entries.get(route_key(conn, data))
                if entry is None:
                    other(conn, data, recv_ns, unrouted, "no route for the frame")
                    return
                handler, decode = entry
                try:
                    msg = decode(data)
                except _VALIDATION as exc:
                    declined(conn, data, recv_ns, "unknown message", exc)
                    return
                except _MALFORMED as exc:
                    declined(conn, data, recv_ns, "malformed JSON", exc)
                    return
                handler(conn, getattr(msg, unwrap), data, recv_ns)

        return on_frame


def _ignore(conn, msg, data: bytes, recv_ns: int) -> None:
    """The handler of a route that is known and ignored."""


def _no_decode(data: bytes) -> None:
    """The decoder of a route whose handler decodes for itself (it is handed ``msg=None``)."""
    return None


__all__ = ["Dispatch", "OnFrame"]
