"""HTX, formerly Huobi (``htx`` spot, ``htx-futures`` USDT-margined swaps and futures,
``htx-coin-swaps`` coin-margined swaps): ``messages`` (msgspec Structs and decoders), ``parse``
(instrument listings, symbols, book precision), ``handler`` (the schemes).
"""
from .handler import HtxCoinSwapScheme, HtxFuturesScheme, HtxScheme

__all__ = ["HtxCoinSwapScheme", "HtxFuturesScheme", "HtxScheme"]
