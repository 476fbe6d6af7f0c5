"""KuCoin spot (``kucoin``) and futures (``kucoin-futures``): see ``handler``."""
from .handler import KucoinFuturesScheme, KucoinScheme

__all__ = ["KucoinFuturesScheme", "KucoinScheme"]
