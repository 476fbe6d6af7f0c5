"""dYdX v4 indexer (exchange name ``dydx``): ``wss://indexer.dydx.trade/v4/ws``, perpetuals.

Laid out as every venue: ``messages`` (msgspec Structs and decoders), ``parse`` (tickers,
instruments, candle resolutions), ``handler`` (the scheme).
"""
from .handler import DydxScheme

__all__ = ["DydxScheme"]
