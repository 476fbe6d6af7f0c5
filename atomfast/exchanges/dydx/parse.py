"""dYdX v4: market tickers -> normalised symbols, the instrument listing, the candle resolutions.

Every dYdX v4 market is a perpetual quoted in USD(C), named by its ticker ``BASE-USD``
(``ETH-USD``). Normalised (DESIGN.md): ``ETH-USD-PERP``.

The listing is the indexer's ``GET /v4/perpetualMarkets``: ``{"markets": {ticker: {"ticker",
"status", "tickSize", "stepSize", ..}}}`` (the same objects the ``v4_markets`` subscription
sends as its initial state). A market's book is kept at two more decimals than its ``tickSize``
and ``stepSize`` show (a tick size lowered by governance must not make the next level
unreadable); levels keep the digits they were sent with.
"""
from __future__ import annotations

import msgspec

from ...scheme import Instrument
from .._common import decimals_of

#: the largest price or size a trade carries (the typed writer's bound, ``AvroRows.trade``: no
#: exchange means more)
MAX_VALUE = 1e15
#: headroom over the listed tick and step decimals
EXTRA_DECIMALS = 2
#: a market the listing did not name (a replay without one): 10 price and 8 size decimals
GUESS_PRICE_DECIMALS, GUESS_SIZE_DECIMALS = 10, 8

#: dYdX candle resolution -> (atomfast interval, milliseconds)
RESOLUTIONS = {
    "1MIN": ("1m", 60_000),
    "5MINS": ("5m", 300_000),
    "15MINS": ("15m", 900_000),
    "30MINS": ("30m", 1_800_000),
    "1HOUR": ("1h", 3_600_000),
    "4HOURS": ("4h", 14_400_000),
    "1DAY": ("1d", 86_400_000),
}


def ticker_instrument(ticker: str, price_decimals: int = GUESS_PRICE_DECIMALS,
                      size_decimals: int = GUESS_SIZE_DECIMALS) -> Instrument:
    """``ETH-USD`` -> the perpetual ``ETH-USD-PERP``; KeyError if it is no ``BASE-QUOTE`` name."""
    if ticker.__class__ is not str:
        raise KeyError(f"dydx: not a market ticker {ticker!r}")
    base, sep, quote = ticker.partition("-")
    if (not sep or not base or not quote or "-" in quote or not ticker.isascii() or not ticker.isprintable()
            or ticker != ticker.upper() or " " in ticker or len(ticker) > 40):
        raise KeyError(f"dydx: not a market ticker {ticker!r}")
    return Instrument(ticker, f"{base}-{quote}-PERP", "perp", base, quote, price_decimals, size_decimals)


class _Market(msgspec.Struct, gc=False):
    ticker: str = ""
    tickSize: str | None = None
    stepSize: str | None = None


class _Listing(msgspec.Struct, gc=False):
    markets: dict[str, _Market]


def parse_instruments(body: bytes) -> dict[str, Instrument]:
    """``/v4/perpetualMarkets`` -> instruments keyed by ticker."""
    listing = msgspec.json.decode(body, type=_Listing)
    found: dict[str, Instrument] = {}
    for key, market in listing.markets.items():
        ticker = market.ticker or key
        pd = min(16, decimals_of(market.tickSize, GUESS_PRICE_DECIMALS - EXTRA_DECIMALS) + EXTRA_DECIMALS)
        sd = min(16, decimals_of(market.stepSize, GUESS_SIZE_DECIMALS - EXTRA_DECIMALS) + EXTRA_DECIMALS)
        try:
            found[ticker] = ticker_instrument(ticker, pd, sd)
        except KeyError:
            continue
    return found
