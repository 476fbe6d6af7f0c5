"""Aster, formerly ApolloX (``aster``: perpetuals; ``aster-spot``: spot): Binance's API on
Aster's hosts, read by the Binance schemes (``handler``)."""
from .handler import AsterScheme, AsterSpotScheme

__all__ = ["AsterScheme", "AsterSpotScheme"]
