"""Bitget v2: instruments, symbols, number and time rules.

Spot listing ``GET /api/v2/spot/public/symbols`` (https://www.bitget.com/api-doc/spot/market/Get-Symbols):
``{"code": "00000", "data": [{"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT",
"pricePrecision": "2", "quantityPrecision": "6", "status": "online", ...}]}``: ``BTCUSDT`` ->
``BTC-USDT``.

USDT-M futures listing ``GET /api/v2/mix/market/contracts?productType=USDT-FUTURES``
(https://www.bitget.com/api-doc/contract/market/Get-All-Symbols-Contracts): ``{"symbol":
"BTCUSDT", "baseCoin", "quoteCoin", "pricePlace", "volumePlace", "symbolType": "perpetual" |
"delivery", "deliveryTime": <ms>}``: a perpetual ``BTCUSDT`` -> ``BTC-USDT-PERP``, a delivery
contract -> ``BTC-USDT-YYYYMMDD`` (its ``deliveryTime``, UTC). Futures sizes (books, trades, open
interest ``holdingAmount``) are in the base coin, as Bitget sends them.

Book scale: the listing's decimals + 2 (a finer tick announced later still parses), at most 12;
a market no listing named: prices 10, sizes 8 decimals.
"""
from __future__ import annotations

import datetime as _dt

from ...scheme import Instrument
from .._common import ms_ok
from .._common import optional_number as optional, plain_number as number, signed_number as signed  # noqa: F401
from . import messages as m

GUESS_PRICE_DECIMALS = 10
GUESS_SIZE_DECIMALS = 8
MAX_DECIMALS = 12
#: quote assets tried (longest first) to split a name no listing gave (``ETHBTC`` -> ETH, BTC)
QUOTES = ("FDUSD", "USDT", "USDC", "USDE", "BTC", "ETH", "EUR", "BRL", "TRY", "BGB", "DAI", "USD")


def _decimals(text: str, default: int) -> int:
    if text.__class__ is str and text.isdigit() and text.isascii() and len(text) <= 2:
        return min(MAX_DECIMALS, int(text) + 2)
    return default


def _asset(text: str) -> str:
    if not (text.__class__ is str and text and text.isascii() and text.isalnum() and len(text) <= 20):
        raise KeyError(f"bitget: not an asset {text!r}")
    return text.upper()


def split_native(native: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (BTC, USDT) by the known quote assets; KeyError if it names no pair."""
    if not (native.__class__ is str and native.isascii() and native.isalnum() and native.isupper()
            and len(native) <= 30):
        raise KeyError(f"bitget: not a symbol {native!r}")
    for quote in QUOTES:
        if native.endswith(quote) and len(native) > len(quote):
            return native[:-len(quote)], quote
    raise KeyError(f"bitget: unknown quote in {native!r}")


def spot_instrument(native: str, base: str, quote: str, pd: int = GUESS_PRICE_DECIMALS,
                    sd: int = GUESS_SIZE_DECIMALS) -> Instrument:
    base, quote = _asset(base), _asset(quote)
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, pd, sd)


def parse_spot(body: bytes) -> dict[str, Instrument]:
    """The spot listing -> instruments keyed by ``symbol`` ({} for an error answer)."""
    listing = m.symbols_decoder.decode(body)
    if listing.code != "00000":
        return {}
    out: dict[str, Instrument] = {}
    for s in listing.data:
        try:
            out[s.symbol] = spot_instrument(s.symbol, s.baseCoin, s.quoteCoin,
                                            _decimals(s.pricePrecision, GUESS_PRICE_DECIMALS),
                                            _decimals(s.quantityPrecision, GUESS_SIZE_DECIMALS))
        except KeyError:
            continue
    return out


def guess_spot(native: str) -> Instrument:
    base, quote = split_native(native)
    return spot_instrument(native, base, quote)


def perp_instrument(native: str, base: str, quote: str, pd: int = GUESS_PRICE_DECIMALS,
                    sd: int = GUESS_SIZE_DECIMALS) -> Instrument:
    base, quote = _asset(base), _asset(quote)
    return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)


def _expiry(ms_text: str) -> str:
    ms = ms_of(ms_text)
    if ms <= 0:
        raise KeyError(f"bitget: no delivery time {ms_text!r}")
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y%m%d")


def parse_contracts(body: bytes) -> dict[str, Instrument]:
    """The USDT-M futures listing -> instruments keyed by ``symbol`` ({} for an error answer)."""
    listing = m.contracts_decoder.decode(body)
    if listing.code != "00000":
        return {}
    out: dict[str, Instrument] = {}
    for c in listing.data:
        pd = _decimals(c.pricePlace, GUESS_PRICE_DECIMALS)
        sd = _decimals(c.volumePlace, GUESS_SIZE_DECIMALS)
        try:
            if c.symbolType == "delivery":
                base, quote = _asset(c.baseCoin), _asset(c.quoteCoin)
                expiry = _expiry(c.deliveryTime)
                out[c.symbol] = Instrument(c.symbol, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd,
                                           expiry)
            else:
                out[c.symbol] = perp_instrument(c.symbol, c.baseCoin, c.quoteCoin, pd, sd)
        except KeyError:
            continue
    return out


def guess_perp(native: str) -> Instrument:
    base, quote = split_native(native)
    return perp_instrument(native, base, quote)


def ms_of(text: str) -> int:
    """A time in ms written as text (``"1695716059516"``); -1 if malformed or absurd."""
    if text.__class__ is str and 0 < len(text) <= 14 and text.isdigit() and text.isascii():
        ms = int(text)
        return ms if ms_ok(ms) else -1
    return -1


def seq_of(value) -> int | None:
    """A ``seq``/``pseq`` (a JSON integer or a text of digits) as an int; None if absent;
    ValueError if malformed or beyond int64."""
    if value is None:
        return None
    if value.__class__ is int:
        n = value
    elif value.__class__ is str and 0 < len(value) <= 19 and value.isdigit() and value.isascii():
        n = int(value)
    else:
        raise ValueError(f"bad sequence number {value!r}")
    if not 0 <= n < 2**63:
        raise ValueError(f"bad sequence number {value!r}")
    return n


__all__ = ["guess_perp", "guess_spot", "ms_of", "number", "optional", "parse_contracts", "parse_spot", "seq_of",
           "signed", "split_native"]
