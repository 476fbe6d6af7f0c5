"""Bybit v5 public websocket (exchange names ``bybit``, ``bybit-linear``, ``bybit-inverse``,
``bybit-options``): ``messages`` (msgspec Structs and decoders), ``parse`` (instrument listings,
symbols, number rules), ``handler`` (the four schemes, one per public endpoint).
"""
from .handler import BybitInverseScheme, BybitLinearScheme, BybitOptionsScheme, BybitSpotScheme

__all__ = ["BybitInverseScheme", "BybitLinearScheme", "BybitOptionsScheme", "BybitSpotScheme"]
