"""Aster's messages are Binance's, field for field (its docs: github.com/asterdex/api-docs,
``aster-finance-futures-api.md`` and ``aster-finance-spot-api.md``): the Structs and decoders are
``atomfast.exchanges.binance.messages``."""
from ..binance.messages import *  # noqa: F401,F403
