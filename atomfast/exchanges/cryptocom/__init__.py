"""Crypto.com Exchange API v1 market data (exchange name ``cryptocom``): ``messages`` (msgspec
Structs and decoders), ``parse`` (the instrument listing, symbols), ``handler`` (the scheme: spot
pairs, perpetuals and dated futures in one).
"""
from .handler import CryptocomScheme

__all__ = ["CryptocomScheme"]
