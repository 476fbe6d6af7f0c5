"""Binance: spot (``binance``), USD-M futures (``binance-futures``), COIN-M inverse futures
(``binance-delivery``).

Laid out as the Kraken adapters: ``messages`` (msgspec Structs and decoders), ``parse``
(instruments, symbols, numbers), ``base`` (what the three share: dispatch, book sync, events),
``spot`` and ``futures`` (the schemes).
"""
from .futures import BinanceDeliveryScheme, BinanceFuturesScheme
from .spot import BinanceSpotScheme

__all__ = ["BinanceDeliveryScheme", "BinanceFuturesScheme", "BinanceSpotScheme"]
