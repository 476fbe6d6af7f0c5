"""Hyperliquid: ``messages`` (decoders), ``parse`` (the ``/info`` listings, symbols), ``handler``
(the schemes: ``hyperliquid`` perpetuals, ``hyperliquid-spot``)."""
from .handler import HyperliquidScheme, HyperliquidSpotScheme

__all__ = ["HyperliquidScheme", "HyperliquidSpotScheme"]
