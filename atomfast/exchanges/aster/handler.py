"""Aster (``aster``, ``aster-spot``): the Binance USD-M and spot schemes on Aster's hosts.

Aster runs Binance's futures and spot APIs unchanged: the same streams (``<symbol>@depth@100ms``
with ``U``/``u``/``pu``, ``aggTrade``, ``bookTicker``, ``kline_1m``, ``markPrice@1s``,
``forceOrder``), the same combined-stream envelope, the same REST (``/fapi/v1/depth``,
``/fapi/v1/openInterest``, ``exchangeInfo``) and the same "How to manage a local order book
correctly" (futures: drop ``u`` < ``lastUpdateId``, the first event straddles it, then ``pu`` =
previous ``u``; spot: ``U`` = previous ``u`` + 1). So the schemes here are the Binance ones with
Aster's names and hosts: the book sync, the dispatch and every event come from
``atomfast.exchanges.binance`` (one owner), nothing is re-implemented.

Where Aster differs from Binance: USD-M futures have no ``/public`` / ``/market`` route split
(one URL carries every stream, 200 streams and 10 incoming messages a second per connection);
spot is ``wss://sstream.asterdex.com`` with REST under ``/api/v1``.
Docs: https://github.com/asterdex/api-docs (futures: "Websocket Market Streams", "Diff. Book Depth
Streams", "How to manage a local order book correctly"; spot: "aster-finance-spot-api.md").
"""
from __future__ import annotations

from ...kit.endpoints import RestEndpoint, Routes, WebsocketEndpoint
from ..binance.handler import BinanceFuturesScheme, BinanceSpotScheme


class AsterScheme(BinanceFuturesScheme):
    """Aster perpetuals: ``BTCUSDT`` -> ``BTC-USDT-PERP``."""

    exchange = "aster"
    default_symbols = ("BTC-USDT-PERP", "ETH-USDT-PERP")
    websocket_endpoints = (WebsocketEndpoint("wss://fstream.asterdex.com/stream"),)
    rest_endpoint = RestEndpoint("https://fapi.asterdex.com", Routes(
        instruments="/fapi/v1/exchangeInfo", snapshot="/fapi/v1/depth", open_interest="/fapi/v1/openInterest"))


class AsterSpotScheme(BinanceSpotScheme):
    """Aster spot: ``BTCUSDT`` -> ``BTC-USDT``."""

    exchange = "aster-spot"
    default_symbols = ("BTC-USDT", "ETH-USDT")
    websocket_endpoints = (WebsocketEndpoint("wss://sstream.asterdex.com/stream"),)
    rest_endpoint = RestEndpoint("https://sapi.asterdex.com", Routes(
        instruments="/api/v1/exchangeInfo", snapshot="/api/v1/depth"))


__all__ = ["AsterScheme", "AsterSpotScheme"]
