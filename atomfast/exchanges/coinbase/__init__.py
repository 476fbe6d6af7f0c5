"""Coinbase Exchange (spot, level 2 and level 3): ``wss://ws-feed.exchange.coinbase.com``.

Laid out as the other venues: ``messages`` (msgspec Structs and decoders), ``parse`` (symbols,
instruments, numbers, timestamps), ``handler`` (the scheme).
"""
from .handler import CoinbaseScheme

__all__ = ["CoinbaseScheme"]
