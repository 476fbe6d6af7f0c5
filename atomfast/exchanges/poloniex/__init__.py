"""Poloniex websocket API v3: spot (``poloniex``, ``wss://ws.poloniex.com/ws/public``) and
perpetual futures v3 (``poloniex-futures``, ``wss://ws.poloniex.com/ws/v3/public``).

Laid out as the other venues: ``messages`` (msgspec Structs and decoders), ``parse`` (symbols,
instruments, numbers), ``handler`` (the schemes).
"""
from .handler import PoloniexFuturesScheme, PoloniexScheme

__all__ = ["PoloniexFuturesScheme", "PoloniexScheme"]
