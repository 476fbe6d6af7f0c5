"""Kraken Futures (exchange name ``kraken-futures``): ``wss://futures.kraken.com/ws/v1``.

Laid out as nautilus_trader lays out an adapter: ``messages`` (msgspec Structs and decoders),
``parse`` (product ids, instruments), ``handler`` (the scheme).
"""
from .handler import KrakenFuturesScheme

__all__ = ["KrakenFuturesScheme"]
