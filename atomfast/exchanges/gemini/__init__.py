"""Gemini spot: the WebSocket API at ``wss://ws.gemini.com`` (default) and the market data v2
feed ``wss://api.gemini.com/v2/marketdata`` (the recorded capture's protocol, archived by Gemini).

Laid out as every venue: ``messages`` (msgspec Structs and decoders), ``parse`` (instruments,
symbols, times), ``handler`` (the schemes).
"""
from .handler import GeminiScheme, GeminiV2Scheme

__all__ = ["GeminiScheme", "GeminiV2Scheme"]
