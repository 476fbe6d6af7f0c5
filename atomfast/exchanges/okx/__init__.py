"""OKX v5 public websocket (exchange name ``okx``): ``messages`` (msgspec Structs and decoders),
``parse`` (instrument listings, symbols, number rules), ``handler`` (the scheme: spot, perpetual
swaps, dated futures and options in one).
"""
from .handler import OkxScheme

__all__ = ["OkxScheme"]
