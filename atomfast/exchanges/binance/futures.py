"""Binance futures: USD-M (``binance-futures``) and COIN-M (``binance-delivery``).

Channel map (atomfast topic -> stream ``<symbol>@<channel>``): lob -> ``depth@100ms`` (diff
depth with ``pu``, synced with ``/fapi/v1/depth`` / ``/dapi/v1/depth?symbol=X&limit=1000``;
+ ``spread`` from our own book), trades -> ``aggTrade`` (``trade`` frames, as the hftbacktest
recordings hold, are read too: one trade event per message, ``trade_id`` = ``t``; every ``X``
kind is a print: MARKET, and INSURANCE_FUND / ADL where they occur), ticker -> ``bookTicker``,
candle -> ``kline_1m``, funding_rate -> ``markPrice@1s``, open_interest -> a REST poll of
``/fapi/v1/openInterest`` / ``/dapi/v1/openInterest`` every ``open_interest_interval`` s (no
stream carries it; a replayed capture has no such answers, so replays publish none).

funding_rate: ``mark_price`` = ``p``, ``funding_rate`` = ``r`` (the running period's rate,
settled at ``T``), ``next_funding_time`` = ``T``; the stream has no separate prediction, so
``predicted_rate`` = ``r`` too (``r`` IS Binance's estimate of the coming payment). COIN-M
quarterly contracts have no funding (``r`` empty, ``T`` 0): no event.

USD-M routes streams by path since 2026 ("Important WebSocket Change Notice"): high-frequency
public data (depth, bookTicker, trade) on ``wss://fstream.binance.com/public``, regular market
data (aggTrade, kline, markPrice) on ``/market``; the legacy unrouted URL no longer delivers the
latter. ``plan()`` gives each route its own connections (``channel_urls``). COIN-M keeps one URL.

Continuity: ``pu`` == previous ``u``; after a snapshot the first event must straddle it.
"""
from __future__ import annotations

from ...scheme import Instrument
from .base import OPEN_INTEREST, BinanceScheme
from .parse import guess_futures, parse_futures_listing

_CHANNELS = {
    "lob": "depth@100ms",
    "trades": "aggTrade",
    "ticker": "bookTicker",
    "candle": "kline_1m",
    "funding_rate": "markPrice@1s",
    "open_interest": OPEN_INTEREST,
}


class _BinanceFutures(BinanceScheme):
    channels = dict(_CHANNELS)
    default_channels = ("lob", "trades", "ticker", "funding_rate")
    pu_chain = True

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_futures_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_futures(native)


class BinanceFuturesScheme(_BinanceFutures):
    """USD-M futures: perpetuals ``BTCUSDT`` -> ``BTC-USDT-PERP``, quarterlies
    ``BTCUSDT_240927`` -> ``BTC-USDT-20240927``."""

    exchange = "binance-futures"
    ws_url = "wss://fstream.binance.com/public/stream"
    market_ws_url = "wss://fstream.binance.com/market/stream"
    rest_url = "https://fapi.binance.com"
    instruments_path = "/fapi/v1/exchangeInfo"
    depth_path = "/fapi/v1/depth"
    open_interest_path = "/fapi/v1/openInterest"
    channel_urls = {
        "aggTrade": market_ws_url,
        "kline": market_ws_url,
        "markPrice": market_ws_url,
        OPEN_INTEREST: market_ws_url,
    }


class BinanceDeliveryScheme(_BinanceFutures):
    """COIN-M (inverse) futures: ``BTCUSD_PERP`` -> ``BTC-USD-PERP``, ``BTCUSD_240927`` ->
    ``BTC-USD-20240927``; sizes in contracts."""

    exchange = "binance-delivery"
    ws_url = "wss://dstream.binance.com/stream"
    rest_url = "https://dapi.binance.com"
    instruments_path = "/dapi/v1/exchangeInfo"
    depth_path = "/dapi/v1/depth"
    open_interest_path = "/dapi/v1/openInterest"
