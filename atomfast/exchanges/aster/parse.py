"""Aster's instruments and symbols: its ``exchangeInfo`` is Binance's (``/fapi/v1/exchangeInfo``
with ``contractType`` PERPETUAL, ``/api/v1/exchangeInfo`` for spot), so are the symbol rules
(``BTCUSDT`` -> ``BTC-USDT-PERP`` / spot ``BTC-USDT``): ``atomfast.exchanges.binance.parse``."""
from ..binance.parse import guess_futures, guess_spot, parse_futures_listing, parse_spot_listing  # noqa: F401
