"""Markets as level4 names them, and how they map onto atomfast's exchanges and symbols.

A level4 ``Market`` is ``{id, base_symbol, quote_symbol, exchange_name, type}``. Here:

- ``exchange_name`` is matched case-insensitively against atomfast's exchange names
  (``kraken``, ``kraken-futures``, ``binance``, ...; ``_`` and spaces read as ``-``), with a
  few of level4's spellings as aliases (``COINBASE-PRO`` -> ``coinbase``).
- ``type`` is level4's ``SPOT``, ``PERP`` or ``INVERSE``, plus ``FUTURE`` and ``OPTION``
  (case-insensitive).
- The normalised symbol (DESIGN.md, Symbols) is built from base, quote and type:
  SPOT ``BTC-USD``; PERP ``BTC-USDT-PERP``; INVERSE (an inverse perpetual) ``BTC-USD-PERP``, or
  ``BTC-USD-PERP-INV`` where the exchange lists a linear and an inverse contract on the same pair
  (Kraken Futures' twin rule). A Market has no field for an expiry or a strike, so for FUTURE
  and OPTION the dated part follows the quote: ``quote_symbol`` ``USD-20261225`` (a future) or
  ``USD-20261225-100000-C`` (an option) gives ``BTC-USD-20261225`` /
  ``BTC-USD-20261225-100000-C``.
- The symbol is then checked against the exchange's instrument listing (exchange aliases such
  as Kraken's XBT apply) by the node that accepts the market; see ``atomfast.control.node``.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

MARKET_TYPES = ("SPOT", "PERP", "INVERSE", "FUTURE", "OPTION")

#: level4's exchange names that differ from atomfast's
EXCHANGE_ALIASES = {
    "coinbase-pro": "coinbase",
    "coinbasepro": "coinbase",
    "gdax": "coinbase",
    "krakenfutures": "kraken-futures",
    "kraken-future": "kraken-futures",
    "binance-usdm": "binance-futures",
    "binance-coinm": "binance-delivery",
}

_ASSET = re.compile(r"^[A-Z0-9][A-Z0-9._]{0,31}$")
_DATE = re.compile(r"^\d{8}$")
_STRIKE = re.compile(r"^\d+(\.\d+)?$")
INT64_MAX = 2**63 - 1
#: characters a Market's text field may hold (the longest real one, an option's quote
#: ``USD-20261225-100000-C``, has 21); longer is refused before anything else looks at it
MAX_FIELD = 64
_FIELDS = ("exchange_name", "base_symbol", "quote_symbol", "type")


class MarketError(ValueError):
    """A market that cannot be accepted; the message says which field and why."""


def _show(value: str, limit: int = 40) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


@dataclass(frozen=True)
class MarketSpec:
    """One market of the desired set: level4's fields as given, plus atomfast's names."""

    id: int
    base_symbol: str
    quote_symbol: str
    exchange_name: str  # as the client spelled it (echoed back in replies)
    type: str  # upper case, one of MARKET_TYPES
    exchange: str = ""  # atomfast's exchange name
    symbol: str = ""  # normalised symbol, resolved against the listing

    @property
    def key(self) -> str:
        return str(self.id)

    def label(self) -> str:
        return f"{self.id} ({self.exchange}:{self.symbol} {self.type})"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "MarketSpec":
        return cls(
            id=int(data["id"]),
            base_symbol=str(data.get("base_symbol", "")),
            quote_symbol=str(data.get("quote_symbol", "")),
            exchange_name=str(data.get("exchange_name", "")),
            type=str(data.get("type", "")),
            exchange=str(data.get("exchange", "")),
            symbol=str(data.get("symbol", "")),
        )


def canonical_exchange(name: str, known: "list[str] | set[str] | dict") -> str:
    """atomfast's name for ``name`` (MarketError if there is none)."""
    raw = (name or "").strip()
    if not raw:
        raise MarketError("market.exchange_name is required")
    norm = re.sub(r"[\s_]+", "-", raw.lower())
    if norm in known:
        return norm
    alias = EXCHANGE_ALIASES.get(norm) or EXCHANGE_ALIASES.get(norm.replace("-", ""))
    if alias and alias in known:
        return alias
    squashed = {k.replace("-", ""): k for k in known}
    if norm.replace("-", "") in squashed:
        return squashed[norm.replace("-", "")]
    raise MarketError(f"market.exchange_name: unknown exchange {_show(name)}; known: {', '.join(sorted(known))}")


def canonical_type(kind: str) -> str:
    t = (kind or "").strip().upper()
    if not t:
        raise MarketError(f"market.type is required: one of {', '.join(MARKET_TYPES)}")
    if t not in MARKET_TYPES:
        raise MarketError(f"market.type: unknown market type {_show(kind)}; one of {', '.join(MARKET_TYPES)}")
    return t


def _asset(value: str, field: str) -> str:
    v = (value or "").strip().upper()
    if not v:
        raise MarketError(f"market.{field} is required")
    if not _ASSET.match(v):
        raise MarketError(f"market.{field} {_show(value)} is not an asset name")
    return v


def base_symbol_for(base: str, quote: str, kind: str) -> str:
    """The normalised symbol before the listing is consulted (see the module doc)."""
    b = _asset(base, "base_symbol")
    q_raw = (quote or "").strip().upper()
    if kind in ("SPOT", "PERP", "INVERSE"):
        q = _asset(q_raw, "quote_symbol")
        if kind == "SPOT":
            return f"{b}-{q}"
        return f"{b}-{q}-PERP"
    parts = q_raw.split("-")
    if kind == "FUTURE":
        if len(parts) != 2 or not _DATE.match(parts[1]):
            raise MarketError(
                "a FUTURE market carries its expiry after the quote: "
                f"market.quote_symbol 'USD-20261225', not {_show(quote)}")
        return f"{b}-{_asset(parts[0], 'quote_symbol')}-{parts[1]}"
    # OPTION
    if (len(parts) != 4 or not _DATE.match(parts[1]) or not _STRIKE.match(parts[2])
            or parts[3] not in ("C", "P")):
        raise MarketError(
            "an OPTION market carries expiry, strike and C/P after the quote: "
            f"market.quote_symbol 'USD-20261225-100000-C', not {_show(quote)}")
    return f"{b}-{_asset(parts[0], 'quote_symbol')}-{parts[1]}-{parts[2]}-{parts[3]}"


def parse_market(msg, known_exchanges) -> MarketSpec:
    """A MarketSpec from a level4 ``Market`` message (or anything with its attributes);
    MarketError when a field is missing or wrong. The symbol is not yet checked against the
    exchange's listing."""
    if msg is None:
        raise MarketError("market is required")
    for name in _FIELDS:
        value = getattr(msg, name, "")
        if not isinstance(value, str):
            raise MarketError(f"market.{name} must be text, not {type(value).__name__}")
        if len(value) > MAX_FIELD:
            raise MarketError(f"market.{name} is too long: {len(value)} characters (at most {MAX_FIELD})")
    mid = int(getattr(msg, "id", 0))
    if mid <= 0 or mid > INT64_MAX:
        raise MarketError(f"market.id must be a positive integer, not {mid}")
    kind = canonical_type(getattr(msg, "type", ""))
    exchange = canonical_exchange(getattr(msg, "exchange_name", ""), known_exchanges)
    symbol = base_symbol_for(getattr(msg, "base_symbol", ""), getattr(msg, "quote_symbol", ""), kind)
    return MarketSpec(
        id=mid,
        base_symbol=str(getattr(msg, "base_symbol", "")),
        quote_symbol=str(getattr(msg, "quote_symbol", "")),
        exchange_name=str(getattr(msg, "exchange_name", "")),
        type=kind,
        exchange=exchange,
        symbol=symbol,
    )


def resolve_symbol(symbol: str, kind: str, listed: set[str], aliases: dict[str, str]) -> str:
    """``symbol`` as the listing names it: exchange aliases applied to base and quote (XBT ->
    BTC), and INVERSE mapped to ``-PERP-INV`` where the listing has that twin. An empty
    ``listed`` (no listing) accepts the symbol as it is. MarketError if not listed."""
    parts = symbol.split("-")
    if aliases:
        parts[0] = aliases.get(parts[0], parts[0])
        parts[1] = aliases.get(parts[1], parts[1])
    sym = "-".join(parts)
    if not listed:
        return sym
    if kind == "INVERSE" and f"{sym}-INV" in listed:
        return f"{sym}-INV"
    if sym in listed:
        return sym
    raise MarketError(f"the exchange lists no market {sym} (market.base_symbol, quote_symbol and type)")


def split_symbol(text: str) -> tuple[str, str, str]:
    """``BTC-USD`` / ``BTC/USD`` / ``XRP-USD-PERP`` / ``BTC-USD-20261225`` -> (base, quote,
    inferred type). Used by ``atomfast ctl start``."""
    t = text.strip().upper().replace("/", "-")
    parts = [p for p in t.split("-") if p]
    if len(parts) < 2:
        raise MarketError(f"symbol {text!r}: expected BASE-QUOTE (BTC-USD, XRP-USD-PERP, BTC-USD-20261225)")
    base, rest = parts[0], parts[1:]
    if rest[-1] == "INV" and len(rest) == 3 and rest[1] == "PERP":
        return base, rest[0], "INVERSE"
    if len(rest) == 2 and rest[1] == "PERP":
        return base, rest[0], "PERP"
    if len(rest) == 2 and _DATE.match(rest[1]):
        return base, "-".join(rest), "FUTURE"
    if len(rest) == 4 and _DATE.match(rest[1]):
        return base, "-".join(rest), "OPTION"
    if len(rest) == 1:
        return base, rest[0], "SPOT"
    raise MarketError(f"symbol {text!r}: cannot tell base, quote and type")


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> dict:
    return json.loads(data)


__all__ = [
    "EXCHANGE_ALIASES",
    "MARKET_TYPES",
    "MAX_FIELD",
    "MarketError",
    "MarketSpec",
    "base_symbol_for",
    "canonical_exchange",
    "canonical_type",
    "parse_market",
    "resolve_symbol",
    "split_symbol",
]
