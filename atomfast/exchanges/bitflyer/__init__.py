"""bitFlyer Lightning (spot, Crypto CFD ``FX_BTC_JPY``): the Realtime API, JSON-RPC 2.0 over
WebSocket at ``wss://ws.lightstream.bitflyer.com/json-rpc``.

Laid out as the other venues: ``messages`` (msgspec Structs and decoders), ``parse`` (symbols,
instruments, the mid-price rule), ``handler`` (the scheme).
"""
from .handler import BitflyerScheme

__all__ = ["BitflyerScheme"]
