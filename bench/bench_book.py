"""L2 book throughput on real captures: atomfast's compiled L2Book against Python alternatives.

Every implementation applies the same pre-extracted deltas ``(book, side, price text, size
text)`` and reads the best bid and the best ask after EVERY delta:

* ``atomfast``: ``L2Book.apply(side, price, size)`` parses the exchange strings itself (exact
  int64 ticks), then ``best_bid()`` / ``best_ask()``.
* ``sortedcontainers``: one ``SortedDict`` per side keyed by ``float(price)``; ``peekitem``.
* ``order-book`` (bmoscon/orderbook, C): ``OrderBook().bids/.asks[float(price)] = float(size)``,
  ``del`` on size 0, ``.index(0)`` for the best level.

Captures: Kraken websocket v1 ``book-1000`` (6 pairs, one book each: snapshots then updates) and
Binance USD-M ``btcusdt@depth@0ms`` (REST snapshot, then the diff updates after it, first 200k
deltas). Nothing is truncated (same work for all): the Binance book grows to ~6,900 levels,
the Kraken books to ~3,500 levels in all. ``extra_info`` carries ``ns_per_delta`` (median
round / deltas) and ``levels_at_end``.

Checksums: the Kraken v1 replay as a client runs it (apply the update's levels, truncate to
1000, verify the update's CRC32), ``checksum_kraken()`` against the same check written in
Python (``levels()`` strings, ``str`` work, ``zlib.crc32``). Run with::

    pytest bench/bench_book.py --benchmark-only
"""
from __future__ import annotations

import gzip
import json
import zlib

import pytest

from atomfast._book import ASK, BID, L2Book

from .conftest import capture

BINANCE_DELTAS = 200_000
IMPLEMENTATIONS = ["atomfast", "sortedcontainers", "order-book"]


# ---------------------------------------------------------------------------------------------
# Delta extraction (outside the timing)


def _kraken_deltas():
    path = capture("cryptofeed/KRAKEN.ws.50.0")
    deltas: list[tuple[int, int, str, str]] = []
    books: dict[int, int] = {}
    scales: list[tuple[int, int]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("wss://"):
                continue
            payload = line.partition(": ")[2]
            if not payload.startswith("["):
                continue
            msg = json.loads(payload)
            for part in msg[1:-2]:
                if "as" in part or "bs" in part:
                    first = (part.get("as") or part["bs"])[0][0]
                    books[msg[0]] = len(scales)
                    scales.append((len(first.partition(".")[2]), 8))  # the pair's precision
                book = books[msg[0]]
                for key, side in (("as", ASK), ("a", ASK), ("bs", BID), ("b", BID)):
                    for level in part.get(key, ()):
                        deltas.append((book, side, level[0], level[1]))
    return deltas, scales


def _binance_deltas(limit: int | None = BINANCE_DELTAS):
    """The snapshot's levels, then those of the diff updates after it: the first ``limit``
    deltas (None: the whole capture). Also used by ``python -m bench`` (bench/bookcmp.py)."""
    path = capture("hftbacktest/usdm/btcusdt_20240808.gz")
    deltas: list[tuple[int, int, str, str]] = []
    last_id = None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            payload = line.partition(" ")[2]
            if last_id is None:
                if '"lastUpdateId"' in payload:
                    snap = json.loads(payload)
                    last_id = snap["lastUpdateId"]
                    deltas += [(0, BID, p, q) for p, q in snap["bids"]]
                    deltas += [(0, ASK, p, q) for p, q in snap["asks"]]
                continue  # updates before the snapshot: covered by it / buffered in a live sync
            if '"depthUpdate"' not in payload:
                continue
            data = json.loads(payload)["data"]
            if data["u"] <= last_id:
                continue
            deltas += [(0, BID, p, q) for p, q in data["b"]]
            deltas += [(0, ASK, p, q) for p, q in data["a"]]
            if limit is not None and len(deltas) >= limit:
                break
    return (deltas if limit is None else deltas[:limit]), [(2, 3)]


@pytest.fixture(scope="module")
def kraken():
    return _kraken_deltas()


@pytest.fixture(scope="module")
def binance():
    return _binance_deltas()


# ---------------------------------------------------------------------------------------------
# The replays (timed); each returns the final (best bid, best ask) per book


def replay_atomfast(deltas, scales):
    books = [L2Book(p, s) for p, s in scales]
    for i, side, price, size in deltas:
        book = books[i]
        book.apply(side, price, size)
        book.best_bid()
        book.best_ask()
    return [(b.best_bid(), b.best_ask()) for b in books]


def replay_sortedcontainers(deltas, scales):
    from sortedcontainers import SortedDict

    books = [(SortedDict(), SortedDict()) for _ in scales]
    for i, side, price, size in deltas:
        bids, asks = book = books[i]
        levels = book[side]
        p = float(price)
        s = float(size)
        if s == 0.0:
            levels.pop(p, None)
        else:
            levels[p] = s
        bids.peekitem(-1) if bids else None
        asks.peekitem(0) if asks else None
    return [(tuple(b.peekitem(-1)) if b else None, tuple(a.peekitem(0)) if a else None) for b, a in books]


def replay_order_book(deltas, scales):
    from order_book import OrderBook

    books = [OrderBook() for _ in scales]
    for i, side, price, size in deltas:
        ob = books[i]
        levels = ob.bids if side == BID else ob.asks
        p = float(price)
        s = float(size)
        if s == 0.0:
            try:
                del levels[p]
            except KeyError:
                pass
        else:
            levels[p] = s
        bids = ob.bids
        asks = ob.asks
        bids.index(0) if len(bids) else None
        asks.index(0) if len(asks) else None
    return [(ob.bids.index(0) if len(ob.bids) else None, ob.asks.index(0) if len(ob.asks) else None)
            for ob in books]


REPLAYS = {
    "atomfast": replay_atomfast,
    "sortedcontainers": replay_sortedcontainers,
    "order-book": replay_order_book,
}
MODULES = {"sortedcontainers": "sortedcontainers", "order-book": "order_book"}


def _run(benchmark, impl, deltas, scales, rounds):
    if impl in MODULES:
        pytest.importorskip(MODULES[impl])
    if impl == "order-book":
        rounds = min(rounds, 3)  # it re-sorts all keys after each insert/delete: slow rounds
    final = benchmark.pedantic(REPLAYS[impl], args=(deltas, scales), rounds=rounds, iterations=1,
                               warmup_rounds=0 if impl == "order-book" else 1)
    # the same final top of book as atomfast (exact decimals vs floats of the same text)
    assert final == replay_atomfast(deltas, scales)
    info = benchmark.extra_info
    info["units"] = len(deltas)
    info["unit"] = "delta"
    info["ns_per_delta"] = round(benchmark.stats.stats.median / len(deltas) * 1e9, 1)
    info["levels_at_end"] = _levels_at_end(deltas, scales)


def _levels_at_end(deltas, scales) -> int:
    books = [L2Book(p, s) for p, s in scales]
    for i, side, price, size in deltas:
        books[i].apply(side, price, size)
    return sum(len(b) for b in books)


@pytest.mark.benchmark(group="l2-book: kraken book-1000 (6 pairs)")
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_kraken_book(benchmark, kraken, impl):
    deltas, scales = kraken
    assert len(deltas) == 6855  # 6 snapshots and 2437 updates
    _run(benchmark, impl, deltas, scales, rounds=25)


@pytest.mark.benchmark(group="l2-book: binance usd-m btcusdt depth@0ms")
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_binance_usdm_book(benchmark, binance, impl):
    deltas, scales = binance
    assert len(deltas) == BINANCE_DELTAS
    _run(benchmark, impl, deltas, scales, rounds=7)


# ---------------------------------------------------------------------------------------------
# Kraken checksum per update


def _kraken_updates():
    """[(book, [(side, price, size), ...], checksum or None)], snapshots first, and the scales."""
    path = capture("cryptofeed/KRAKEN.ws.50.0")
    events: list[tuple[int, list[tuple[int, str, str]], int | None]] = []
    books: dict[int, int] = {}
    scales: list[tuple[int, int]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("wss://"):
                continue
            payload = line.partition(": ")[2]
            if not payload.startswith("["):
                continue
            msg = json.loads(payload)
            rows, crc = [], None
            for part in msg[1:-2]:
                if "as" in part or "bs" in part:
                    first = (part.get("as") or part["bs"])[0][0]
                    books[msg[0]] = len(scales)
                    scales.append((len(first.partition(".")[2]), 8))
                for key, side in (("as", ASK), ("a", ASK), ("bs", BID), ("b", BID)):
                    rows += [(side, level[0], level[1]) for level in part.get(key, ())]
                crc = int(part["c"]) if "c" in part else crc
            events.append((books[msg[0]], rows, crc))
    return events, scales


def _python_kraken_checksum(book) -> int:
    def piece(v: str) -> str:
        return v.replace(".", "").lstrip("0")

    text = "".join(piece(p) + piece(s) for p, s in book.levels(ASK, 10) + book.levels(BID, 10))
    return zlib.crc32(text.encode())


def replay_checksums(events, scales, checksum):
    books = [L2Book(p, s) for p, s in scales]
    bad = 0
    for i, rows, crc in events:
        book = books[i]
        for side, price, size in rows:
            book.apply(side, price, size)
        if crc is not None:
            book.truncate(1000)
            bad += checksum(book) != crc
    return bad


CHECKSUMS = {
    "atomfast": lambda book: book.checksum_kraken(),
    "python-zlib": _python_kraken_checksum,
}


@pytest.fixture(scope="module")
def kraken_updates():
    return _kraken_updates()


@pytest.mark.benchmark(group="l2-book: kraken book-1000 replay + checksum per update")
@pytest.mark.parametrize("impl", list(CHECKSUMS))
def test_kraken_checksum_replay(benchmark, kraken_updates, impl):
    events, scales = kraken_updates
    updates = sum(crc is not None for _, _, crc in events)
    assert updates == 2437
    bad = benchmark.pedantic(replay_checksums, args=(events, scales, CHECKSUMS[impl]), rounds=15,
                             iterations=1, warmup_rounds=1)
    assert bad == 0  # every CRC32 of the capture
    info = benchmark.extra_info
    info["units"] = updates
    info["unit"] = "update"
    info["ns_per_update"] = round(benchmark.stats.stats.median / updates * 1e9, 1)
