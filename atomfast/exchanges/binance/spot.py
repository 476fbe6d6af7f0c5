"""Binance spot (exchange name ``binance``): ``wss://stream.binance.com:9443/stream``.

Channel map (atomfast topic -> stream ``<symbol>@<channel>``): lob -> ``depth@100ms`` (diff
depth, synced with ``/api/v3/depth?symbol=X&limit=1000``; + ``spread`` from our own book),
trades -> ``trade``, ticker -> ``bookTicker``, candle -> ``kline_1m``. ``aggTrade`` frames (the
recorded cryptofeed capture subscribed those) are read as trades too (``trade_id`` = the
aggregate trade id ``a``).

trades_l3: the current spot ``trade`` stream no longer carries the buyer and seller order ids
(``b``/``a``: gone from the documentation and from the 2024 recordings), so there are no
trades_l3 / lob_l3: trades only.

Continuity: ``U`` of each event == previous ``u`` + 1 (an overlap, ``U <= id < u``, is applied as
the current documentation's update procedure says; ``u <= id`` is stale and ignored).
``bookTicker`` has no time: its ``event_timestamp`` is the receive time.
"""
from __future__ import annotations

from ...scheme import Instrument
from .base import BinanceScheme
from .parse import guess_spot, parse_spot_listing


class BinanceSpotScheme(BinanceScheme):
    exchange = "binance"
    ws_url = "wss://stream.binance.com:9443/stream"
    rest_url = "https://api.binance.com"
    instruments_path = "/api/v3/exchangeInfo"
    depth_path = "/api/v3/depth"
    channels = {"lob": "depth@100ms", "trades": "trade", "ticker": "bookTicker", "candle": "kline_1m"}
    default_channels = ("lob", "trades", "ticker")
    pu_chain = False

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)
