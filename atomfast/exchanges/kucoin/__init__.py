"""KuCoin spot (``kucoin``) and futures (``kucoin-futures``): see ``handler``."""
from .handler import KucoinScheme

__all__ = ["KucoinScheme"]
