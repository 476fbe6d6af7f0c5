"""OKX v5: instrument ids -> normalised symbols, the instrument listing, and the number rules.

Listing: ``GET /api/v5/public/instruments?instType=SPOT|SWAP|FUTURES|OPTION`` (options per
underlying: ``&uly=BTC-USD``; the docs accept ``uly`` or ``instFamily`` for OPTION)
(https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments). Answer:
``{"code": "0", "msg": "", "data": [{"instType", "instId", "tickSz", "lotSz", "state", ...}]}``.

The instrument id says what a market is, one scheme serves them all:

===========================  ===========================  ==========================================
OKX ``instId``               normalised (DESIGN.md)       kind
===========================  ===========================  ==========================================
``BTC-USDT``                 ``BTC-USDT``                 spot (``SPOT``)
``BTC-USDT-SWAP``            ``BTC-USDT-PERP``            perpetual (``SWAP``; ``BTC-USD-SWAP`` is
                                                          the coin-margined one: ``BTC-USD-PERP``)
``BTC-USD-261225``           ``BTC-USD-20261225``         dated future (``FUTURES``)
``BTC-USD-261225-100000-C``  ``BTC-USD-20261225-100000-C``  option (``OPTION``)
===========================  ===========================  ==========================================

Decimals: a book keeps prices at the tick size's decimals + 2 and sizes at the lot size's + 2
(OKX announces tick size changes in advance: a finer tick still parses), at most 12.

Numbers are text (``"30218.8"``); an empty string means "no value" (an option's empty side).
Times are ms as text (``"1652459199958"``).
"""
from __future__ import annotations

import datetime as _dt

import msgspec

from ...scheme import Instrument
from .._common import decimals_of, is_plain
from .._common import optional_number as optional, plain_number as number, signed_number as signed  # noqa: F401

#: decimals of a market no listing gave
GUESS_PRICE_DECIMALS = 10
GUESS_SIZE_DECIMALS = 8
#: the instrument types of the listing (``instType``) -> our kinds
KINDS = {"SPOT": "spot", "SWAP": "perp", "FUTURES": "future", "OPTION": "option"}


def _ccy(text: str) -> str:
    """A currency or quote code of an instrument id (``BTC``, ``USDT``, ``USD_UM``)."""
    if not (text and text.isascii() and text.replace("_", "").isalnum() and len(text) <= 20):
        raise KeyError(f"okx: not a currency {text!r}")
    return text.upper()


#: ``_date``'s answers (a listing repeats a few expiries thousands of times); a code that is no
#: date is not kept (it raises each time)
_dates: dict[str, str] = {}


def _date(code: str) -> str:
    """``261225`` -> ``20261225``; KeyError if not a date."""
    known = _dates.get(code)
    if known is not None:
        return known
    out = _date_of(code)
    if len(_dates) < 4096:
        _dates[code] = out
    return out


def _date_of(code: str) -> str:
    if not (len(code) == 6 and code.isdigit() and code.isascii()):
        raise KeyError(f"okx: not a date code {code!r}")
    try:
        return _dt.date(2000 + int(code[:2]), int(code[2:4]), int(code[4:])).strftime("%Y%m%d")
    except ValueError:
        raise KeyError(f"okx: not a date code {code!r}") from None


def _strike(text: str) -> str:
    if not is_plain(text) or float(text) <= 0:
        raise KeyError(f"okx: not a strike {text!r}")
    return text


def name_instrument(inst_id: str, pd: int = GUESS_PRICE_DECIMALS, sd: int = GUESS_SIZE_DECIMALS) -> Instrument:
    """The instrument an OKX instrument id names (the id alone says its type); KeyError if it
    names none."""
    if inst_id.__class__ is not str or inst_id != inst_id.upper():
        raise KeyError(f"okx: not an instrument id {inst_id!r}")
    parts = inst_id.split("-")
    n = len(parts)
    if n < 2:
        raise KeyError(f"okx: not an instrument id {inst_id!r}")
    base, quote = _ccy(parts[0]), _ccy(parts[1])
    if n == 2:
        return Instrument(inst_id, f"{base}-{quote}", "spot", base, quote, pd, sd)
    if n == 3 and parts[2] == "SWAP":
        return Instrument(inst_id, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
    if n == 3:
        expiry = _date(parts[2])
        return Instrument(inst_id, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)
    if n == 5 and parts[4] in ("C", "P"):
        expiry = _date(parts[2])
        strike = _strike(parts[3])
        return Instrument(inst_id, f"{base}-{quote}-{expiry}-{strike}-{parts[4]}", "option", base, quote, pd, sd,
                          expiry)
    raise KeyError(f"okx: not an instrument id {inst_id!r}")


def inst_type(native: str) -> str:
    """The ``instType`` an instrument id belongs to (``SPOT``, ``SWAP``, ``FUTURES``, ``OPTION``)."""
    parts = native.split("-")
    if len(parts) == 2:
        return "SPOT"
    if len(parts) == 3:
        return "SWAP" if parts[2] == "SWAP" else "FUTURES"
    return "OPTION"


class _Listed(msgspec.Struct, gc=False):
    instId: str
    instType: str = ""
    tickSz: str = ""
    lotSz: str = ""
    state: str = ""


class _Listing(msgspec.Struct, gc=False):
    code: str = ""
    data: list[_Listed] = []


_listing_decoder = msgspec.json.Decoder(_Listing)


def _decimals(step: str, default: int) -> int:
    return min(12, decimals_of(step or None, default - 2) + 2)


def parse_listing(body: bytes) -> dict[str, Instrument]:
    """One ``/api/v5/public/instruments`` answer -> instruments keyed by ``instId`` ({} for an
    error answer, ``code`` != "0"). An id whose type disagrees with its ``instType`` is left out."""
    listing = _listing_decoder.decode(body)
    if listing.code != "0":
        return {}
    out: dict[str, Instrument] = {}
    for item in listing.data:
        kind = KINDS.get(item.instType)
        if kind is None:
            continue
        try:
            inst = name_instrument(item.instId, _decimals(item.tickSz, GUESS_PRICE_DECIMALS),
                                   _decimals(item.lotSz, GUESS_SIZE_DECIMALS))
        except KeyError:
            continue
        if inst.kind == kind:
            out[inst.native] = inst
    return out


def ms_text(text: str) -> int:
    """A time in ms written as text (``"1597026383085"``); -1 if malformed or absurd."""
    if text.__class__ is str and text.isdigit() and text.isascii() and len(text) <= 14:
        return int(text)  # 1 to 14 digits: 0 <= ms < MAX_MS (ms_ok) holds
    return -1


__all__ = ["KINDS", "inst_type", "ms_text", "name_instrument", "number", "optional", "parse_listing", "signed"]
