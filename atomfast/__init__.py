"""atomfast: fast, verified cryptocurrency market-data collector.

The Python API (``atomfast.api``): :class:`Feed` runs an exchange's feed, live or from a recorded
capture, and calls your callbacks per topic with typed events (:class:`Trade`, :class:`Lob`,
:class:`Spread`, ...), the records the sinks see; :func:`replay_capture` replays a capture into
callbacks in one call (``atomfast.replay`` is the replay module); :class:`Summary` is how a
run went. The names are imported on first use, so ``import atomfast`` stays cheap for the
command line.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    # explicit re-exports (``X as X``): what type checkers see; at run time ``__getattr__`` below
    from .api import ALL as ALL, Event as Event, Feed as Feed, Summary as Summary, Topic as Topic
    from .api import replay_capture as replay_capture
    from .capture import CaptureError as CaptureError
    from .collector import StartError as StartError, UsageError as UsageError
    from .events import TOPICS as TOPICS, Candle as Candle, FundingRate as FundingRate, Liquidation as Liquidation
    from .events import Lob as Lob, LobL3 as LobL3, OpenInterest as OpenInterest, Raw as Raw, Spread as Spread
    from .events import Status as Status, Ticker as Ticker, Trade as Trade, TradeL3 as TradeL3

#: name -> the module that defines it
_LAZY = {
    **{name: "api" for name in ("ALL", "Event", "Feed", "Summary", "Topic", "replay_capture")},
    **{name: "events" for name in ("TOPICS", "Candle", "FundingRate", "Liquidation", "Lob", "LobL3", "OpenInterest",
                                   "Raw", "Spread", "Status", "Ticker", "Trade", "TradeL3")},
    "CaptureError": "capture",
    "StartError": "collector",
    "UsageError": "collector",
}

__all__ = [
    "__version__", "ALL", "Event", "Feed", "Summary", "Topic", "replay_capture", "TOPICS", "Candle", "FundingRate",
    "Liquidation", "Lob", "LobL3", "OpenInterest", "Raw", "Spread", "Status", "Ticker", "Trade", "TradeL3",
    "CaptureError", "StartError", "UsageError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atomfast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
