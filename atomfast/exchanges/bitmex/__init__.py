"""BitMEX (exchange name ``bitmex``): ``wss://ws.bitmex.com/realtime``.

``messages`` (msgspec Structs and decoders), ``parse`` (symbols, the instrument listing, times,
numbers), ``handler`` (the scheme: perpetuals, dated futures, spot where listed).
"""
from .handler import BitmexScheme

__all__ = ["BitmexScheme"]
