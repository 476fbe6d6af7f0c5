"""Where a venue is reached: its websocket endpoints, its REST base and the REST routes it uses.

A venue's scheme declares them as class attributes, as cryptofeed declares ``WebsocketEndpoint``,
``RestEndpoint`` and ``Routes``::

    websocket_endpoints = (
        WebsocketEndpoint("wss://fstream.binance.com/public/stream"),
        WebsocketEndpoint("wss://fstream.binance.com/market/stream", channels=("aggTrade", "kline")),
    )
    rest_endpoint = RestEndpoint("https://fapi.binance.com", Routes(
        instruments="/fapi/v1/exchangeInfo", snapshot="/fapi/v1/depth", open_interest="/fapi/v1/openInterest"))

The first websocket endpoint without ``channels`` serves every channel no other endpoint names
(``Scheme.ws_url``); an endpoint with ``channels`` serves the exchange channels starting with one
of them (``Scheme.url_for``). The runtime (feed, simulator, replay) reads the scheme's derived
``ws_url``, ``rest_url``, ``instruments_paths`` and ``channel_urls``; venues declare only these
objects.

A listing asked with a POST of a JSON body (Hyperliquid's ``POST /info`` with
``{"type":"meta"}``) is a ``Post(path, body)`` entry of ``Routes.instruments``: the runtime POSTs
the body to ``base + path``; a recording keeps its answer under that URL, as a GET's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass(frozen=True)
class WebsocketEndpoint:
    """One websocket URL of a venue."""

    url: str
    #: the exchange channels (name prefixes) served here; () = every channel no other endpoint names
    channels: tuple[str, ...] = ()

    def serves(self, channel: str) -> bool:
        return any(channel.startswith(prefix) for prefix in self.channels)


@dataclass(frozen=True)
class Post:
    """A REST route asked with a POST of ``body`` (JSON) instead of a GET."""

    path: str
    body: bytes = b"{}"


@dataclass(frozen=True)
class Routes:
    """The REST paths a venue uses, relative to its ``RestEndpoint.base``."""

    #: instrument listings: one path, or several whose answers are merged (a later one wins for a
    #: market two of them name; one that cannot be had is left out as long as one answered)
    instruments: str | Post | tuple[str | Post, ...] = ()
    #: the level-2 book snapshot (Binance ``/api/v3/depth``; its query is the venue's)
    snapshot: str = ""
    #: the level-3 (order by order) book snapshot, where it differs from ``snapshot``
    l3_snapshot: str = ""
    #: open interest, where no stream carries it (polled)
    open_interest: str = ""

    @property
    def _instrument_routes(self) -> tuple[str | Post, ...]:
        inst = self.instruments
        if isinstance(inst, Post):
            return (inst,)
        return (inst,) if isinstance(inst, str) and inst else tuple(inst)

    @property
    def instrument_paths(self) -> tuple[str, ...]:
        return tuple(r.path if isinstance(r, Post) else r for r in self._instrument_routes)

    @property
    def instrument_bodies(self) -> tuple[bytes | None, ...]:
        """One per ``instrument_paths``: the body to POST, or None (a GET)."""
        return tuple(r.body if isinstance(r, Post) else None for r in self._instrument_routes)


@dataclass(frozen=True)
class RestEndpoint:
    """A venue's REST base URL and its routes."""

    base: str
    routes: Routes = field(default_factory=Routes)

    def url(self, path: str, **query: object) -> str:
        """``base + path``, with ``query`` (in the given order) appended."""
        url = self.base + path
        if query:
            url += ("&" if "?" in path else "?") + urlencode(query)
        return url


__all__ = ["Post", "RestEndpoint", "Routes", "WebsocketEndpoint"]
