"""Bitget v2 public websocket: spot (``bitget``) and USDT-M futures (``bitget-futures``):
``messages`` (msgspec Structs and decoders), ``parse`` (listings, symbols, number rules),
``handler`` (the schemes)."""
from .handler import BitgetFuturesScheme, BitgetScheme

__all__ = ["BitgetFuturesScheme", "BitgetScheme"]
