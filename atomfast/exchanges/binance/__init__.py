"""Binance: spot (``binance``), USD-M futures (``binance-futures``), COIN-M inverse futures
(``binance-delivery``).

Laid out as the Kraken adapters: ``messages`` (msgspec Structs and decoders), ``parse``
(instruments, symbols, numbers), ``handler`` (the three schemes
and what they share: dispatch, book sync, events).
"""
from .handler import BinanceDeliveryScheme, BinanceFuturesScheme, BinanceSpotScheme

__all__ = ["BinanceDeliveryScheme", "BinanceFuturesScheme", "BinanceSpotScheme"]
