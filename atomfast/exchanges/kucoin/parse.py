"""KuCoin instruments, symbols, numbers and the websocket token.

Spot listing ``GET /api/v2/symbols`` (``/api/v1/symbols`` has the same rows): ``symbol`` is the
native name (``BCHSV-USDT``), ``baseCurrency``/``quoteCurrency`` the assets (``BSV``, ``USDT``):
the normalised symbol is ``BASE-QUOTE`` from those (``BSV-USDT``), per DESIGN.md.

Futures listing ``GET /api/v1/contracts/active``: ``type`` ``FFWCSX`` is a perpetual
(``XBTUSDTM`` -> ``BTC-USDT-PERP``, ``XBTUSDM`` -> ``BTC-USD-PERP``), ``FFICSX`` a dated future
(``expireDate`` ms -> ``BTC-USD-20250328``); KuCoin writes bitcoin ``XBT``.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
from urllib.parse import quote, urlsplit

import msgspec

from ...scheme import Instrument
from .._common import decimals_of, is_plain
from . import messages as m

#: book scale: at least this many decimals (a level with more than the scale is refused)
MIN_DECIMALS = 8
MAX_DECIMALS = 12
ALIASES = {"XBT": "BTC"}
#: a nanosecond timestamp: at most 19 digits
_MAX_NS_DIGITS = 19


def book_decimals(increment) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals_of(increment, MIN_DECIMALS)))


def size_decimals(increment) -> int:
    """Sizes in the books are sums of orders and may carry more decimals than the increment
    (BSV-USDT's snapshot holds 0.00019434546 with an 8-decimal increment): 4 more, within 8..12."""
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals_of(increment, MIN_DECIMALS) + 4))


def asset(name: str) -> str:
    name = name.upper()
    return ALIASES.get(name, name)


def parse_spot(body: bytes) -> dict[str, Instrument]:
    """Instruments from the spot listing, keyed by native symbol."""
    listing = m.spot_symbols_decoder.decode(body)
    out: dict[str, Instrument] = {}
    for s in listing.data:
        base, quote = asset(s.baseCurrency), asset(s.quoteCurrency)
        out[s.symbol] = Instrument(s.symbol, f"{base}-{quote}", "spot", base, quote,
                                   book_decimals(s.priceIncrement), size_decimals(s.baseIncrement))
    return out


def guess_spot(native: str) -> Instrument:
    """A spot market the listing did not name: ``BASE-QUOTE`` as written; KeyError otherwise."""
    base, dash, quote = native.partition("-")
    if not dash or not base or not quote or "-" in quote or not (base + quote).isalnum() or not native.isascii():
        raise KeyError(f"kucoin: unknown market {native!r}")
    base, quote = asset(base), asset(quote)
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, MAX_DECIMALS, MAX_DECIMALS)


def contract_instrument(c: m.Contract) -> Instrument:
    base = asset(c.baseCurrency)
    quote = asset(c.quoteCurrency)
    pd, sd = book_decimals(c.tickSize), size_decimals(c.lotSize)
    if c.type == "FFICSX" and c.expireDate:
        day = _dt.datetime.fromtimestamp(c.expireDate / 1000, _dt.timezone.utc).strftime("%Y%m%d")
        return Instrument(c.symbol, f"{base}-{quote}-{day}", "future", base, quote, pd, sd, day)
    return Instrument(c.symbol, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)


def parse_contracts(body: bytes) -> dict[str, Instrument]:
    """Instruments from the futures listing, keyed by native symbol."""
    return {c.symbol: contract_instrument(c) for c in m.contracts_decoder.decode(body).data}


def guess_contract(native: str) -> Instrument:
    """A futures market the listing did not name: ``<BASE>USDTM`` / ``<BASE>USDCM`` (linear) and
    ``<BASE>USDM`` (inverse) perpetuals; KeyError otherwise."""
    if native.isascii() and native.isalnum() and native.isupper():
        for quote in ("USDT", "USDC", "USD"):
            suffix = quote + "M"
            if native.endswith(suffix) and len(native) > len(suffix):
                base = asset(native[: -len(suffix)])
                return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, MAX_DECIMALS, MAX_DECIMALS)
    raise KeyError(f"kucoin-futures: unknown market {native!r}")


def ns_to_ms(ns) -> int:
    """A nanosecond time (int, or a string of digits) in ms; ValueError if absurd."""
    if ns.__class__ is str:
        if not (0 < len(ns) <= _MAX_NS_DIGITS and ns.isdigit() and ns.isascii()):
            raise ValueError(f"bad time {ns!r}")
        ns = int(ns)
    elif ns.__class__ is not int or not 0 <= ns < 10 ** _MAX_NS_DIGITS:
        raise ValueError(f"bad time {ns!r}")
    return ns // 1_000_000


def number_text(value) -> str:
    """A size or price as text: a string as sent (a plain decimal), an int or float as written."""
    cls = value.__class__
    if cls is str:
        text = value
    elif cls is int:
        text = str(value)
    elif cls is float:
        text = repr(value)
        if "e" in text or "n" in text:  # (exponent, nan, inf)
            text = format(value, "f") if value == value and value not in (float("inf"), float("-inf")) else ""
    else:
        text = ""
    if not is_plain(text):
        raise ValueError(f"bad number {value!r}")
    return text


def _loopback(url: str) -> bool:
    """A URL of this machine (a local simulator): the only place a token may go unencrypted."""
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bullet_endpoint(body: bytes, connect_id: str) -> tuple[str, float]:
    """The websocket URL (with ``token`` and ``connectId``) and the ping interval (s) of a
    ``POST /api/v1/bullet-public`` answer; ValueError if it names none (the message never holds
    the token). The endpoint is ``wss://`` (or ``ws://`` on this machine: a simulator)."""
    try:
        bullet = m.bullet_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"bullet-public: {exc}") from None
    if bullet.code != "200000" or bullet.data is None or not bullet.data.instanceServers:
        raise ValueError(f"bullet-public: no server (code {bullet.code!r})")
    server = bullet.data.instanceServers[0]
    if not (server.endpoint.startswith("wss://") or (server.endpoint.startswith("ws://") and _loopback(server.endpoint))):
        raise ValueError(f"bullet-public: endpoint {server.endpoint[:100]!r} is not wss:// (nor a local ws://)")
    if not (0 < server.pingInterval <= 600_000):
        raise ValueError(f"bullet-public: pingInterval {server.pingInterval!r}")
    sep = "&" if "?" in server.endpoint else "?"
    token = quote(bullet.data.token, safe="-_.~=")
    return f"{server.endpoint}{sep}token={token}&connectId={quote(connect_id, safe='')}", server.pingInterval / 1000.0
