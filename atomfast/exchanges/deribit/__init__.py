"""Deribit (exchange name ``deribit``): ``wss://www.deribit.com/ws/api/v2`` (JSON-RPC 2.0).

``messages`` (msgspec Structs and decoders), ``parse`` (instrument names, the listing, number
checks), ``handler`` (the scheme: perpetuals, dated futures, options, spot).
"""
from .handler import DeribitScheme

__all__ = ["DeribitScheme"]
