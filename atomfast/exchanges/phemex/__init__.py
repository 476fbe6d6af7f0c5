"""Phemex: spot and the scaled contracts (``phemex``), USDT-M perpetuals (``phemex-futures``),
websocket ``wss://phemex.com/ws``.

Laid out as the other venues: ``messages`` (msgspec Structs and decoders), ``parse`` (symbols,
instruments, the scaled-integer encoding, times), ``handler`` (the schemes).
"""
from .handler import PhemexFuturesScheme, PhemexScheme

__all__ = ["PhemexFuturesScheme", "PhemexScheme"]
