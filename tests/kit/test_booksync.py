"""The book sync's compiled live path (``atomfast._booksync``, the base of
``atomfast.kit.booksync.BookSync``): the C check of each rule gives the verdict of its Python
``check`` (which stays the reference and words a gap's reason) on every state and ids, including
ids the C check cannot read (None, not an int, beyond int64: the rule is asked); a venue's own
rule is asked; the ``L2Diff`` apply's failures are the counted events and resyncs of a malformed
message; the compiled route hands what it does not take to the venue's slow handler."""
from __future__ import annotations

import itertools

import pytest

from atomfast.exchanges.binance import BinanceFuturesScheme, BinanceSpotScheme
from atomfast.kit.booksync import (APPLY, STALE, BookSync, Chained, Contiguous, Increasing, L2Diff, MarketSync,
                                   Sequenced)
from atomfast.testing import Harness

from ..venues.test_binance_sync import FUT_URL, SPOT_URL, fut_depth, snap, spot_depth


class _Scheme:
    """What a BookSync asks of its scheme on these paths: ``gap``."""

    def __init__(self) -> None:
        self.gaps: list[str] = []

    def gap(self, conn, native, reason, recv_ns, book="lob") -> None:
        self.gaps.append(reason)


class _OwnRule(Chained):
    """A venue's rule: its own ``check`` (the compiled sync asks it)."""

    def check(self, st, first, last, prev):
        return APPLY if last % 2 else STALE


def _outcome(rule, st_fields: dict, first, last, prev):
    """What ``BookSync._live`` does with a diff: ("apply", last), ("stale",) or ("gap", reason)."""
    scheme = _Scheme()
    applied = []
    sync = BookSync(scheme, rule, lambda conn, native: None, lambda native, d, data, ns: applied.append(d) or True,
                    lambda *a: True)
    st = sync.market("X")
    for name, value in st_fields.items():
        setattr(st, name, value)
    st.live = True
    sync._live(st, "X", "diff", first, last, prev, None, 0)
    if applied:
        assert st.last == last and not st.fresh
        return ("apply",)
    if scheme.gaps:
        return ("gap", scheme.gaps[0])
    return ("stale",)


def _expected(rule, st_fields: dict, first, last, prev):
    st = MarketSync()
    for name, value in st_fields.items():
        setattr(st, name, value)
    verdict = rule.check(st, first, last, prev)
    return ("apply",) if verdict is APPLY else ("stale",) if verdict is STALE else ("gap", verdict)


IDS = [-1, 0, 9, 10, 11, 12, 20, 2**63 - 1, 2**63, None, True, "10"]


@pytest.mark.parametrize("rule", [Contiguous("U", "u"), Sequenced("sequence"), Chained("U", "u", "pu"),
                                  Increasing("microtimestamp"), _OwnRule()], ids=lambda r: type(r).__name__)
def test_compiled_check_is_the_rules_check(rule):
    seen = set()
    for last_id, fresh, snap_id in itertools.product([10, 2**63 - 1, 2**70], [False, True], [5, 10]):
        st = {"last": last_id, "fresh": fresh, "snap": snap_id}
        for first, last, prev in itertools.product(IDS, IDS, IDS[:4] + [None, "9"]):
            try:
                want = _expected(rule, st, first, last, prev)
            except TypeError:  # ids the Python rule cannot compare: the compiled one raises the same
                with pytest.raises(TypeError):
                    _outcome(rule, st, first, last, prev)
                continue
            assert _outcome(rule, st, first, last, prev) == want, (st, first, last, prev)
            seen.add(want[0])
    assert seen == {"apply", "stale", "gap"} or isinstance(rule, _OwnRule)


def test_bad_time_on_a_live_book_is_a_malformed_message():
    for ms in (-1, 10**14):
        h = Harness(BinanceFuturesScheme)
        h.feed(fut_depth(1, 1, 0))
        h.rest(FUT_URL, snap(1))
        msg = fut_depth(2, 3, 1, b=[("100.00", "5")])
        msg["data"]["T"] = ms
        out = h.feed(msg)
        assert [(t, r.status, r.reason) for t, r in out] == [
            ("status", "resync", f"malformed depth message: time {ms}")]
        assert h.metrics.errors.counts["binance-futures: malformed depth message"] == 1
        assert h.scheme.sync["BTCUSDT"].last == 1 and not h.scheme.sync["BTCUSDT"].live
    h = Harness(BinanceSpotScheme)  # spot: the time is E (no T)
    h.feed(spot_depth(1, 1))
    h.rest(SPOT_URL, snap(1))
    out = h.feed(spot_depth(2, 3, b=[("100.00", "5")], E=10**14))
    assert [r.reason for t, r in out] == [f"malformed depth message: time {10**14}"]


def test_route_hands_the_rest_to_the_slow_handler():
    h = Harness(BinanceFuturesScheme)
    h.feed(fut_depth(1, 1, 0))  # a market without sync state yet: the slow handler (buffered, asked)
    assert h.conn.fetches == [FUT_URL]
    msg = fut_depth(2, 2, 1)
    del msg["data"]["pu"]  # futures without pu: the slow handler counts it, the buffer is emptied
    h.feed(msg)
    assert h.metrics.errors.counts["binance-futures: malformed depth message"] == 1
    assert h.scheme.sync["BTCUSDT"].buffer == []
    h.feed(fut_depth(3, 4, 2))
    h.rest(FUT_URL, snap(3))
    out = h.feed(fut_depth(5, 6, 4, a=[("101.00", "0")]))  # live: the compiled path
    assert [t for t, _ in out] == ["lob", "spread"] and h.scheme.sync["BTCUSDT"].last == 6


def test_l2diff_needs_a_time_field():
    with pytest.raises(ValueError):
        L2Diff(None, "b", "a", (), 10, "bad time", "bad level")
