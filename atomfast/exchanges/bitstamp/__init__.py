"""Bitstamp (spot, level 2 and level 3): websocket API v2 at ``wss://ws.bitstamp.net``.

Laid out as the other venues: ``messages`` (msgspec Structs and decoders), ``parse`` (symbols,
instruments, numbers, timestamps), ``handler`` (the scheme).
"""
from .handler import BitstampScheme

__all__ = ["BitstampScheme"]
