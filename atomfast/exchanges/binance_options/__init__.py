"""Binance European options (``binance-options``): see ``handler.py``."""
from .handler import BinanceOptionsScheme

__all__ = ["BinanceOptionsScheme"]
