"""Bitfinex (exchange name ``bitfinex``): websocket v2, spot pairs and perpetual futures.

Laid out as the Kraken adapter: ``messages`` (msgspec Structs and decoders), ``parse``
(symbols, instruments, numbers, candle time frames), ``handler`` (the scheme).
"""
from .handler import BitfinexScheme

__all__ = ["BitfinexScheme"]
