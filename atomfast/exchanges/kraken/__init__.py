"""Kraken spot: websocket v2 (default) and v1 (the recorded captures' protocol).

Laid out as nautilus_trader lays out an adapter: ``messages`` (msgspec Structs and decoders),
``parse`` (symbols, instruments, numbers, timestamps), ``handler`` (the schemes).
"""
from .handler import KrakenSpotScheme, KrakenSpotV1Scheme

__all__ = ["KrakenSpotScheme", "KrakenSpotV1Scheme"]
