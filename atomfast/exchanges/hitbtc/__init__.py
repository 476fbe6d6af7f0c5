"""HitBTC API v3 (exchange name ``hitbtc``, ``wss://api.hitbtc.com/api/3/ws/public``) and its
white label FMFW (``fmfw``, ``wss://api.fmfw.io/api/3/ws/public``): spot and perpetual futures.

``messages`` (msgspec Structs and decoders), ``parse`` (the symbol listing, symbols, numbers),
``handler`` (the schemes).
"""
from .handler import FmfwScheme, HitbtcScheme

__all__ = ["FmfwScheme", "HitbtcScheme"]
